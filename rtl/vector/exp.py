"""``ExpUnit``: e^x on FP32 bit patterns, bit-exact with the vector golden model (docs/vector.md)."""

from __future__ import annotations

from amaranth.hdl import Cat, Mux

from tessera.rtl.vector.dataflow import CANONICAL_NAN, Dataflow, DataflowUnit, Node, clip, is_nan, trunc_int

__all__ = ["ExpUnit"]

# The model's constants (tb/models/vector.py; docs/vector.md "exp"), FP32 bit patterns.
LOG2E = 0x3FB8AA3B          # log2(e)
MAGIC_RINT = 0x4B400000     # 1.5 * 2^23: (t + M) - M = rint(t)
EXP_C1 = 0x3F318000         # ln 2's high part
EXP_C2 = 0xB95E8083         # ln 2 - C1
EXP_POLY = (0x3F000000, 0x3E2AAAAA, 0x3D2AA9C1, 0x3C088908, 0x3AB743CE, 0x39506967)   # p0 .. p5
EXP_HI = 0x42B17218         # 88.7228394: above it, +inf
EXP_LO = 0xC2D00000         # -104.0: below it, +0
ONE = 0x3F800000
INF = 0x7F800000


def exponent_of_scale(nf):
    """The model's n = clip(int(nf), -200, 200) followed by its clip to -152 .. 128 for the scale,
    as one clamp (the same integer): nf truncated toward zero, NaN -> 0, +-inf and |nf| >= 256
    saturated (numpy's ``nan_to_num`` makes the infinities +-FLT_MAX, which the clip saturates)."""
    magnitude, big = trunc_int(nf, 8)
    sat = big & ~is_nan(nf)
    n = Mux(sat, 255, Mux(is_nan(nf), 0, magnitude))      # 0 .. 255
    return clip(Mux(nf[31], -n, n), -152, 128)


def special_cases(x):
    """(above EXP_HI, below EXP_LO, NaN) by the model's key ordering of the patterns."""
    above = ~x[31] & (x[0:31] > EXP_HI)        # key(x) > key(EXP_HI), EXP_HI positive
    below = x[31] & (x[0:31] > (EXP_LO & 0x7FFFFFFF))      # key(x) < key(EXP_LO), EXP_LO negative
    return Cat(above, below, is_nan(x))


class ExpUnit(DataflowUnit):
    """e^x: ``y = exp(x)`` of ``tb/models/vector.py``, bit for bit, one element per cycle.

    The model's steps, each FP32 one an :class:`FP32Adder` or :class:`FP32Multiplier`:
    t = x log2(e); nf = (t + M) - M; r = (x - nf C1) - nf C2; the Cephes polynomial by Horner in
    r; p = ((r r) poly + r) + 1; p 2^n in two multiplications, n from nf by an exact integer
    step that is the model's for every nf (NaN, infinities, fractions and saturation included).
    The overflow, underflow and NaN selects come last (x > ``EXP_HI``: +inf; x < ``EXP_LO``: +0;
    NaN: ``0x7FC00000``), by the model's ordering of the patterns.

    Ports: ``x`` (FP32 pattern), ``en`` (clock enable), ``y`` (FP32 pattern).
    Latency: ``latency`` cycles with ``en`` high (10 multiplier and 11 adder latencies on the
    critical path: 63 at the default 3 and 3). An ``x`` presented in a cycle with ``en`` high gives
    ``y`` after exactly ``latency`` enabled cycles. Throughput: one result per cycle.
    Back-pressure: ``en`` is a clock enable; ``en`` low freezes every register (``y`` holds) and
    ignores ``x``. Errors: none (IEEE special values are results). ``ValueError`` for an
    unsupported ``fadd_latency`` or ``fmul_latency`` (1 .. 4).
    """

    @staticmethod
    def build(df: Dataflow, x: Node) -> Node:
        c = df.const
        t = df.mul(x, c(LOG2E), "t")
        nf = df.sub(df.add(t, c(MAGIC_RINT), "t_magic"), c(MAGIC_RINT), "nf")
        n = df.reg(exponent_of_scale, nf, name="n")
        r = df.sub(df.sub(x, df.mul(nf, c(EXP_C1), "n_c1"), "r_hi"), df.mul(nf, c(EXP_C2), "n_c2"), "r")
        p = c(EXP_POLY[-1])
        for k in range(len(EXP_POLY) - 2, -1, -1):
            p = df.add(df.mul(p, r, f"poly{k}_m"), c(EXP_POLY[k]), f"poly{k}")
        rr = df.mul(r, r, "rr")
        p = df.add(df.add(df.mul(rr, p, "rr_p"), r, "rr_p_r"), c(ONE), "er")
        y = df.scale(p, n)
        special = df.reg(special_cases, x, name="special")

        def select(y, s):
            return Mux(s[2], CANONICAL_NAN, Mux(s[1], 0, Mux(s[0], INF, y)))
        return df.comb(select, y, special, name="y")
