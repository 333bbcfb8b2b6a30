# amaranth: UnusedElaboratable=no
# (Amaranth's linter option, on the first line: a SpecialFunctions built only for its signature)
"""One lane of the vector engine: INT32 -> FP32, the binary stage, the unary stage (docs/vector.md)."""


from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.instance import instance_of
from tessera.rtl.numeric.common import normalise
from tessera.rtl.numeric.fp32_add import FP32Adder
from tessera.rtl.numeric.fp32_mul import FP32Multiplier
from tessera.rtl.tile.isa import Act, VOp

__all__ = ["VectorLane", "i32_to_f32", "is_nan", "positive", "delay"]

CANONICAL_NAN = 0x7FC00000


def delay(m: Module, en, value, cycles: int, name: str):
    """``value`` after ``cycles`` enabled cycles: a chain of registers loaded when ``en`` is high."""
    for k in range(cycles):
        reg = Signal(len(value), name=f"{name}_d{k}", reset_less=True)
        with m.If(en):
            m.d.sync += reg.eq(value)
        value = reg
    return value


def is_nan(v):
    return (v[23:31] == 0xFF) & v[0:23].any()


def positive(v):
    """v > 0 (a NaN is not)."""
    return ~v[31] & v[0:31].any() & ~is_nan(v)


def _key(v):
    """A signed 32-bit integer that orders non-NaN FP32 patterns as their values (-0 below +0)."""
    return Mux(v[31], v ^ 0x7FFFFFFF, v).as_signed()


def i32_to_f32(m: Module, x, name: str = "itof"):
    """INT32 -> FP32 bit pattern, round to nearest even (combinational)."""
    sign = x[31]
    mag = Signal(32, name=f"{name}_mag")
    m.d.comb += mag.eq(Mux(sign, -x, x))
    shifted, lz = normalise(mag, m=m, name=f"{name}_norm")
    frac, guard, sticky = shifted[8:31], shifted[7], shifted[0:7].any()
    up = guard & (sticky | frac[0])
    biased = Signal(32, name=f"{name}_biased")
    m.d.comb += biased.eq(Cat(frac, (158 - lz)[0:8], sign) + up)
    return Mux(mag == 0, 0, biased)


class VectorLane(wiring.Component):
    """One FP32 / INT32 element per cycle through three stages (docs/vector.md, "The engine").

    Ports: ``x``, ``y`` (in, 32-bit patterns), ``en`` (clock enable), ``r`` (out, 32-bit result);
    ``op`` (:class:`~tessera.rtl.tile.isa.VOp`), ``act`` (:class:`~tessera.rtl.tile.isa.Act`) and
    ``itof`` select the operation and must stay constant while elements are in flight (the engine
    runs one instruction at a time).

    Stages: an input register (INT32 -> FP32 when ``itof``); the binary stage (an
    :class:`FP32Adder` for ADD / SUB (y's sign flipped), an :class:`FP32Multiplier` for MUL,
    comparisons for MAX / MIN / MASK, a 32-bit adder for IADD, x for PASS), all padded to
    ``binary_latency``; then RELU (or nothing) in one register, or a special function (GELU, EXP,
    RECIP, RSQRT; ``sfu``: a :class:`tessera.rtl.vector.sfu.SpecialFunctions`, or none for a lane
    without them; ``sfu_module``: that unit as an ``Instance`` of the Verilog module of this name,
    written once by the exporter, rtl/fabric/export.py).

    Latency (enabled cycles from ``x`` to ``r``): :meth:`latency` of the ``act``; throughput one
    element per enabled cycle. Back-pressure: ``en`` low freezes every register. Errors: none
    (IEEE special cases are results; NaN results are ``0x7FC00000``, except PASS and IADD, which
    keep x's bits).
    """

    x: In(32)
    y: In(32)
    en: In(1, init=1)
    op: In(VOp)
    act: In(Act)
    itof: In(1)
    r: Out(32)

    def __init__(self, fadd_latency: int = 3, fmul_latency: int = 3, sfu: bool = True,
                 sfu_module: str | None = None):
        self.fadd_latency, self.fmul_latency, self.sfu = fadd_latency, fmul_latency, sfu
        self.sfu_module = sfu_module
        self.binary_latency = max(fadd_latency, fmul_latency)
        self.sfu_latency = 0
        if sfu:
            from tessera.rtl.vector.sfu import SpecialFunctions

            self._sfu = SpecialFunctions(fadd_latency=fadd_latency, fmul_latency=fmul_latency)
            self.sfu_latency = self._sfu.latency
        super().__init__()

    def latency(self, act: Act) -> int:
        """Enabled cycles from ``x`` to ``r`` for the unary operation ``act``."""
        if act in (Act.NONE, Act.RELU):
            return 2 + self.binary_latency
        return 1 + self.binary_latency + self.sfu_latency

    def elaborate(self, platform):
        m = Module()
        en, lb = self.en, self.binary_latency
        xi, yi = Signal(32, reset_less=True), Signal(32, reset_less=True)
        with m.If(en):
            m.d.sync += [xi.eq(Mux(self.itof, i32_to_f32(m, self.x), self.x)), yi.eq(self.y)]

        m.submodules.add = add = FP32Adder(self.fadd_latency)
        m.submodules.mul = mul = FP32Multiplier(self.fmul_latency)
        m.d.comb += [
            add.en.eq(en), add.a.eq(xi), add.b.eq(yi ^ Mux(self.op == VOp.SUB, 0x80000000, 0)),
            mul.en.eq(en), mul.a.eq(xi), mul.b.eq(yi),
        ]
        nan = is_nan(xi) | is_nan(yi)
        a_ge = _key(xi) >= _key(yi)
        other = Signal(32, name="other")
        with m.Switch(self.op):
            with m.Case(VOp.MAX):
                m.d.comb += other.eq(Mux(nan, CANONICAL_NAN, Mux(a_ge, xi, yi)))
            with m.Case(VOp.MIN):
                m.d.comb += other.eq(Mux(nan, CANONICAL_NAN, Mux(a_ge, yi, xi)))
            with m.Case(VOp.MASK):
                m.d.comb += other.eq(Mux(positive(yi), Mux(is_nan(xi), CANONICAL_NAN, xi), 0))
            with m.Case(VOp.IADD):
                m.d.comb += other.eq(xi + yi)
            with m.Default():
                m.d.comb += other.eq(xi)
        binary = Signal(32, name="binary")
        with m.Switch(self.op):
            with m.Case(VOp.ADD, VOp.SUB):
                m.d.comb += binary.eq(delay(m, en, add.s, lb - self.fadd_latency, "add"))
            with m.Case(VOp.MUL):
                m.d.comb += binary.eq(delay(m, en, mul.p, lb - self.fmul_latency, "mul"))
            with m.Default():
                m.d.comb += binary.eq(delay(m, en, other, lb, "other"))

        short = Signal(32, reset_less=True)
        relu = Mux(is_nan(binary), CANONICAL_NAN, Mux(positive(binary), binary, 0))
        with m.If(en):
            m.d.sync += short.eq(Mux(self.act == Act.RELU, relu, binary))
        if self.sfu:
            if self.sfu_module is None:
                m.submodules.sfu = sfu = self._sfu
            else:
                sfu = instance_of(m, self._sfu, self.sfu_module, "sfu")
            m.d.comb += [sfu.x.eq(binary), sfu.act.eq(self.act), sfu.en.eq(en)]
            long = (self.act != Act.NONE) & (self.act != Act.RELU)
            m.d.comb += self.r.eq(Mux(long, sfu.y, short))
        else:
            m.d.comb += self.r.eq(short)
        return m
