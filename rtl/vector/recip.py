"""``RecipUnit``: 1/x on FP32 bit patterns, bit-exact with the vector golden model (docs/vector.md)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux

from tessera.rtl.numeric.common import normalise
from tessera.rtl.vector.dataflow import CANONICAL_NAN, Dataflow, DataflowUnit, Node, clip, is_nan

__all__ = ["RecipUnit", "split"]

RECIP_A, RECIP_B = 0x3FB4B4B5, 0xBEF0F0F1      # 24/17, -8/17: the first guess A + B m
ONE = 0x3F800000
INF = 0x7F800000


def split(x):
    """The model's ``_split``: |x| = m 2^e, ``(m, e)`` with m the FP32 pattern of [1, 2) and e signed.

    The model first multiplies a subnormal |x| by 2^24 (exact: the product is a normal number whose
    significand is the subnormal's, shifted up to its leading one). Here that product is formed by
    the integer shift itself (leading-zero count and shift), which gives the same m and e bit for
    bit, in one register stage instead of a multiplier's latency. For zero, m and e are arbitrary
    (the model's are overridden by the zero case too)."""
    field, frac = x[23:31], x[0:23]
    sub = field == 0
    norm, count = normalise(frac)                   # leading one moved to bit 22
    mant = Mux(sub, Cat(Const(0, 1), norm[0:22]), frac)
    e = Mux(sub, -127 - count, field - 127)         # subnormal: 2^(p - 149), p = 22 - count
    return Cat(mant, Const(0x7F, 8), Const(0, 1)), e


class RecipUnit(DataflowUnit):
    """1/x: ``y = recip(x)`` of ``tb/models/vector.py``, bit for bit, one element per cycle.

    The model's steps, each FP32 one an :class:`FP32Adder` or :class:`FP32Multiplier`: |x| split
    into m in [1, 2) and e (an integer stage; a subnormal is normalised by the exact shift that the
    model's multiplication by 2^24 amounts to); y0 = A + B m; three Newton steps
    e = 1 - m y, y = y + y e; then (y + y) 2^(-e-1) by the two multiplications of the model's
    ``_scale`` (exponent clipped to -152 .. 128 as there), with the sign of x. The selects come
    last: +-0 -> +-inf, +-inf -> +-0, NaN -> ``0x7FC00000``.

    Ports: ``x`` (FP32 pattern), ``en`` (clock enable), ``y`` (FP32 pattern).
    Latency: ``latency`` cycles with ``en`` high (1 + 9 multiplier + 8 adder latencies: 52 at the
    default 3 and 3). An ``x`` presented in a cycle with ``en`` high gives ``y`` after exactly
    ``latency`` enabled cycles. Throughput: one result per cycle.
    Back-pressure: ``en`` is a clock enable; ``en`` low freezes every register (``y`` holds) and
    ignores ``x``. Errors: none (IEEE special values are results). ``ValueError`` for an
    unsupported ``fadd_latency`` or ``fmul_latency`` (1 .. 4).
    """

    @staticmethod
    def build(df: Dataflow, x: Node) -> Node:
        c = df.const
        m, e = df.reg(split, x, name="m")
        y = df.add(c(RECIP_A), df.mul(c(RECIP_B), m, "y0_m"), "y0")
        for k in range(3):
            err = df.sub(c(ONE), df.mul(m, y, f"newton{k}_my"), f"newton{k}_e")
            y = df.add(y, df.mul(y, err, f"newton{k}_ye"), f"newton{k}")
        n = df.reg(lambda e: clip(-e - 1, -152, 128), e, name="n")
        out = df.scale(df.add(y, y, "y2"), n)
        special = df.reg(lambda v: Cat(v[0:31] == 0, v[0:31] == INF, is_nan(v), v[31]), x, name="special")

        def select(out, s):
            zero, inf, nan, sign = s[0], s[1], s[2], s[3]
            signed = out | Cat(Const(0, 31), sign)
            infinity, zero_out = Cat(Const(INF, 31), sign), Cat(Const(0, 31), sign)
            return Mux(nan, CANONICAL_NAN, Mux(inf, zero_out, Mux(zero, infinity, signed)))
        return df.comb(select, out, special, name="y")
