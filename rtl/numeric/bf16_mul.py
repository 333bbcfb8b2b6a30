"""BF16 x BF16 -> FP32 multiplier."""

from amaranth import Cat, Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.config import NumericConfig
from tessera.rtl.numeric.common import Pipeline, check_latency, normalise

__all__ = ["BF16Multiplier"]

# Registered cut points per latency (the output register is always there).
#   in   : the operands
#   prod : after the 8 x 8 significand product and the exponent sum
#   norm : after the normalising shift (normal results) and the subnormal shift, in parallel
_CUTS = {1: (), 2: ("prod",), 3: ("prod", "norm"), 4: ("in", "prod", "norm")}

CANONICAL_NAN = 0x7FC00000


class BF16Multiplier(wiring.Component):
    """Multiply two bfloat16 bit patterns into an IEEE 754 binary32 bit pattern.

    ``p = f32_mul(bf16_to_f32(a), bf16_to_f32(b))`` of Berkeley SoftFloat, rounded to nearest
    even: bit-exact, subnormal inputs and outputs honoured, signed zeros, infinities, overflow
    to infinity, and any NaN result (including ``0 * inf``) is the canonical ``0x7FC00000``.
    The 8-bit significand product always fits in 24 bits, so rounding happens only when the
    result is subnormal.

    Latency: ``latency`` cycles with ``en`` high (1..4; default ``NumericConfig.fmul_latency``).
    Operands presented in a cycle with ``en`` high produce ``p`` after exactly ``latency``
    enabled cycles. Throughput: one result per cycle.
    Back-pressure: ``en`` is a clock enable; ``en`` low freezes every pipeline register
    (including ``p``) and ignores the operands of that cycle.
    Errors: none (IEEE special cases are results, not errors). ``ValueError`` for an
    unsupported ``latency``.
    """

    a: In(16)
    b: In(16)
    en: In(1, init=1)
    p: Out(32)

    def __init__(self, latency: int = NumericConfig().fmul_latency):
        self.latency = check_latency("BF16Multiplier", latency, _CUTS)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, self.en, _CUTS[self.latency])

        x = pipe.stage("in", a=self.a, b=self.b)

        def decode(v):
            exp, man = v[7:15], v[0:7]
            is_max = exp == 0xFF
            return dict(
                nan=is_max & (man != 0),
                inf=is_max & (man == 0),
                zero=(exp == 0) & (man == 0),
                sig=Cat(man, exp != 0),           # 1.7 (0.7 for subnormals)
                exp=exp | (exp == 0),             # subnormals have the exponent of the smallest normal
            )

        a, b = decode(x.a), decode(x.b)
        y = pipe.stage(
            "prod",
            sign=x.a[15] ^ x.b[15],
            nan=a["nan"] | b["nan"] | (a["inf"] & b["zero"]) | (a["zero"] & b["inf"]),
            inf=a["inf"] | b["inf"],
            prod=a["sig"] * b["sig"],             # 2.14 fixed point, 16 bits
            esum=a["exp"] + b["exp"],             # 9 bits, 2..508
        )

        # Two paths in parallel from the exact product P (2.14 fixed point, value
        # P * 2^(esum - 268)):
        # * normal result: move the leading one of P to bit 15; the biased exponent is then
        #   er = esum - lz - 126 (signed, -141..382) and the result is exact;
        # * subnormal result (er <= 0): the mantissa field is P * 2^(esum - 119), which does not
        #   depend on lz: P shifted right by rs = 142 - esum places from bit 24 (one guard bit,
        #   and a sticky bit from the bits below it), rounded to nearest even below.
        norm, lz = normalise(y.prod, m=pipe.m)
        wide = Cat(Const(0, 24), y.prod)                  # P * 2^24, 40 bits
        rs = Mux(y.esum < 101, 41, 142 - y.esum)[0:6]     # from 41 on only sticky bits remain
        shifted = wide >> rs                              # [0] guard, [1:24] mantissa field
        z = pipe.stage(
            "norm",
            sign=y.sign, nan=y.nan, inf=y.inf,
            zero=~y.prod.any(),
            frac=norm[0:15],                              # the 15 bits below the leading one
            er=(y.esum - lz - 126)[0:11].as_signed(),
            sub_man=shifted[1:24],
            sub_guard=shifted[0],
            sub_sticky=(wide & Cat(rs > i for i in range(40))).any(),
        )

        round_up = z.sub_guard & (z.sub_sticky | z.sub_man[0])
        subnormal = z.sub_man + round_up                  # a carry gives the smallest normal
        normal = Cat(Const(0, 8), z.frac, z.er[0:8])
        magnitude = Mux(z.er > 0, normal, subnormal)[0:31]
        result = Mux(z.zero, 0, magnitude)
        inf = z.inf | (~z.zero & (z.er >= 255))

        with m.If(self.en):
            with m.If(z.nan):
                m.d.sync += self.p.eq(CANONICAL_NAN)
            with m.Elif(inf):
                m.d.sync += self.p.eq(Cat(Const(0x7F800000, 31), z.sign))
            with m.Else():
                m.d.sync += self.p.eq(Cat(result, z.sign))
        pipe.check()
        return m
