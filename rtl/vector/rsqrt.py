"""``RsqrtUnit``: 1/sqrt(x) on FP32 bit patterns, bit-exact with the vector golden model
(docs/vector.md)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux

from tessera.rtl.vector.dataflow import CANONICAL_NAN, Dataflow, DataflowUnit, Node, is_nan
from tessera.rtl.vector.recip import split

__all__ = ["RsqrtUnit"]

RSQRT_LO = (0x3F9F464D, 0xBE8E16FC)            # a + b m ~ 1/sqrt(m) on [1, 2)
RSQRT_HI = (0x3F613F92, 0xBDC8F1FF)            # on [2, 4)
HALF = 0x3F000000
INF = 0x7F800000


def split_even(x):
    """x = m 2^e with e even and m in [1, 4): the model's ``_split`` and odd-exponent adjust
    (m + 2^23 on the pattern: m 2, exact), ``(m, e, odd)``."""
    m, e = split(x)
    odd = e[0]
    return Cat(m[0:23], Mux(odd, 0x80, 0x7F), Const(0, 1)), e - odd, odd


class RsqrtUnit(DataflowUnit):
    """1/sqrt(x): ``y = rsqrt(x)`` of ``tb/models/vector.py``, bit for bit, one element per cycle.

    The model's steps, each FP32 one an :class:`FP32Adder` or :class:`FP32Multiplier`: x split
    into m in [1, 4) and an even e (an integer stage, subnormals normalised by the exact shift of
    :func:`tessera.rtl.vector.recip.split`); y0 = a + b m with the line of m's half of [1, 4);
    h = m 0.5; three Newton steps t = 0.5 - h (y y), y = y + y t; then (y + y) 2^(-e/2 - 1) by
    the two multiplications of the model's ``_scale``. The selects come last: +0 -> +inf,
    -0 -> -inf, +inf -> +0, x < 0 and NaN -> ``0x7FC00000``.

    Ports: ``x`` (FP32 pattern), ``en`` (clock enable), ``y`` (FP32 pattern).
    Latency: ``latency`` cycles with ``en`` high (1 + 12 multiplier + 8 adder latencies: 61 at the
    default 3 and 3). An ``x`` presented in a cycle with ``en`` high gives ``y`` after exactly
    ``latency`` enabled cycles. Throughput: one result per cycle.
    Back-pressure: ``en`` is a clock enable; ``en`` low freezes every register (``y`` holds) and
    ignores ``x``. Errors: none (IEEE special values are results). ``ValueError`` for an
    unsupported ``fadd_latency`` or ``fmul_latency`` (1 .. 4).
    """

    @staticmethod
    def build(df: Dataflow, x: Node) -> Node:
        c = df.const
        m, e, odd = df.reg(split_even, x, name="m")
        b0 = df.comb(lambda o: Mux(o, RSQRT_HI[1], RSQRT_LO[1]), odd, name="b0")
        bm = df.mul(b0, m, "y0_m")
        a0 = df.reg(lambda o: Mux(o, RSQRT_HI[0], RSQRT_LO[0]), odd, name="a0", at=bm.ready)
        y = df.add(a0, bm, "y0")
        h = df.mul(m, c(HALF), "h")
        for k in range(3):
            hyy = df.mul(h, df.mul(y, y, f"newton{k}_yy"), f"newton{k}_hyy")
            t = df.sub(c(HALF), hyy, f"newton{k}_t")
            y = df.add(y, df.mul(y, t, f"newton{k}_yt"), f"newton{k}")
        n = df.reg(lambda e: -(e.as_signed() >> 1) - 1, e, name="n")
        out = df.scale(df.add(y, y, "y2"), n)

        def special_cases(v):
            zero = v[0:31] == 0
            return Cat(zero, v == INF, is_nan(v) | (v[31] & ~zero), v[31])
        special = df.reg(special_cases, x, name="special")

        def select(out, s):
            zero, pinf, bad, sign = s[0], s[1], s[2], s[3]
            return Mux(bad, CANONICAL_NAN, Mux(pinf, 0, Mux(zero, Cat(Const(INF, 31), sign), out)))
        return df.comb(select, out, special, name="y")
