"""True-LRU replacement for one set: age update and victim choice."""

from __future__ import annotations

from amaranth import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


def lru_age_bits(ways: int) -> int:
    return max(1, (ways - 1).bit_length())


def way_bits(ways: int) -> int:
    return max(1, (ways - 1).bit_length())


class LruPolicy(wiring.Component):
    """True LRU of one set, as ages: purely combinational (latency 0, no state, no back-pressure).

    Each way of a set holds an age ``0 .. ways-1``; the ages of a set are always a permutation
    (the reset value gives way ``i`` age ``i``). The most recently used way has age 0, the least
    recently used age ``ways-1``.

    Ports:
      ``ages``        the set's ages, way 0 in the low ``age_bits``.
      ``touch_way``   the way being used; ``ages_next`` are the ages after that use (it becomes 0,
                      every way younger than it ages by one: the permutation is kept).
      ``valid``, ``reserved``  per-way bit masks; reserved ways (a line being fetched into them,
                      or pinned for parked requests) are never chosen.
      ``victim``      the way to replace: the lowest-numbered invalid unreserved way if any,
                      else the oldest unreserved way. ``victim_ok`` is low when every way is reserved.
      ``victim_valid`` the victim holds a valid line (the replacement is an eviction).
    Invalid parameters: ``ways`` < 1 raises ValueError.
    """

    def __init__(self, ways: int):
        if not isinstance(ways, int) or ways < 1:
            raise ValueError(f"LruPolicy: ways = {ways!r} must be an integer >= 1")
        self.ways = ways
        self.age_bits = lru_age_bits(ways)
        wb = way_bits(ways)
        super().__init__(
            {
                "ages": In(ways * self.age_bits),
                "touch_way": In(wb),
                "ages_next": Out(ways * self.age_bits),
                "valid": In(ways),
                "reserved": In(ways),
                "victim": Out(wb),
                "victim_ok": Out(1),
                "victim_valid": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        W, ab = self.ways, self.age_bits
        age = [self.ages[i * ab : (i + 1) * ab] for i in range(W)]

        touched = Signal(ab)
        for i in range(W):
            with m.If(self.touch_way == i):
                m.d.comb += touched.eq(age[i])
        for i in range(W):
            nxt = self.ages_next[i * ab : (i + 1) * ab]
            with m.If(self.touch_way == i):
                m.d.comb += nxt.eq(0)
            with m.Elif(age[i] < touched):
                m.d.comb += nxt.eq(age[i] + 1)
            with m.Else():
                m.d.comb += nxt.eq(age[i])

        # Chain of (found, way, age) stages, one per way: first invalid, then oldest.
        cand = ~self.reserved
        inv_found, inv_way = Signal(), Signal(self.victim.shape())
        old_found, old_way, old_age = Signal(), Signal(self.victim.shape()), Signal(ab)
        f_prev, w_prev = Const(0, 1), Const(0, self.victim.shape())
        of_prev, ow_prev, oa_prev = Const(0, 1), Const(0, self.victim.shape()), Const(0, ab)
        for i in range(W):
            f, w = Signal(name=f"inv_f{i}"), Signal(self.victim.shape(), name=f"inv_w{i}")
            take = cand[i] & ~self.valid[i] & ~f_prev
            m.d.comb += f.eq(f_prev | take)
            with m.If(take):
                m.d.comb += w.eq(i)
            with m.Else():
                m.d.comb += w.eq(w_prev)
            of, ow, oa = (
                Signal(name=f"old_f{i}"),
                Signal(self.victim.shape(), name=f"old_w{i}"),
                Signal(ab, name=f"old_a{i}"),
            )
            better = cand[i] & (~of_prev | (age[i] > oa_prev))
            with m.If(better):
                m.d.comb += [of.eq(1), ow.eq(i), oa.eq(age[i])]
            with m.Else():
                m.d.comb += [of.eq(of_prev), ow.eq(ow_prev), oa.eq(oa_prev)]
            f_prev, w_prev, of_prev, ow_prev, oa_prev = f, w, of, ow, oa
        m.d.comb += [
            inv_found.eq(f_prev),
            inv_way.eq(w_prev),
            old_found.eq(of_prev),
            old_way.eq(ow_prev),
            old_age.eq(oa_prev),
        ]
        with m.If(inv_found):
            m.d.comb += [self.victim.eq(inv_way), self.victim_valid.eq(0)]
        with m.Else():
            m.d.comb += [self.victim.eq(old_way), self.victim_valid.eq(old_found)]
        m.d.comb += self.victim_ok.eq(inv_found | old_found)
        return m
