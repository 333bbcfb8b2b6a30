"""FP32 adder."""

from amaranth import Cat, Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.config import NumericConfig
from tessera.rtl.numeric.common import Pipeline, check_latency, normalise

__all__ = ["FP32Adder"]

# Registered cut points per latency (the output register is always there).
#   swap  : after the magnitude compare, operand swap and exponent difference
#   align : after the alignment shifter (smaller operand shifted right, sticky bit jammed)
#   add   : after the 28-bit significand add / subtract
#   norm  : after the normalising shift (leading-zero count merged into it)
_CUTS = {1: (), 2: ("add",), 3: ("align", "norm"), 4: ("swap", "add", "norm")}

CANONICAL_NAN = 0x7FC00000


class FP32Adder(wiring.Component):
    """Add two IEEE 754 binary32 bit patterns, round to nearest even.

    Bit-exact with Berkeley SoftFloat ``f32_add``: subnormal inputs and outputs (no flush to
    zero), signed zeros (``x + -x = +0``), infinities, overflow to infinity, and any NaN result
    (including ``inf - inf``) is the canonical ``0x7FC00000``.

    Algorithm (single path): swap so that ``|a| >= |b|``, shift the smaller significand right by
    the exponent difference with guard, round and jammed sticky bits, add or subtract (the
    result is never negative), shift left to normalise (leading-zero count and shift merged, one
    power of two per level), but never below the smallest-normal exponent (which produces
    subnormals), then round to nearest even. The
    rounding carry propagates into the exponent field, which also yields overflow to infinity.

    Latency: ``latency`` cycles with ``en`` high (1..4; default ``NumericConfig.fadd_latency``).
    Operands presented in a cycle with ``en`` high produce ``s`` after exactly ``latency``
    enabled cycles. Throughput: one result per cycle.
    Back-pressure: ``en`` is a clock enable; ``en`` low freezes every pipeline register
    (including ``s``) and ignores the operands of that cycle.
    Errors: none (IEEE special cases are results, not errors). ``ValueError`` for an
    unsupported ``latency``.
    """

    a: In(32)
    b: In(32)
    en: In(1, init=1)
    s: Out(32)

    def __init__(self, latency: int = NumericConfig().fadd_latency):
        self.latency = check_latency("FP32Adder", latency, _CUTS)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, self.en, _CUTS[self.latency])

        x = pipe.stage("in", a=self.a, b=self.b)

        def is_max_exp(v):
            return v[23:31] == 0xFF

        a_nan = is_max_exp(x.a) & (x.a[0:23] != 0)
        b_nan = is_max_exp(x.b) & (x.b[0:23] != 0)
        a_inf = is_max_exp(x.a) & (x.a[0:23] == 0)
        b_inf = is_max_exp(x.b) & (x.b[0:23] == 0)
        eff_sub = x.a[31] ^ x.b[31]

        swap = x.b[0:31] > x.a[0:31]
        big = Mux(swap, x.b, x.a)
        small = Mux(swap, x.a, x.b)

        def significand(v):
            return Cat(v[0:23], v[23:31] != 0)      # hidden bit, 0 for subnormals and zero

        def exponent(v):
            return v[23:31] | (v[23:31] == 0)       # subnormals: exponent of the smallest normal

        y = pipe.stage(
            "swap",
            nan=a_nan | b_nan | (a_inf & b_inf & eff_sub),
            inf=a_inf | b_inf,                      # then the larger magnitude is an infinity
            sign=big[31],
            eff_sub=eff_sub,
            exp=exponent(big),
            diff=(exponent(big) - exponent(small))[0:8],   # never negative
            sig_big=significand(big),
            sig_small=significand(small),
        )

        # Align: three extra bits (guard, round, sticky); every bit shifted out below them is
        # OR-ed into the lowest one. Differences from 27 up all shift the operand out entirely.
        dist = Mux(y.diff[5:8] != 0, 31, y.diff[0:5])
        small27 = Cat(Const(0, 3), y.sig_small)
        sticky = (small27 & Cat(dist > i for i in range(27))) != 0
        z = pipe.stage(
            "align",
            nan=y.nan, inf=y.inf, sign=y.sign, eff_sub=y.eff_sub, exp=y.exp,
            big=Cat(Const(0, 3), y.sig_big),
            small=(small27 >> dist) | sticky,
        )

        # Add or subtract in 28 bits ([27] carry, [26] hidden, [2:0] guard/round/sticky).
        # Subtraction as big + ~small + 1 (mod 2^28): exact, since |big| >= |small|.
        small28 = Cat(z.small, Const(0, 1))
        total = (Cat(z.big, Const(0, 1)) + Mux(z.eff_sub, ~small28, small28) + z.eff_sub)[0:28]
        w = pipe.stage(
            "add",
            nan=z.nan, inf=z.inf, eff_sub=z.eff_sub, exp=z.exp,
            sign=z.sign,
            total=total,
        )

        # Normalise: move the leading one to bit 27, but shift at most exp places so that the
        # exponent field stays >= 0; a result still below bit 27 is then subnormal. A marker bit
        # at position 27 - exp (decoded from exp beside the adder) stops the shift there. The
        # exponent field is exp - shift - 1 plus the leading one, added in by the packing below.
        marker = Cat(w.exp == 27 - i for i in range(28))
        norm, shift = normalise(w.total, marker, m=m)
        zero = ~w.total.any()
        v = pipe.stage(
            "norm",
            nan=w.nan, inf=w.inf,
            sign=Mux(zero, w.sign & ~w.eff_sub, w.sign),   # exact cancellation is +0
            zero=zero,
            exp=(w.exp - shift)[0:8],
            norm=norm,
        )

        # Round to nearest even at bit 4; the significand (hidden bit included) is added onto
        # the exponent field, so a rounding carry renormalises and overflows into infinity.
        lsb, guard, sticky = v.norm[4], v.norm[3], v.norm[0:3] != 0
        round_up = guard & (sticky | lsb)
        packed = (Cat(Const(0, 23), v.exp) + v.norm[4:28] + round_up)[0:32]
        overflow = ~v.zero & (packed[23:32] >= 0xFF)     # a zero sum may shift past exp

        with m.If(self.en):
            with m.If(v.nan):
                m.d.sync += self.s.eq(CANONICAL_NAN)
            with m.Elif(v.inf | overflow):
                m.d.sync += self.s.eq(Cat(Const(0x7F800000, 31), v.sign))
            with m.Elif(v.zero):
                m.d.sync += self.s.eq(Cat(Const(0, 31), v.sign))
            with m.Else():
                m.d.sync += self.s.eq(Cat(packed[0:31], v.sign))
        pipe.check()
        return m
