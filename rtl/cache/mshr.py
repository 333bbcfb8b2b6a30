"""Miss status holding registers of an L2 slice."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from tessera.rtl.cache.lru import way_bits


def mshr_bits(cfg) -> int:
    return max(1, (cfg.mshrs - 1).bit_length())


class MshrFile(wiring.Component):
    """``cfg.mshrs`` entries, each tracking one line on its way between memory and the slice.

    An entry is allocated (``alloc_en``, at ``free_idx``) for a primary miss — the line being
    fetched, the way reserved for it and the victim line it replaces — or, for flush/invalidate, for
    a write-back only (``alloc_wb_only``), or for an ALLOC miss, which needs no fill
    (``alloc_nofill``: step 2 is skipped, the line is installed with whatever its way holds and the
    ALLOC, parked first on the entry, zeroes it when it replays). Its life:
      1. write-back, if the victim was dirty: ``wb_valid`` offers it; ``wb_take`` starts it;
         ``wb_done_en`` (all W beats sent) lets the fill start; ``b_en`` ends it (``b_err`` sticks).
      2. fill: ``ar_valid`` offers it; ``ar_take`` sends the AR; ``r_en`` counts the beats
         (``r_beat``, way and set of ``r_idx`` are looked up combinationally), ``r_err`` sticks,
         ``r_last`` ends the fill.
      3. install, once the fill and any write-back are complete: ``install_valid`` offers it and
         ``install_take`` marks the line present.
      4. parked requests: ``push_en``/``pop_en`` count the requests waiting on the entry. The entry
         is freed when installed and no request waits (a write-back-only entry when its B arrives).
    While active, an entry reserves its way in its set (``*_reserved`` masks) and its line and
    victim line are matched by the CAM ports (``look_*``, ``adm_*``).
    All state changes at the clock edge; every output is combinational from the state and the
    index inputs. No back-pressure; the user must not allocate when ``any_free`` is low.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        W, N = cfg.ways, cfg.mshrs
        lb = cfg.addr_bits - cfg.offset_bits
        ib, wb = mshr_bits(cfg), way_bits(W)
        sb = max(1, cfg.index_bits)
        bb = max(1, (cfg.beats_per_line - 1).bit_length())
        cb = (cfg.queue_depth + 1).bit_length() + 1
        self.line_w, self.idx_w, self.cnt_w, self.beat_w = lb, ib, cb, bb
        super().__init__(
            {
                "free_idx": Out(ib),
                "any_free": Out(1),
                "free_count": Out((N + 1).bit_length()),
                "idle": Out(1),
                "alloc_en": In(1),
                "alloc_line": In(lb),
                "alloc_way": In(wb),
                "alloc_victim_line": In(lb),
                "alloc_victim_dirty": In(1),
                "alloc_wb_only": In(1),
                "alloc_nofill": In(1),
                "ar_valid": Out(1),
                "ar_idx": Out(ib),
                "ar_line": Out(lb),
                "ar_take": In(1),
                "wb_valid": Out(1),
                "wb_idx": Out(ib),
                "wb_line": Out(lb),
                "wb_way": Out(wb),
                "wb_set": Out(sb),
                "wb_take": In(1),
                "wb_done_en": In(1),
                "wb_done_idx": In(ib),
                "b_en": In(1),
                "b_idx": In(ib),
                "b_err": In(1),
                "r_en": In(1),
                "r_idx": In(ib),
                "r_last": In(1),
                "r_err": In(1),
                "r_way": Out(wb),
                "r_set": Out(sb),
                "r_beat": Out(bb),
                "install_valid": Out(1),
                "install_idx": Out(ib),
                "install_line": Out(lb),
                "install_way": Out(wb),
                "install_fill_err": Out(1),
                "install_take": In(1),
                "push_en": In(1),
                "push_idx": In(ib),
                "pop_en": In(1),
                "pop_idx": In(ib),
                "q_idx": In(ib),
                "q_installed": Out(1),
                "q_filling": Out(1),
                "q_fill_err": Out(1),
                "q_wb_err": Out(1),
                "q_wb_pending": Out(1),
                "q_beat": Out(bb),
                "q_waiters": Out(cb),
                "look_line": In(lb),
                "look_hit": Out(1),
                "look_idx": Out(ib),
                "adm_line": In(lb),
                "adm_hit": Out(1),
                "adm_hit_filling": Out(1),
                "adm_wb_hit": Out(1),
                "adm_set": In(sb),
                "adm_reserved": Out(W),
                "s1_set": In(sb),
                "s1_reserved": Out(W),
            }
        )

    def elaborate(self, platform):
        m = Module()
        E = self._entries()
        free_i, ar_i, wb_i, in_i = self._offers(m, E)
        self._index_lookups(m, E)
        self._cam(m, E)
        self._entry_updates(m, E, free_i=free_i, ar_i=ar_i, wb_i=wb_i, in_i=in_i)
        return m

    def _set_of(self, line):
        """The set index bits of a line address (0 for a single-set cache)."""
        ib = self.cfg.index_bits
        return line[:ib] if ib else 0

    def _entries(self) -> list[dict]:
        """The state registers of every entry, ``m{i}_<field>``, as one dict of Signals per entry."""
        E = []
        for i in range(self.cfg.mshrs):
            E.append(
                dict(
                    active=Signal(name=f"m{i}_active"),
                    wb_only=Signal(name=f"m{i}_wb_only"),
                    nofill=Signal(name=f"m{i}_nofill"),
                    wb_needed=Signal(name=f"m{i}_wb_needed"),
                    wb_pending=Signal(name=f"m{i}_wb_pending"),
                    ar_needed=Signal(name=f"m{i}_ar_needed"),
                    filling=Signal(name=f"m{i}_filling"),
                    installed=Signal(name=f"m{i}_installed"),
                    fill_err=Signal(name=f"m{i}_fill_err"),
                    wb_err=Signal(name=f"m{i}_wb_err"),
                    waiters=Signal(self.cnt_w, name=f"m{i}_waiters"),
                    beat=Signal(self.beat_w, name=f"m{i}_beat"),
                    line=Signal(self.line_w, name=f"m{i}_line"),
                    victim=Signal(self.line_w, name=f"m{i}_victim"),
                    way=Signal(self.alloc_way.shape(), name=f"m{i}_way"),
                )
            )
        return E

    def _prio(self, m, E, name, cond):
        """Lowest index whose cond(e) holds -> (valid, idx)."""
        valid, idx = Signal(name=f"{name}_v"), Signal(self.idx_w, name=f"{name}_i")
        for i in reversed(range(len(E))):
            with m.If(cond(E[i])):
                m.d.comb += [valid.eq(1), idx.eq(i)]
        return valid, idx

    def _lookup(self, m, E, idx, field, out):
        """``out`` = field ``field`` of entry ``idx`` (combinational mux)."""
        for i in range(len(E)):
            with m.If(idx == i):
                m.d.comb += out.eq(E[i][field])

    def _offers(self, m, E):
        """Free entry, AR, write-back and install offers: lowest-index priority among the entries
        that qualify, with their line / way / set. Combinational from the state; an offer is taken
        (``alloc_en``, ``ar_take``, ``wb_take``, ``install_take``) at the clock edge. Returns the
        chosen indices ``(free_i, ar_i, wb_i, in_i)``.
        """
        N = self.cfg.mshrs
        free_v, free_i = self._prio(m, E, "free", lambda e: ~e["active"])
        m.d.comb += [
            self.any_free.eq(free_v),
            self.free_idx.eq(free_i),
            self.free_count.eq(sum((~e["active"]).as_unsigned() for e in E)),
            self.idle.eq(self.free_count == N),
        ]

        ar_v, ar_i = self._prio(m, E, "ar", lambda e: e["active"] & e["ar_needed"])
        m.d.comb += [self.ar_valid.eq(ar_v), self.ar_idx.eq(ar_i)]
        self._lookup(m, E, ar_i, "line", self.ar_line)
        wb_v, wb_i = self._prio(m, E, "wb", lambda e: e["active"] & e["wb_needed"])
        m.d.comb += [self.wb_valid.eq(wb_v), self.wb_idx.eq(wb_i)]
        self._lookup(m, E, wb_i, "victim", self.wb_line)
        self._lookup(m, E, wb_i, "way", self.wb_way)
        wl = Signal(self.line_w)
        self._lookup(m, E, wb_i, "victim", wl)
        m.d.comb += self.wb_set.eq(self._set_of(wl))
        in_v, in_i = self._prio(
            m,
            E,
            "inst",
            lambda e: (
                e["active"]
                & ~e["wb_only"]
                & ~e["filling"]
                & ~e["ar_needed"]
                & ~e["wb_needed"]
                & ~e["wb_pending"]
                & ~e["installed"]
            ),
        )
        m.d.comb += [self.install_valid.eq(in_v), self.install_idx.eq(in_i)]
        self._lookup(m, E, in_i, "line", self.install_line)
        self._lookup(m, E, in_i, "way", self.install_way)
        self._lookup(m, E, in_i, "fill_err", self.install_fill_err)
        return free_i, ar_i, wb_i, in_i

    def _index_lookups(self, m, E):
        """Per-index read ports, combinational: way / set / beat of the filling entry ``r_idx``, and
        the state of the entry ``q_idx`` (the one the head of the slice's parking queue waits on).
        """
        rl = Signal(self.line_w)
        self._lookup(m, E, self.r_idx, "way", self.r_way)
        self._lookup(m, E, self.r_idx, "beat", self.r_beat)
        self._lookup(m, E, self.r_idx, "line", rl)
        m.d.comb += self.r_set.eq(self._set_of(rl))
        for field, out in (
            ("installed", self.q_installed),
            ("filling", self.q_filling),
            ("fill_err", self.q_fill_err),
            ("wb_err", self.q_wb_err),
            ("wb_pending", self.q_wb_pending),
            ("beat", self.q_beat),
            ("waiters", self.q_waiters),
        ):
            self._lookup(m, E, self.q_idx, field, out)

    def _cam(self, m, E):
        """CAM ports, combinational: ``look_*`` (the line in the slice's stage 1 being fetched),
        ``adm_*`` (the line of the request offered for admission being fetched, or still being
        written back as a victim: ``adm_wb_hit``) and the ways reserved in ``adm_set`` / ``s1_set``.
        """
        for i, e in enumerate(E):
            fetch = e["active"] & ~e["wb_only"]
            with m.If(fetch & (e["line"] == self.look_line)):
                m.d.comb += [self.look_hit.eq(1), self.look_idx.eq(i)]
            with m.If(fetch & (e["line"] == self.adm_line)):
                m.d.comb += [self.adm_hit.eq(1), self.adm_hit_filling.eq(~e["installed"])]
            with m.If(e["active"] & e["wb_pending"] & (e["victim"] == self.adm_line)):
                m.d.comb += self.adm_wb_hit.eq(1)
            for w in range(self.cfg.ways):
                with m.If(fetch & (e["way"] == w) & (self._set_of(e["line"]) == self.adm_set)):
                    m.d.comb += self.adm_reserved[w].eq(1)
                with m.If(fetch & (e["way"] == w) & (self._set_of(e["line"]) == self.s1_set)):
                    m.d.comb += self.s1_reserved[w].eq(1)

    def _entry_updates(self, m, E, *, free_i, ar_i, wb_i, in_i):
        """Every entry's state at the clock edge: waiter count (``push_en`` / ``pop_en``), the steps
        of its life (``ar_take``, ``wb_take``, ``wb_done_en``, ``b_en``, ``r_en``, ``install_take``),
        freeing, and allocation at ``free_i`` (``alloc_en``).
        ``ar_i`` / ``wb_i`` / ``in_i`` are the offered indices from :meth:`_offers`.
        """
        for i, e in enumerate(E):
            push = self.push_en & (self.push_idx == i)
            pop = self.pop_en & (self.pop_idx == i)
            waiters_next = Signal.like(e["waiters"], name=f"m{i}_waiters_next")
            m.d.comb += waiters_next.eq(e["waiters"] + push - pop)
            m.d.sync += e["waiters"].eq(waiters_next)
            with m.If(self.ar_take & (ar_i == i)):
                m.d.sync += e["ar_needed"].eq(0)
            with m.If(self.wb_take & (wb_i == i)):
                m.d.sync += e["wb_needed"].eq(0)
            with m.If(self.wb_done_en & (self.wb_done_idx == i) & ~e["wb_only"] & ~e["nofill"]):
                m.d.sync += e["ar_needed"].eq(1)
            with m.If(self.b_en & (self.b_idx == i)):
                m.d.sync += [e["wb_pending"].eq(0), e["wb_err"].eq(e["wb_err"] | self.b_err)]
            with m.If(self.r_en & (self.r_idx == i)):
                m.d.sync += [e["beat"].eq(e["beat"] + 1), e["fill_err"].eq(e["fill_err"] | self.r_err)]
                with m.If(self.r_last):
                    m.d.sync += e["filling"].eq(0)
            with m.If(self.install_take & (in_i == i)):
                m.d.sync += e["installed"].eq(1)
            done_wb_only = e["wb_only"] & ~e["wb_needed"] & ~e["wb_pending"]
            done_fetch = ~e["wb_only"] & e["installed"] & (waiters_next == 0)
            with m.If(e["active"] & (done_wb_only | done_fetch)):
                m.d.sync += e["active"].eq(0)
            with m.If(self.alloc_en & (free_i == i)):
                m.d.sync += [
                    e["active"].eq(1),
                    e["wb_only"].eq(self.alloc_wb_only),
                    e["nofill"].eq(self.alloc_nofill),
                    e["wb_needed"].eq(self.alloc_victim_dirty),
                    e["wb_pending"].eq(self.alloc_victim_dirty),
                    e["ar_needed"].eq(~self.alloc_victim_dirty & ~self.alloc_wb_only & ~self.alloc_nofill),
                    e["filling"].eq(~self.alloc_wb_only & ~self.alloc_nofill),
                    e["installed"].eq(0),
                    e["fill_err"].eq(0),
                    e["wb_err"].eq(0),
                    e["beat"].eq(0),
                    e["line"].eq(self.alloc_line),
                    e["victim"].eq(self.alloc_victim_line),
                    e["way"].eq(self.alloc_way),
                ]
