"""``Dataflow``: schedules a dataflow graph of FP32 operations into a clock-enabled pipeline.

Not a block: the special-function units of this package describe their algorithm with it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.numeric.fp32_add import FP32Adder
from tessera.rtl.numeric.fp32_mul import FP32Multiplier

__all__ = ["Dataflow", "DataflowUnit", "Node", "check_unit_latencies", "clip", "is_nan", "trunc_int",
           "CANONICAL_NAN", "SIGN"]

CANONICAL_NAN = 0x7FC00000

SIGN = 0x80000000
_LATENCIES = (1, 2, 3, 4)       # what FP32Adder and FP32Multiplier support


def check_unit_latencies(unit: str, fadd_latency, fmul_latency) -> tuple[int, int]:
    """Validate the FP unit latencies a special-function unit is built from (before elaboration)."""
    for arg, value in (("fadd_latency", fadd_latency), ("fmul_latency", fmul_latency)):
        if isinstance(value, bool) or not isinstance(value, int) or value not in _LATENCIES:
            raise ValueError(f"{unit}: {arg} = {value!r} is not supported; allowed: 1, 2, 3, 4")
    return fadd_latency, fmul_latency


class Node:
    """A value of the dataflow: an Amaranth value valid from cycle ``ready`` on (``None`` for a
    constant, valid at every cycle). ``taps[k]`` is the value delayed by ``k`` enabled cycles."""

    def __init__(self, value, ready: int | None, name: str):
        self.value, self.ready, self.name = Value.cast(value), ready, name
        self.taps = [self.value]

    @property
    def is_const(self) -> bool:
        return self.ready is None


class Dataflow:
    """Builds the pipeline of one algorithm into module ``m``, cycle by cycle.

    Every value knows the cycle it is ready at (the input: cycle 0). An operation on values of
    different ages first delays the younger ones through registers (one delay line per value,
    shared by all its consumers); constants are never delayed. FP32 additions, subtractions and
    multiplications are :class:`FP32Adder` / :class:`FP32Multiplier` instances; integer and select
    steps are either combinational (:meth:`comb`) or one registered stage (:meth:`reg`). Every
    register, those of the FP units included, is clock-enabled by ``en``: ``en`` low freezes the
    whole pipeline. ``adders`` and ``multipliers`` count the FP units instantiated.

    With ``m = None`` nothing is built (no units, no statements): a dry run that only schedules,
    so that a unit knows its latency and unit counts before elaboration.
    """

    def __init__(self, m, en, fadd_latency: int, fmul_latency: int):
        self.m, self.en = m, en
        self.fadd_latency, self.fmul_latency = fadd_latency, fmul_latency
        self.adders = self.multipliers = 0
        self._names: set[str] = set()

    # ------------------------------------------------------------------ values

    def _name(self, name: str) -> str:
        base, k = name, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def _load(self, reg, value):
        """``reg`` loads ``value`` on every enabled cycle."""
        if self.m is not None:
            with self.m.If(self.en):
                self.m.d.sync += reg.eq(value)

    def input(self, value, name: str = "x", ready: int = 0) -> Node:
        """An outside value, valid from cycle ``ready`` (the pipeline's input: 0)."""
        return Node(value, ready, self._name(name))

    def const(self, bits: int, width: int = 32) -> Node:
        return Node(Const(bits, width), None, f"c{bits:x}")

    def delayed(self, node: Node, cycle: int) -> Value:
        """``node``'s value as it is at ``cycle`` (>= its ready cycle): its delay line's tap."""
        if node.is_const:
            return node.value
        k = cycle - node.ready
        if k < 0:
            raise ValueError(f"{node.name} is ready at {node.ready}, wanted at {cycle}")
        while len(node.taps) <= k:
            reg = Signal(node.value.shape(), name=f"{node.name}_d{len(node.taps)}", reset_less=True)
            self._load(reg, node.taps[-1])
            node.taps.append(reg)
        return node.taps[k]

    @staticmethod
    def _ready(nodes, at: int | None = None) -> int:
        cycles = [n.ready for n in nodes if not n.is_const]
        return max(cycles + ([at] if at is not None else []), default=0)

    # ------------------------------------------------------------------ integer and select steps

    def comb(self, fn, *nodes: Node, name: str = "comb") -> Node:
        """``fn`` of the nodes' values (aligned to the youngest), combinational."""
        cycle = self._ready(nodes)
        out = fn(*(self.delayed(n, cycle) for n in nodes))
        if all(n.is_const for n in nodes):
            return Node(out, None, self._name(name))
        return Node(out, cycle, self._name(name))

    def reg(self, fn, *nodes: Node, name: str = "reg", at: int | None = None) -> Node:
        """``fn`` of the nodes' values, one registered stage: ready one cycle after the youngest
        input, or at cycle ``at`` (the inputs are then delayed to ``at - 1`` first, so that a wide
        result is computed late rather than delayed). A tuple from ``fn`` gives a tuple of nodes."""
        cycle = self._ready(nodes, None if at is None else at - 1)
        values = fn(*(self.delayed(n, cycle) for n in nodes))
        out = []
        for k, value in enumerate(values if isinstance(values, tuple) else (values,)):
            value = Value.cast(value)
            sig_name = self._name(name if k == 0 else f"{name}{k}")
            sig = Signal(value.shape(), name=sig_name, reset_less=True)
            self._load(sig, value)
            out.append(Node(sig, cycle + 1, sig_name))
        return tuple(out) if isinstance(values, tuple) else out[0]

    # ------------------------------------------------------------------ FP32 operations

    def _unit(self, kind: str, a: Node, b: Node, name: str | None, flip_b: bool = False) -> Node:
        cycle = self._ready((a, b))
        va, vb = self.delayed(a, cycle), self.delayed(b, cycle)
        if flip_b:
            vb = vb ^ SIGN
        if kind == "mul":
            make, out, latency = FP32Multiplier, "p", self.fmul_latency
            self.multipliers += 1
        else:
            make, out, latency = FP32Adder, "s", self.fadd_latency
            self.adders += 1
        name = self._name(name or f"{kind}{self.adders + self.multipliers}")
        if self.m is None:
            return Node(Signal(32, name=name), cycle + latency, name)
        unit = self.m.submodules[name] = make(latency)
        self.m.d.comb += [unit.a.eq(va), unit.b.eq(vb), unit.en.eq(self.en)]
        return Node(getattr(unit, out), cycle + latency, name)

    def add(self, a: Node, b: Node, name: str | None = None) -> Node:
        return self._unit("add", a, b, name)

    def sub(self, a: Node, b: Node, name: str | None = None) -> Node:
        """a - b as a + (-b): bit-exact with ``f32_sub`` (signed zeros included; NaNs canonical)."""
        return self._unit("add", a, b, name, flip_b=True)

    def mul(self, a: Node, b: Node, name: str | None = None) -> Node:
        return self._unit("mul", a, b, name)

    # ------------------------------------------------------------------ shared FP32 steps

    def scale(self, p: Node, n: Node, name: str = "scale") -> Node:
        """p 2^n in two multiplications, by 2^floor(n/2) (exact) and by 2^(n - floor(n/2)), as the
        model's ``_scale``; ``n`` a signed integer node whose halves are in -126 .. 127. The two
        exponent fields are registered just before their multiplication (only ``n`` is delayed)."""
        def field(v):
            return (v + 127)[0:8]

        def pow2(f):
            return Cat(Const(0, 23), f, Const(0, 1))

        f1 = self.reg(lambda v: field(v.as_signed() >> 1), n, name=f"{name}_e1", at=p.ready)
        q = self.mul(p, self.comb(pow2, f1, name=f"{name}_p1"), name=f"{name}_m1")
        f2 = self.reg(lambda v: field(v.as_signed() - (v.as_signed() >> 1)), n, name=f"{name}_e2",
                      at=q.ready)
        return self.mul(q, self.comb(pow2, f2, name=f"{name}_p2"), name=f"{name}_m2")


def is_nan(v) -> Value:
    """``v`` (32 bits) is a NaN pattern."""
    return (v[23:31] == 0xFF) & (v[0:23] != 0)


def clip(v, lo: int, hi: int) -> Value:
    """The signed value ``v`` clamped to ``lo .. hi``."""
    v = v.as_signed()
    return Mux(v < lo, lo, Mux(v > hi, hi, v))


def trunc_int(v, bits: int) -> tuple[Value, Value]:
    """The FP32 pattern ``v`` truncated toward zero: ``(magnitude, big)``, where ``magnitude`` (``bits``
    wide) is trunc(|v|) when |v| < 2^bits, and ``big`` says |v| >= 2^bits (infinities and NaNs
    included). Exact: the integer part of 1.f 2^k (k < bits) is the top k + 1 bits of 1.f."""
    exp = v[23:31]
    top = Cat(v[23 - (bits - 1):23], Const(1, 1))       # 1.f to bits - 1 fraction bits
    shift = (126 + bits - exp)[0:bits.bit_length()]     # bits - 1 - k, for exp = 127 + k
    magnitude = Mux(exp < 127, 0, top >> shift)[0:bits]
    return magnitude, exp >= 127 + bits


class DataflowUnit(wiring.Component):
    """Base of the special-function units: FP32 ``x`` in, FP32 ``y`` out, clock enable ``en``;
    a subclass describes its algorithm in the static method ``build(df, x) -> y`` (``Dataflow``
    nodes). The latency and the FP unit counts come from a dry run of ``build`` (:meth:`schedule`).

    Ports (the same for every subclass, so given as a signature rather than annotations):
    ``x: In(32)``, ``en: In(1, init=1)``, ``y: Out(32)``.
    """

    def __init__(self, fadd_latency: int = 3, fmul_latency: int = 3):
        self.fadd_latency, self.fmul_latency = check_unit_latencies(type(self).__name__, fadd_latency,
                                                                    fmul_latency)
        self.latency, self.adders, self.multipliers = self.schedule(fadd_latency, fmul_latency)
        super().__init__({"x": In(32), "en": In(1, init=1), "y": Out(32)})

    @classmethod
    def schedule(cls, fadd_latency: int = 3, fmul_latency: int = 3) -> tuple[int, int, int]:
        """(latency, FP32Adder count, FP32Multiplier count) at these FP unit latencies, without
        building anything."""
        check_unit_latencies(cls.__name__, fadd_latency, fmul_latency)
        dry = Dataflow(None, None, fadd_latency, fmul_latency)
        return cls.build(dry, dry.input(Signal(32))).ready, dry.adders, dry.multipliers

    @staticmethod
    def build(df: Dataflow, x: Node) -> Node:
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        df = Dataflow(m, self.en, self.fadd_latency, self.fmul_latency)
        y = self.build(df, df.input(self.x))
        assert y.ready == self.latency, (y.ready, self.latency)
        m.d.comb += self.y.eq(y.value)
        return m
