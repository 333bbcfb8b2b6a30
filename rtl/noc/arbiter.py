"""Round-robin arbitration helpers shared by the router and the network interface.

These are expression builders, not a block: a round-robin arbiter over ``n`` requesters is
``pick = round_robin(requests, prio)`` with a priority mask register ``prio`` (``n`` bits,
initially all ones) that the caller advances with ``prio.eq(after(pick, n))`` when the grant is
used. ``prio`` marks the requesters that come next in turn; the lowest requester among them wins,
or, if none of them requests, the lowest requester overall. Every requester that keeps
requesting is served within ``n`` grants.
"""

from __future__ import annotations

from amaranth.hdl import Const, Mux, Value

__all__ = ["lowest_one", "round_robin", "after", "onehot_mux"]


def lowest_one(v: Value) -> Value:
    """One-hot of the lowest set bit of ``v`` (zero when ``v`` is zero)."""
    n = len(v)
    return (v & (~v + 1))[:n]


def round_robin(requests: Value, prio: Value) -> Value:
    """One-hot grant: the lowest request at or above the priority mask, else the lowest."""
    masked = requests & prio
    return Mux(masked.any(), lowest_one(masked), lowest_one(requests))


def after(grant: Value, n: int) -> Value:
    """Priority mask that puts the requesters above the one-hot ``grant`` first next time."""
    return (~((grant << 1) - 1))[:n] if n > 1 else Const(1, 1)


def onehot_mux(sel: Value, values: list[Value]) -> Value:
    """AND-OR multiplexer: ``values[i]`` where ``sel`` is one-hot at ``i`` (zero if ``sel`` is 0)."""
    out = 0
    for i, v in enumerate(values):
        out = out | Mux(sel[i], Value.cast(v), 0)
    return out
