"""Shared pieces of the numeric units: retimable pipeline stages and a normalising shifter.

Not a block: the units in this package import these helpers.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Const, Mux, Signal, Value

__all__ = ["Pipeline", "normalise", "check_latency"]


def check_latency(unit: str, latency, cuts: dict) -> int:
    """Validate ``latency`` against the supported positions of ``cuts`` (latency -> stage names)."""
    if isinstance(latency, bool) or not isinstance(latency, int) or latency not in cuts:
        allowed = ", ".join(str(k) for k in sorted(cuts))
        raise ValueError(f"{unit} latency = {latency!r} is not supported; allowed: {allowed}")
    return latency


class Pipeline:
    """Named cut points of a datapath; each one is either a register stage or a wire.

    ``stage(name, **values)`` returns a namespace with one signal per value. When ``name`` is in
    ``registered``, the signals are registers loaded only when ``en`` is high (a clock enable that
    freezes the whole pipeline); otherwise they are combinational copies. Writing the datapath once
    as a chain of stages and choosing the registered set per latency retimes the unit.
    Datapath registers have no reset: they hold no control state.
    """

    def __init__(self, m, en, registered, prefix: str = ""):
        self.m, self.en, self.registered, self.prefix = m, en, frozenset(registered), prefix
        self.used: list[str] = []

    def stage(self, name: str, **values) -> SimpleNamespace:
        if name in self.used:
            raise ValueError(f"pipeline stage {name!r} used twice")
        self.used.append(name)
        registered = name in self.registered
        out = {}
        for field, value in values.items():
            value = Value.cast(value)
            sig = Signal(value.shape(), name=f"{self.prefix}{name}_{field}", reset_less=True)
            if registered:
                with self.m.If(self.en):
                    self.m.d.sync += sig.eq(value)
            else:
                self.m.d.comb += sig.eq(value)
            out[field] = sig
        return SimpleNamespace(**out)

    def check(self):
        """Every registered stage name must exist (guards against typos in a latency table)."""
        missing = self.registered - set(self.used)
        if missing:
            raise ValueError(f"unknown pipeline stages {sorted(missing)}")


def normalise(value, stop=None, m=None, name: str = "norm") -> tuple[Value, Value]:
    """Shift ``value`` left until its leading one reaches the top bit; return (shifted, count).

    The count and the shift are computed together, one power of two per level (16, 8, 4, 2, 1
    for up to 32 bits): a level shifts when the top bits of the value it sees are all zero. So
    the path is one zero-detect and one 2:1 mux per level, with no separate count-then-shift.
    ``stop`` (same width, optional) is OR-ed into the zero detection only: a one at position
    ``p`` limits the shift to ``width - 1 - p`` places (used to stop at the smallest-normal
    exponent). A zero ``value`` (and ``stop``) shifts by the largest count the levels reach.

    With a module ``m``, each level's value and probe are combinational signals of ``m`` (named
    ``<name>_v<k>``, ``<name>_p<k>``). Give it whenever there is one: every level reads its input
    three times, and as plain expressions the levels nest, so the design's netlist holds 3^levels
    copies of the input's logic until Yosys merges them (an FP32Adder was 10,358 cells of RTLIL
    instead of a few hundred, and took a second to export).
    """
    value = Value.cast(value)
    width = len(value)
    probe = value if stop is None else value | Value.cast(stop)
    steps = []
    k = 1
    while k < width:
        steps.append(k)
        k *= 2
    bits = []
    for k in reversed(steps):
        if m is not None:
            value, probe = _named(m, value, f"{name}_v{k}"), _named(m, probe, f"{name}_p{k}")
        top_zero = ~probe[width - k:].any()
        value = Mux(top_zero, Cat(Const(0, k), value[:width - k]), value)
        probe = Mux(top_zero, Cat(Const(0, k), probe[:width - k]), probe)
        bits.append(top_zero)
    if m is not None:
        value = _named(m, value, f"{name}_out")
    return value, Cat(*reversed(bits))


def _named(m, value, name: str) -> Signal:
    """``value`` as a combinational signal of ``m`` (so that later expressions share it)."""
    sig = Signal(len(value), name=name)
    m.d.comb += sig.eq(value)
    return sig
