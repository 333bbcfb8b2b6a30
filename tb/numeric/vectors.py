"""Operand generators for the numeric units: special classes and biased random pairs.

Pure Python on bit patterns, driven by a ``random.Random`` so that a seed replays a run.
Used by the cocotb testbench, the model cross-check and ``tessera sim``.
"""

from __future__ import annotations

import itertools
import random

# Special classes of the issue: +-0, +-smallest and largest subnormal, +-smallest and largest
# normal, +-1, +-inf, quiet NaN, signalling NaN (both signs, and one with a payload).
_F32_POSITIVE = [0x00000000, 0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0x3F800000, 0x7F800000]
_F32_NANS = [0x7FC00000, 0xFFC00000, 0x7FC12345, 0x7FA00000, 0xFF800001, 0x7FBFFFFF]
F32_SPECIALS = _F32_POSITIVE + [v | 0x80000000 for v in _F32_POSITIVE] + _F32_NANS

_BF16_POSITIVE = [0x0000, 0x0001, 0x007F, 0x0080, 0x7F7F, 0x3F80, 0x7F80]
_BF16_NANS = [0x7FC0, 0xFFC0, 0x7FC5, 0x7FA0, 0xFF81, 0x7FBF]
BF16_SPECIALS = _BF16_POSITIVE + [v | 0x8000 for v in _BF16_POSITIVE] + _BF16_NANS


def special_pairs(specials):
    """Every ordered pair of special classes."""
    return list(itertools.product(specials, repeat=2))


def _f32(sign, exp, man):
    return (sign << 31) | ((exp & 0xFF) << 23) | (man & 0x7FFFFF)


def _bf16(sign, exp, man):
    return (sign << 15) | ((exp & 0xFF) << 7) | (man & 0x7F)


def _sparse_man(rng: random.Random, bits: int) -> int:
    """A mantissa that is often short (few set bits), so that sums and products hit ties."""
    kind = rng.randrange(4)
    if kind == 0:
        return rng.getrandbits(bits)
    if kind == 1:
        return rng.getrandbits(bits) & ~((1 << rng.randrange(bits)) - 1)   # trailing zeros
    if kind == 2:
        return (1 << bits) - 1 - rng.randrange(4)                        # all ones, nearly
    return rng.choice([0, 1 << (bits - 1), 3 << (bits - 2), 1])


def fadd_pair(rng: random.Random) -> tuple[int, int]:
    """A random FP32 pair biased toward cancellation, overflow, underflow and exact ties."""
    kind = rng.randrange(8)
    sa, sb = rng.getrandbits(1), rng.getrandbits(1)
    if kind == 0:                                   # uniform bit patterns
        return rng.getrandbits(32), rng.getrandbits(32)
    if kind == 1:                                   # near-cancellation: b ~ -a
        a = rng.getrandbits(32) & 0x7FFFFFFF
        if rng.random() < 0.2:
            a &= 0x00FFFFFF                         # around the normal/subnormal border
        delta = rng.choice([0, 1, -1, 2, -2, rng.randrange(-1000, 1000), rng.randrange(-(1 << 23), 1 << 23)])
        b = min(max(a + delta, 0), 0x7F7FFFFF)
        return _f32(sa, 0, 0) | a, _f32(sa ^ 1, 0, 0) | b
    if kind == 2:                                   # overflow: large exponents, same sign mostly
        ea, eb = rng.randrange(240, 255), rng.randrange(240, 255)
        sb = sa if rng.random() < 0.8 else sb
        return _f32(sa, ea, _sparse_man(rng, 23)), _f32(sb, eb, _sparse_man(rng, 23))
    if kind == 3:                                   # underflow: subnormal / tiny normal operands
        ea, eb = rng.randrange(0, 4), rng.randrange(0, 4)
        return _f32(sa, ea, rng.getrandbits(23)), _f32(sb, eb, rng.getrandbits(23))
    if kind == 4:                                   # exact ties: shifted-out bits are 100...0
        ea = rng.randrange(1, 255)
        d = rng.randrange(1, 27)
        eb = max(ea - d, 0)
        d = ea - max(eb, 1) if eb == 0 else d
        man_b = rng.getrandbits(23)
        if 0 < d <= 24:
            man_b = (man_b & ~((1 << d) - 1)) | (1 << (d - 1))
            if rng.random() < 0.5 and d >= 2:      # tie one place up (after a carry-out)
                man_b = (man_b & ~((1 << d) - 1)) | (rng.getrandbits(1) << (d - 1)) | (1 << (d - 2))
        return _f32(sa, ea, _sparse_man(rng, 23)), _f32(sb, eb, man_b)
    if kind == 5:                                   # close exponents, any signs
        ea = rng.randrange(0, 255)
        eb = min(max(ea + rng.randrange(-3, 4), 0), 254)
        return _f32(sa, ea, _sparse_man(rng, 23)), _f32(sb, eb, _sparse_man(rng, 23))
    if kind == 6:                                   # wide exponent differences around 24..28
        ea = rng.randrange(30, 255)
        eb = ea - rng.randrange(20, 30)
        a, b = _f32(sa, ea, _sparse_man(rng, 23)), _f32(sb, eb, _sparse_man(rng, 23))
        return (a, b) if rng.random() < 0.5 else (b, a)
    specials = F32_SPECIALS                         # one special, one random
    a, b = rng.choice(specials), rng.getrandbits(32)
    return (a, b) if rng.random() < 0.5 else (b, a)


