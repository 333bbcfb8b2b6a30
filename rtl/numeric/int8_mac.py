"""INT8 multiply-accumulate with INT32 wrap-around."""

from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.config import NumericConfig
from tessera.rtl.numeric.common import Pipeline, check_latency

__all__ = ["Int8Mac"]

# Registered cut points per latency (the output register is always there).
#   in   : the operands
#   prod : after the 8 x 8 signed product (16 bits), with the addend beside it
_CUTS = {1: (), 2: ("prod",), 3: ("in", "prod")}


class Int8Mac(wiring.Component):
    """``s = c + a * b`` for signed 8-bit ``a``, ``b`` and signed 32-bit ``c``, modulo 2^32.

    The product is exact (int16); the sum wraps around like two's-complement int32 arithmetic
    (numpy ``int32``), with no saturation and no overflow flag.

    Latency: ``latency`` cycles with ``en`` high (1..3; default ``NumericConfig.mac8_latency``).
    All three operands are sampled in the same cycle; with ``en`` high the result appears on
    ``s`` after exactly ``latency`` enabled cycles. Throughput: one result per cycle. With
    latency 1, feeding ``s`` back into ``c`` accumulates one product per cycle.
    Back-pressure: ``en`` is a clock enable; ``en`` low freezes every pipeline register
    (including ``s``) and ignores the operands of that cycle.
    Errors: none. ``ValueError`` for an unsupported ``latency``.
    """

    a: In(signed(8))
    b: In(signed(8))
    c: In(signed(32))
    en: In(1, init=1)
    s: Out(signed(32))

    def __init__(self, latency: int = NumericConfig().mac8_latency):
        self.latency = check_latency("Int8Mac", latency, _CUTS)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, self.en, _CUTS[self.latency])
        x = pipe.stage("in", a=self.a, b=self.b, c=self.c)
        y = pipe.stage("prod", prod=x.a * x.b, c=x.c)
        with m.If(self.en):
            m.d.sync += self.s.eq((y.c + y.prod)[0:32].as_signed())
        pipe.check()
        return m
