"""FP32 x FP32 -> FP32 multiplier (the vector engine's multiplication, docs/vector.md)."""

from amaranth import Cat, Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.numeric.common import Pipeline, check_latency, normalise

__all__ = ["FP32Multiplier"]

# Registered cut points per latency (the output register is always there).
#   in   : the operands
#   prod : after the 24 x 24 significand product and the exponent sum
#   norm : after the normalising shift (normal results) and the subnormal shift, in parallel
_CUTS = {1: (), 2: ("prod",), 3: ("prod", "norm"), 4: ("in", "prod", "norm")}

CANONICAL_NAN = 0x7FC00000


class FP32Multiplier(wiring.Component):
    """Multiply two IEEE 754 binary32 bit patterns: ``p = f32_mul(a, b)`` of Berkeley SoftFloat,
    rounded to nearest even, bit-exact.

    Subnormal inputs and results are honoured (no flush to zero); signed zeros; infinities;
    overflow to infinity; any NaN result (a NaN operand, ``0 * inf``) is ``0x7FC00000``.

    Latency: ``latency`` cycles with ``en`` high (1..4, default 3). Operands presented in a cycle
    with ``en`` high produce ``p`` after exactly ``latency`` enabled cycles. Throughput: one
    result per cycle.
    Back-pressure: ``en`` is a clock enable; ``en`` low freezes every pipeline register
    (including ``p``) and ignores the operands of that cycle.
    Errors: none (IEEE special cases are results). ``ValueError`` for an unsupported ``latency``.
    """

    a: In(32)
    b: In(32)
    en: In(1, init=1)
    p: Out(32)

    def __init__(self, latency: int = 3):
        self.latency = check_latency("FP32Multiplier", latency, _CUTS)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, self.en, _CUTS[self.latency])
        x = pipe.stage("in", a=self.a, b=self.b)
        y = self._product(pipe, x)
        z = self._shift(pipe, y)
        self._round(m, z)
        pipe.check()
        return m

    @staticmethod
    def _product(pipe, x):
        """Stage ``prod``: the exact 24 x 24 significand product P (2.46 fixed point) and the
        exponent sum; the value is P * 2^(esum - 300)."""
        def decode(v):
            exp, man = v[23:31], v[0:23]
            is_max = exp == 0xFF
            return dict(nan=is_max & (man != 0), inf=is_max & (man == 0), zero=(exp == 0) & (man == 0),
                        sig=Cat(man, exp != 0),      # 1.23 (0.23 for subnormals)
                        exp=exp | (exp == 0))        # subnormals have the exponent of the smallest normal

        a, b = decode(x.a), decode(x.b)
        return pipe.stage(
            "prod",
            sign=x.a[31] ^ x.b[31],
            nan=a["nan"] | b["nan"] | (a["inf"] & b["zero"]) | (a["zero"] & b["inf"]),
            inf=a["inf"] | b["inf"],
            prod=a["sig"] * b["sig"],                # 48 bits
            esum=a["exp"] + b["exp"],                # 9 bits, 2..508
        )

    @staticmethod
    def _shift(pipe, y):
        """Stage ``norm``, two paths in parallel from P:

        * normal result: the leading one of P moved to bit 47; the biased exponent is then
          er = esum - lz - 126 (signed), the 23 bits below the leading one the mantissa, then a
          guard bit and a sticky bit;
        * subnormal result (er <= 0): the mantissa field is P * 2^(esum - 151), i.e. P shifted
          right by rs = 151 - esum places (capped at 49, from where only sticky bits remain), with
          a guard bit and a sticky bit from the bits below it."""
        norm, lz = normalise(y.prod, m=pipe.m)
        wide = Cat(Const(0, 1), y.prod)                   # P * 2, 49 bits: bit 0 becomes the guard
        rs = Mux(y.esum < 102, 49, 151 - y.esum)[0:6]
        shifted = wide >> rs
        return pipe.stage(
            "norm",
            sign=y.sign, nan=y.nan, inf=y.inf,
            zero=~y.prod.any(),
            frac=norm[24:47],
            guard=norm[23],
            sticky=norm[0:23].any(),
            er=(y.esum - lz - 126)[0:11].as_signed(),
            sub_man=shifted[1:24],
            sub_guard=shifted[0],
            sub_sticky=(wide & Cat(rs > i for i in range(49))).any(),
        )

    def _round(self, m, z):
        """The output register: round to nearest even on either path (a carry out of the
        mantissa raises the exponent: the largest subnormal rounds up to the smallest normal, a
        normal may round up to infinity), then the special cases."""
        up = z.guard & (z.sticky | z.frac[0])
        normal = Cat(z.frac, z.er[0:8]) + up              # 32 bits: a carry past 0xFF -> >= 0x7F800000
        sub_up = z.sub_guard & (z.sub_sticky | z.sub_man[0])
        subnormal = z.sub_man + sub_up
        over = (z.er >= 255) | (normal >= 0x7F800000)
        magnitude = Mux(z.er > 0, normal[0:31], subnormal[0:31])
        with m.If(self.en):
            with m.If(z.nan):
                m.d.sync += self.p.eq(CANONICAL_NAN)
            with m.Elif(z.inf | (~z.zero & (z.er > 0) & over)):
                m.d.sync += self.p.eq(Cat(Const(0x7F800000, 31), z.sign))
            with m.Elif(z.zero):
                m.d.sync += self.p.eq(Cat(Const(0, 31), z.sign))
            with m.Else():
                m.d.sync += self.p.eq(Cat(magnitude, z.sign))