def fmul_pair(rng: random.Random) -> tuple[int, int]:
    """A random BF16 pair biased toward overflow, underflow (subnormal results) and ties."""
    kind = rng.randrange(6)
    sa, sb = rng.getrandbits(1), rng.getrandbits(1)
    if kind == 0:                                   # uniform bit patterns
        return rng.getrandbits(16), rng.getrandbits(16)
    if kind == 1:                                   # underflow: exponent sum around the subnormal range
        ea = rng.randrange(0, 128)
        eb = min(max(127 - ea - rng.randrange(-3, 28), 0), 254)
        return _bf16(sa, ea, _sparse_man(rng, 7)), _bf16(sb, eb, _sparse_man(rng, 7))
    if kind == 2:                                   # overflow: exponent sum around 254 + 127
        ea = rng.randrange(127, 255)
        eb = min(max(381 - ea + rng.randrange(-3, 3), 0), 254)
        return _bf16(sa, ea, _sparse_man(rng, 7)), _bf16(sb, eb, _sparse_man(rng, 7))
    if kind == 3:                                   # subnormal inputs times anything finite
        ea = 0
        eb = rng.randrange(0, 255)
        a, b = _bf16(sa, ea, rng.getrandbits(7)), _bf16(sb, eb, _sparse_man(rng, 7))
        return (a, b) if rng.random() < 0.5 else (b, a)
    if kind == 4:                                   # ordinary normal products
        return _bf16(sa, rng.randrange(1, 255), rng.getrandbits(7)), _bf16(sb, rng.randrange(1, 255),
                                                                          rng.getrandbits(7))
    a, b = rng.choice(BF16_SPECIALS), rng.getrandbits(16)
    return (a, b) if rng.random() < 0.5 else (b, a)


def mac_triple(rng: random.Random) -> tuple[int, int, int]:
    """Signed int8 a, b and int32 c, biased toward the extremes and wrap-around."""
    def i8():
        return rng.choice([-128, 127, -1, 0, 1]) if rng.random() < 0.2 else rng.randrange(-128, 128)

    r = rng.random()
    if r < 0.2:
        c = rng.choice([(1 << 31) - 1 - rng.randrange(1 << 15), -(1 << 31) + rng.randrange(1 << 15)])
    elif r < 0.3:
        c = rng.randrange(-(1 << 15), 1 << 15)
    else:
        c = rng.randrange(-(1 << 31), 1 << 31)
    return i8(), i8(), c
