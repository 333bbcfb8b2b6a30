"""Shared pieces of the numeric units: retimable pipeline stages and a leading-zero counter.

Not a block: the units in this package import these helpers.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Const, Mux, Signal, Value

__all__ = ["Pipeline", "leading_zeros", "check_latency"]


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


def leading_zeros(value) -> Value:
    """Number of leading zeros of ``value`` (``len(value)`` when it is zero), as a log-depth tree.

    The value is padded with ones at the bottom to a power-of-two width, so the count never
    exceeds the original width.
    """
    value = Value.cast(value)
    width = len(value)
    size = 1
    while size < width:
        size *= 2
    padded = Cat(Const(-1, size - width), value) if size > width else value

    def tree(v):
        # -> (all_zero, count of leading zeros, valid when not all_zero)
        if len(v) == 1:
            return ~v[0], Const(0, 0)          # a count below 1 needs no bits
        half = len(v) // 2
        lo_zero, lo_count = tree(v[:half])
        hi_zero, hi_count = tree(v[half:])
        return hi_zero & lo_zero, Mux(hi_zero, Cat(lo_count, Const(1, 1)), Cat(hi_count, Const(0, 1)))

    if width == 0:
        raise ValueError("leading_zeros of an empty value")
    zero, count = tree(padded)
    return Mux(zero, width, count)
