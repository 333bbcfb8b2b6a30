"""Random GEMM operands as bit patterns, with the special values of the verification plan
(docs/numerics.md) scattered at random: the data of ``tessera gemm --m/--n/--k`` and of the
testbenches (``tb/tensor/feed.py`` re-exports them)."""

from __future__ import annotations

import numpy as np

BF16_SPECIALS = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x7F81, 0x0001, 0x8001, 0x007F,
                 0x0080, 0x7F7F, 0xFF7F, 0x3F80]
F32_SPECIALS = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFC12345,
                0x00000001, 0x80000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF]
# The finite ones (signed zeros, subnormals, smallest normal, largest finite, 1.0): with these alone
# a GEMM's outputs stay mostly finite, so the subnormal, underflow and overflow paths are checked
# on numbers instead of being hidden behind NaN and infinity.
BF16_FINITE_SPECIALS = [v for v in BF16_SPECIALS if v & 0x7F80 != 0x7F80]
F32_FINITE_SPECIALS = [v for v in F32_SPECIALS if v & 0x7F800000 != 0x7F800000]


def random_bf16(rng: np.random.Generator, shape, special_prob=0.0, finite=False) -> np.ndarray:
    """bf16 bit patterns around 1.0 (exponents 2^-8..2^8, random sign), specials scattered.

    ``finite``: scatter only the finite specials (:data:`BF16_FINITE_SPECIALS`).
    """
    sign = rng.integers(0, 2, size=shape, dtype=np.uint16) << 15
    exp = rng.integers(119, 136, size=shape, dtype=np.uint16) << 7
    man = rng.integers(0, 128, size=shape, dtype=np.uint16)
    out = (sign | exp | man).astype(np.uint16)
    if special_prob > 0:
        mask = rng.random(shape) < special_prob
        pool = BF16_FINITE_SPECIALS if finite else BF16_SPECIALS
        out[mask] = rng.choice(np.array(pool, dtype=np.uint16), size=int(mask.sum()))
    return out


def random_f32(rng: np.random.Generator, shape, special_prob=0.0, finite=False) -> np.ndarray:
    """FP32 bit patterns around 1.0, specials (only the finite ones if ``finite``) scattered."""
    sign = rng.integers(0, 2, size=shape, dtype=np.uint32) << 31
    exp = rng.integers(119, 136, size=shape, dtype=np.uint32) << 23
    man = rng.integers(0, 1 << 23, size=shape, dtype=np.uint32)
    out = (sign | exp | man).astype(np.uint32)
    if special_prob > 0:
        mask = rng.random(shape) < special_prob
        pool = F32_FINITE_SPECIALS if finite else F32_SPECIALS
        out[mask] = rng.choice(np.array(pool, dtype=np.uint32), size=int(mask.sum()))
    return out


def random_int8(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int16).astype(np.int8)


def random_i32(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-(1 << 31), 1 << 31, size=shape, dtype=np.int64).astype(np.int32)


def random_operands(rng: np.random.Generator, m: int, n: int, k: int, dtype: str, has_c: bool,
                    special_prob: float = 0.0) -> tuple:
    """Random A (m x k), B (k x n) and C (m x n, or None) of a GEMM, in that order: BF16 patterns and
    FP32 C with ``special_prob`` specials, or INT8 and INT32 C."""
    if dtype == "bf16":
        a, b = random_bf16(rng, (m, k), special_prob), random_bf16(rng, (k, n), special_prob)
        return a, b, random_f32(rng, (m, n), special_prob) if has_c else None
    a, b = random_int8(rng, (m, k)), random_int8(rng, (k, n))
    return a, b, random_i32(rng, (m, n)) if has_c else None
