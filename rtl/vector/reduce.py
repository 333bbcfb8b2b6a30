"""The vector engine's row reductions: rowsum in 16 partial sums and a tree, rowmax (docs/vector.md)."""

from __future__ import annotations

from amaranth import Array, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from tessera.rtl.numeric.fp32_add import FP32Adder
from tessera.rtl.tile.isa import Reduce
from tessera.rtl.vector.lane import CANONICAL_NAN, delay, is_nan

__all__ = ["RowReducer", "PARTIALS"]

PARTIALS = 16           # rowsum's partial sums: element j goes to partial j mod 16
NEG_INF = 0xFF800000


def vmax(m: Module, a, b, name: str):
    """IEEE 754-2019 maximum of two FP32 patterns (NaN -> canonical NaN; max(-0, +0) = +0)."""
    out = Signal(32, name=name)

    def key(v):
        return Mux(v[31], v ^ 0x7FFFFFFF, v).as_signed()

    m.d.comb += out.eq(Mux(is_nan(a) | is_nan(b), CANONICAL_NAN, Mux(key(a) >= key(b), a, b)))
    return out


class RowReducer(wiring.Component):
    """Reduces each row of lane words to one FP32 value: the sum (``mode`` SUM) or the max (MAX).

    Input, one word per enabled cycle with ``valid``: ``r`` (``lanes`` results), ``mask`` (the
    lanes holding elements of the row), ``slot`` (the word's index in the row modulo 16 / lanes),
    ``first`` (first word of the row), ``fresh`` (one of the row's first 16 / lanes words: its
    partial starts from +0), ``last`` (last word of the row); ``words`` (words per row) is constant
    during an instruction. Output ``out``: one row result per row, in order.

    SUM: lane l's word w adds into partial (w mod 16/lanes, l), i.e. element j into partial
    j mod 16, through one :class:`FP32Adder` per lane; a partial is read again 16 / lanes words
    later (the result leaving the adder in that cycle is forwarded). When 16 / lanes is below the
    adder's latency the engine spaces the words (``min_gap``). At the row's end the 16
    partials (+0 for slots the row never reached) are copied into a tree buffer and added level by
    level (8, 4, 2, 1 additions, neighbours paired) by one more adder, while the next row
    accumulates. MAX: a running maximum per lane, combined over the lanes at the row's end.

    Latency: SUM, ``fadd_latency`` + 15 + 4 x (``fadd_latency`` + 1) cycles from a row's last
    word to its result; MAX, 1 cycle. Throughput: one word per cycle; a new row result every
    15 + 4 x (``fadd_latency`` + 1) cycles at most for SUM (rows shorter than that stall).
    Back-pressure: ``stall`` is high while a row's end cannot be taken (the tree or the result
    register is busy); the engine then holds ``en`` low. ``out`` holds its result until taken.
    Errors: none.
    """

    def __init__(self, lanes: int, fadd_latency: int = 3):
        if PARTIALS % lanes:
            raise ValueError(f"RowReducer: lanes = {lanes}; at most {PARTIALS} lanes, a power of two")
        self.lanes, self.fadd_latency, self.slots = lanes, fadd_latency, PARTIALS // lanes
        # enabled cycles between two words of a sum, so that a slot's previous word has left the adder
        self.min_gap = -(-fadd_latency // self.slots)
        super().__init__({
            "valid": In(1), "r": In(32 * lanes), "mask": In(lanes), "slot": In(max(1, ceil_log2(self.slots))),
            "first": In(1), "fresh": In(1), "last": In(1), "words": In(12), "mode": In(Reduce),
            "en": In(1), "stall": Out(1),
            "out": Out(stream.Signature(32)),
        })

    def elaborate(self, platform):
        m = Module()
        rr_data = Signal(32)
        m.d.comb += self.out.payload.eq(rr_data)
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += self.out.valid.eq(0)
        max_stall = self._max(m, rr_data)
        tree_busy, capture = self._tree(m, rr_data)
        sum_stall = self._sum(m, tree_busy, capture)
        m.d.comb += self.stall.eq(Mux(self.mode == Reduce.MAX, max_stall, sum_stall))
        return m

    def _lane(self, l):
        return self.r[32 * l:32 * (l + 1)]

    def _max(self, m, rr_data):
        """MAX: running per-lane maxima; at the row's end their maximum goes to the result register
        (``stall`` while it is full)."""
        lanes = self.lanes
        run = [Signal(32, name=f"max{l}", init=NEG_INF) for l in range(lanes)]
        new = []
        for l in range(lanes):
            v = Mux(self.mask[l], self._lane(l), NEG_INF)
            new.append(vmax(m, Mux(self.first, NEG_INF, run[l]), v, f"max_new{l}"))
        total = new[0]
        for l in range(1, lanes):
            total = vmax(m, total, new[l], f"max_tot{l}")
        stall = self.valid & self.last & self.out.valid & (self.mode == Reduce.MAX)
        with m.If(self.en & self.valid & (self.mode == Reduce.MAX)):
            m.d.sync += [run[l].eq(new[l]) for l in range(lanes)]
            with m.If(self.last):
                m.d.sync += [rr_data.eq(total), self.out.valid.eq(1)]
        return stall

    def _sum(self, m, tree_busy, capture):
        """SUM: the per-lane partial sums and their adders; returns ``stall`` (a row's end leaves the
        adders while the tree is busy)."""
        lanes, slots, la = self.lanes, self.slots, self.fadd_latency
        parts = [[Signal(32, name=f"part{s}_{l}") for l in range(lanes)] for s in range(slots)]
        tail_valid = delay(m, self.en, self.valid, la, "sum_valid")
        tail_slot = delay(m, self.en, self.slot, la, "sum_slot")
        tail_last = delay(m, self.en, self.last, la, "sum_last")
        results = []
        for l in range(lanes):
            add = FP32Adder(la)
            m.submodules[f"add{l}"] = add
            # the partial as it is after this cycle's write-back (the word that left the adder
            # now may be the one before in the same slot: 16 / lanes == the adder's latency)
            cur = Mux(tail_valid & (tail_slot == self.slot), add.s,
                      Array(parts[s][l] for s in range(slots))[self.slot])
            m.d.comb += [add.en.eq(self.en), add.a.eq(Mux(self.fresh, 0, cur)),
                         add.b.eq(Mux(self.mask[l], self._lane(l), 0))]
            results.append(add.s)
        merged = [[Mux(tail_valid & (tail_slot == s), results[l], parts[s][l]) for l in range(lanes)]
                  for s in range(slots)]
        with m.If(self.en & tail_valid):
            for s in range(slots):
                with m.If(tail_slot == s):
                    m.d.sync += [parts[s][l].eq(results[l]) for l in range(lanes)]
        ending = tail_valid & tail_last & (self.mode == Reduce.SUM)
        m.d.comb += capture.valid.eq(self.en & ending & ~tree_busy)
        for s in range(slots):
            for l in range(lanes):
                m.d.comb += capture.parts[lanes * s + l].eq(Mux(s < self.words, merged[s][l], 0))
        return ending & tree_busy

    def _tree(self, m, rr_data):
        """The tree over the 16 partials of a finished row: one adder, level by level. Returns
        (``busy``, ``capture``: the engine side's request to load a new row's partials)."""
        la = self.fadd_latency
        tree = [Signal(32, name=f"tree{k}") for k in range(PARTIALS)]
        capture = _Capture(m)
        active = Signal()
        n = Signal(range(PARTIALS + 1))     # additions of the current level
        q = Signal(range(PARTIALS + 1))     # next addition to issue
        m.submodules.tree_add = add = FP32Adder(la)
        issue = active & (q < n)
        tarr = Array(tree)
        m.d.comb += [add.en.eq(1), add.a.eq(tarr[q << 1]), add.b.eq(tarr[(q << 1) | 1])]
        wb_valid = delay(m, Const(1), issue, la, "tree_valid")
        wb_idx = delay(m, Const(1), q, la, "tree_idx")
        inflight = Signal(range(PARTIALS + 1))
        m.d.sync += inflight.eq(inflight + issue - wb_valid)
        with m.If(wb_valid):
            for k in range(PARTIALS // 2):
                with m.If(wb_idx == k):
                    m.d.sync += tree[k].eq(add.s)
        with m.If(issue):
            m.d.sync += q.eq(q + 1)
        done_level = active & (q == n) & (inflight == 0) & ~wb_valid
        with m.If(done_level):
            with m.If(n == 1):
                with m.If(~self.out.valid):
                    m.d.sync += [rr_data.eq(tree[0]), self.out.valid.eq(1), active.eq(0)]
            with m.Else():
                m.d.sync += [n.eq(n >> 1), q.eq(0)]
        with m.If(capture.valid):
            m.d.sync += [active.eq(1), n.eq(PARTIALS // 2), q.eq(0)]
            m.d.sync += [tree[k].eq(capture.parts[k]) for k in range(PARTIALS)]
        return active, capture


class _Capture:
    """The request to load a finished row's partials into the tree (signals driven by ``_sum``)."""

    def __init__(self, m):
        self.valid = Signal(name="tree_capture")
        self.parts = [Signal(32, name=f"tree_in{k}") for k in range(PARTIALS)]
