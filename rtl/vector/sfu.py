"""``SpecialFunctions``: the vector engine's unary stage, exp / recip / rsqrt / gelu / relu chosen
per element by ``act``, at one latency (docs/vector.md)."""

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.tile.isa import Act
from tessera.rtl.vector.dataflow import CANONICAL_NAN, Dataflow, check_unit_latencies, is_nan
from tessera.rtl.vector.exp import ExpUnit
from tessera.rtl.vector.gelu import GeluUnit
from tessera.rtl.vector.recip import RecipUnit
from tessera.rtl.vector.rsqrt import RsqrtUnit

__all__ = ["SpecialFunctions"]

UNITS = {Act.EXP: ExpUnit, Act.RECIP: RecipUnit, Act.RSQRT: RsqrtUnit, Act.GELU: GeluUnit}


def relu(x):
    """The model's ``relu``: x if x > 0, NaN -> ``0x7FC00000``, everything else +0."""
    positive = ~x[31] & (x[0:31] != 0)
    return Mux(is_nan(x), CANONICAL_NAN, Mux(positive, x, 0))


class SpecialFunctions(wiring.Component):
    """``y = act(x)`` on FP32 bit patterns, bit-exact with ``tb/models/vector.py``, one element per
    cycle, with ``act`` free to change every element.

    The four units (:class:`ExpUnit`, :class:`RecipUnit`, :class:`RsqrtUnit`, :class:`GeluUnit`)
    all see every ``x``; the shorter ones' results are delayed to the longest's, ``act`` and ``x``
    alongside, and a registered select picks the result: ``Act.NONE`` gives ``x`` itself (so the
    caller can always take ``y``), ``Act.RELU`` the model's ``relu(x)``, the others their unit's.
    All four units always run (no per-function gating: an element in flight must not be frozen).

    Ports: ``x`` (FP32 pattern), ``act`` (:class:`tessera.rtl.tile.isa.Act`, sampled with ``x``),
    ``en`` (clock enable), ``y`` (FP32 pattern).
    Latency: ``latency`` cycles with ``en`` high, the longest unit's plus 1 (the select register;
    64 at the default 3 and 3). An ``x`` and ``act`` presented in a cycle with ``en`` high give ``y``
    after exactly ``latency`` enabled cycles. Throughput: one result per cycle.
    Back-pressure: ``en`` is a clock enable; ``en`` low freezes every register (``y`` holds) and
    ignores ``x`` and ``act``. Errors: none (IEEE special values are results). ``ValueError`` for
    an unsupported ``fadd_latency`` or ``fmul_latency`` (1 .. 4).
    """

    x: In(32)
    act: In(Act)
    en: In(1, init=1)
    y: Out(32)

    def __init__(self, fadd_latency: int = 3, fmul_latency: int = 3):
        self.fadd_latency, self.fmul_latency = check_unit_latencies("SpecialFunctions", fadd_latency,
                                                                    fmul_latency)
        plans = [cls.schedule(fadd_latency, fmul_latency) for cls in UNITS.values()]
        self.latency = max(latency for latency, _, _ in plans) + 1
        self.adders = sum(adders for _, adders, _ in plans)
        self.multipliers = sum(multipliers for _, _, multipliers in plans)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        df = Dataflow(m, self.en, self.fadd_latency, self.fmul_latency)
        x, act = df.input(self.x, "x"), df.input(self.act.as_value(), "act")
        results = {}
        for op, cls in UNITS.items():
            unit = m.submodules[op.name.lower()] = cls(self.fadd_latency, self.fmul_latency)
            m.d.comb += [unit.x.eq(self.x), unit.en.eq(self.en)]
            results[op] = df.input(unit.y, op.name.lower(), ready=unit.latency)
        ops = list(results)

        def select(x, act, *ys):
            out = Mux(act == Act.RELU.value, relu(x), x)
            for op, y in zip(ops, ys, strict=True):
                out = Mux(act == op.value, y, out)
            return out
        y = df.reg(select, x, act, *results.values(), name="y", at=self.latency)
        assert y.ready == self.latency
        m.d.comb += self.y.eq(y.value)
        return m
