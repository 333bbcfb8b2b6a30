"""Miss status holding registers of an L2 slice."""

from __future__ import annotations

from typing import NamedTuple

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.cache.lru import way_bits


def mshr_bits(cfg) -> int:
    return max(1, (cfg.mshrs - 1).bit_length())


# ---------------------------------------------------------------------------- member groups
# Each group's signature is written from the MSHR file's side (``Out``: the MSHR file drives it,
# ``In``: the slice drives it); :class:`MshrFile` has every group as ``Out(signature)``. In Verilog a
# member is the port ``<group>__<member>`` (``alloc__en``).


class MshrWidths(NamedTuple):
    """Field widths of the MSHR file's members, from the cache configuration."""

    line: int  # line address, ``addr_bits - offset_bits``
    idx: int  # entry number, :func:`mshr_bits`
    way: int  # way number
    set: int  # set index (at least 1 bit)
    beat: int  # beat of a line (at least 1 bit)
    waiters: int  # requests parked on one entry
    count: int  # number of free entries, 0 .. ``mshrs``
    ways: int  # one bit per way


def mshr_widths(cfg) -> MshrWidths:
    return MshrWidths(
        line=cfg.addr_bits - cfg.offset_bits,
        idx=mshr_bits(cfg),
        way=way_bits(cfg.ways),
        set=max(1, cfg.index_bits),
        beat=max(1, (cfg.beats_per_line - 1).bit_length()),
        waiters=(cfg.queue_depth + 1).bit_length() + 1,
        count=(cfg.mshrs + 1).bit_length(),
        ways=cfg.ways,
    )


def mshr_free_signature(cfg) -> wiring.Signature:
    """``free``, driven by the MSHR file from its state only (registered: changes after an edge).

    ``any``: some entry is free; ``idx``: the lowest free entry, the one ``alloc`` takes; ``count``:
    free entries (stage 0's admission check); ``idle``: every entry free (flush / invalidate).
    """
    w = mshr_widths(cfg)
    return wiring.Signature({"idx": Out(w.idx), "any": Out(1), "count": Out(w.count), "idle": Out(1)})


def mshr_alloc_signature(cfg) -> wiring.Signature:
    """``alloc``, driven by the slice (stage 1's primary miss, or the flush for a write-back only).

    ``en`` allocates the entry ``free.idx`` of the same cycle at the clock edge (never while
    ``free.any`` is low) for ``line`` (fetched into way ``way``), its victim ``victim_line`` (written
    back first if ``victim_dirty``); ``wb_only``: a write-back only, no fill, no install; ``nofill``:
    an ALLOC miss, installed without a fill once any write-back is complete (its B received).
    """
    w = mshr_widths(cfg)
    return wiring.Signature(
        {
            "en": In(1),
            "line": In(w.line),
            "way": In(w.way),
            "victim_line": In(w.line),
            "victim_dirty": In(1),
            "wb_only": In(1),
            "nofill": In(1),
        }
    )


def mshr_ar_signature(cfg) -> wiring.Signature:
    """``ar``: the fill offered to the AXI port's AR engine.

    ``valid`` / ``idx`` / ``line`` (the lowest entry whose fill may start, and its line) come from
    the state only (registered). ``take``, driven by the slice in the same cycle (high only while
    ``valid``: it is not gated here), marks the AR of entry ``idx`` sent at the clock edge.
    """
    w = mshr_widths(cfg)
    return wiring.Signature({"valid": Out(1), "idx": Out(w.idx), "line": Out(w.line), "take": In(1)})


def mshr_wb_signature(cfg) -> wiring.Signature:
    """``wb``: the write-back offered to the AXI port's AW/W engine.

    ``valid`` / ``idx`` / ``line`` / ``way`` / ``set`` (the lowest entry with a write-back to start,
    its victim line, the way and set it is read from) come from the state only (registered).
    ``take``, driven by the slice in the same cycle (high only while ``valid``: it is not gated
    here), marks it started at the clock edge.
    """
    w = mshr_widths(cfg)
    return wiring.Signature(
        {
            "valid": Out(1),
            "idx": Out(w.idx),
            "line": Out(w.line),
            "way": Out(w.way),
            "set": Out(w.set),
            "take": In(1),
        }
    )


def mshr_wb_done_signature(cfg) -> wiring.Signature:
    """``wb_done``, driven by the slice from the AXI port: ``en`` when the last W beat of entry
    ``idx``'s write-back has left. At the clock edge the entry's fill may start (not for a
    write-back-only or ALLOC entry).
    """
    w = mshr_widths(cfg)
    return wiring.Signature({"en": In(1), "idx": In(w.idx)})


def mshr_b_signature(cfg) -> wiring.Signature:
    """``b``, driven by the slice from the AXI port: ``en`` when the B response of entry ``idx``'s
    write-back arrives; at the clock edge the write-back is complete and ``err`` sticks to the entry
    (``q.wb_err``).
    """
    w = mshr_widths(cfg)
    return wiring.Signature({"en": In(1), "idx": In(w.idx), "err": In(1)})


def mshr_r_signature(cfg) -> wiring.Signature:
    """``r``: the R beats of the fills.

    The slice drives ``idx`` (the beat's AXI ID), ``last`` and ``err`` from the beat, and ``en``
    when it takes the beat; at the clock edge entry ``idx`` counts the beat, ``err`` sticks
    (``install.fill_err``) and ``last`` ends the fill. ``way`` / ``set`` / ``beat`` (where the beat
    of entry ``idx`` goes: its way, set and beat number) are combinational from ``idx`` in the same
    cycle.
    """
    w = mshr_widths(cfg)
    return wiring.Signature(
        {
            "en": In(1),
            "idx": In(w.idx),
            "last": In(1),
            "err": In(1),
            "way": Out(w.way),
            "set": Out(w.set),
            "beat": Out(w.beat),
        }
    )


def mshr_install_signature(cfg) -> wiring.Signature:
    """``install``: a line to install in the tags, once its fill and any write-back are complete.

    ``valid`` / ``idx`` / ``line`` / ``way`` / ``fill_err`` (the lowest such entry; ``fill_err``:
    its fill failed, install it invalid) come from the state only (registered). ``take``, driven by
    the slice's tag write port in the same cycle (high only while ``valid``: it is not gated here),
    marks it installed at the clock edge. ``idx`` is not used by the slice.
    """
    w = mshr_widths(cfg)
    return wiring.Signature(
        {
            "valid": Out(1),
            "idx": Out(w.idx),
            "line": Out(w.line),
            "way": Out(w.way),
            "fill_err": Out(1),
            "take": In(1),
        }
    )


def mshr_park_signature(cfg) -> wiring.Signature:
    """``park``, driven by the slice: the requests parked on each entry, counted at the clock edge.

    ``push_en`` / ``push_idx``: stage 1 parks a request on entry ``push_idx``; ``pop_en`` /
    ``pop_idx``: a parked request leaves the queue (replay or fast path). An installed entry is
    freed at the first edge (after the one that installs it) that leaves its count at 0.
    """
    w = mshr_widths(cfg)
    return wiring.Signature({"push_en": In(1), "push_idx": In(w.idx), "pop_en": In(1), "pop_idx": In(w.idx)})


def mshr_q_signature(cfg) -> wiring.Signature:
    """``q``: the state of entry ``idx`` (driven by the slice: the entry the head of its parking
    queue waits on), combinational from ``idx`` in the same cycle: ``installed``, ``filling``,
    ``fill_err``, ``wb_err``, ``wb_pending``, ``beat`` (beats received; not used by the slice) and
    ``waiters`` (requests parked on it).
    """
    w = mshr_widths(cfg)
    return wiring.Signature(
        {
            "idx": In(w.idx),
            "installed": Out(1),
            "filling": Out(1),
            "fill_err": Out(1),
            "wb_err": Out(1),
            "wb_pending": Out(1),
            "beat": Out(w.beat),
            "waiters": Out(w.waiters),
        }
    )


def mshr_s1_signature(cfg) -> wiring.Signature:
    """``s1``: CAM port of the slice's stage 1, combinational in the same cycle. The slice drives
    ``line`` and ``set`` (of stage 1's request); ``hit`` / ``idx``: an active entry for ``line`` (not
    a write-back only; fetching, or installed with requests still parked) and its number (a
    secondary miss parks on it); ``reserved``: the ways of ``set`` such entries hold (no victim
    there).
    """
    w = mshr_widths(cfg)
    return wiring.Signature(
        {"line": In(w.line), "hit": Out(1), "idx": Out(w.idx), "set": In(w.set), "reserved": Out(w.ways)}
    )


def mshr_adm_signature(cfg) -> wiring.Signature:
    """``adm``: CAM port of the slice's admission check (stage 0), combinational in the same cycle.
    The slice drives ``line`` and ``set`` (of the offered request); ``hit``: an active entry for
    ``line`` (as ``s1.hit``), ``hit_filling``: ... not yet installed; ``wb_hit``: ``line`` is the
    victim of a write-back still waiting for its B; ``reserved``: the ways of ``set`` reserved (as
    ``s1.reserved``).
    """
    w = mshr_widths(cfg)
    return wiring.Signature(
        {
            "line": In(w.line),
            "hit": Out(1),
            "hit_filling": Out(1),
            "wb_hit": Out(1),
            "set": In(w.set),
            "reserved": Out(w.ways),
        }
    )


class MshrFile(wiring.Component):
    """``cfg.mshrs`` entries, each tracking one line on its way between memory and the slice.

    Members, in groups (one signature each, ``mshr_<group>_signature(cfg)``; their docstrings give
    each member's timing): offers driven from the state only — ``free`` (the entry ``alloc`` takes),
    ``ar`` (fill), ``wb`` (write-back), ``install`` (their ``take`` inputs act at the clock edge);
    events from the slice, acting at the clock edge — ``alloc``, ``wb_done``, ``b``, ``r``,
    ``park``; combinational read ports, outputs in the same cycle as their index / line inputs —
    ``r`` (where the beat goes), ``q`` (state of one entry), ``s1`` and ``adm`` (CAMs).

    An entry is allocated (``alloc.en``, at ``free.idx``) for a primary miss — the line being
    fetched, the way reserved for it and the victim line it replaces — or, for flush/invalidate, for
    a write-back only (``alloc.wb_only``), or for an ALLOC miss, which needs no fill
    (``alloc.nofill``: step 2 is skipped, the line is installed with whatever its way holds and the
    ALLOC, parked first on the entry, zeroes it when it replays). Its life:
      1. write-back, if the victim was dirty: ``wb.valid`` offers it; ``wb.take`` starts it;
         ``wb_done.en`` (all W beats sent) lets the fill start; ``b.en`` ends it (``b.err`` sticks).
      2. fill: ``ar.valid`` offers it; ``ar.take`` sends the AR; ``r.en`` counts the beats
         (``r.beat``, way and set of ``r.idx`` are looked up combinationally), ``r.err`` sticks,
         ``r.last`` ends the fill.
      3. install, once the fill and any write-back are complete: ``install.valid`` offers it and
         ``install.take`` marks the line present.
      4. parked requests: ``park.push_en`` / ``park.pop_en`` count the requests waiting on the
         entry. The entry is freed when installed and no request waits (a write-back-only entry
         when its B arrives).
    While active, an entry reserves its way in its set (``s1.reserved``, ``adm.reserved``) and its
    line and victim line are matched by the CAM ports (``s1``, ``adm``).
    All state changes at the clock edge; every output is combinational from the state and the
    index / line inputs. No back-pressure; the user must not allocate when ``free.any`` is low.
    ``install.idx`` and ``q.beat`` are not used by the slice.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        w = mshr_widths(cfg)
        self.line_w, self.idx_w, self.cnt_w, self.beat_w = w.line, w.idx, w.waiters, w.beat
        super().__init__(
            {
                "free": Out(mshr_free_signature(cfg)),
                "alloc": Out(mshr_alloc_signature(cfg)),
                "ar": Out(mshr_ar_signature(cfg)),
                "wb": Out(mshr_wb_signature(cfg)),
                "wb_done": Out(mshr_wb_done_signature(cfg)),
                "b": Out(mshr_b_signature(cfg)),
                "r": Out(mshr_r_signature(cfg)),
                "install": Out(mshr_install_signature(cfg)),
                "park": Out(mshr_park_signature(cfg)),
                "q": Out(mshr_q_signature(cfg)),
                "s1": Out(mshr_s1_signature(cfg)),
                "adm": Out(mshr_adm_signature(cfg)),
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
                    way=Signal(self.alloc.way.shape(), name=f"m{i}_way"),
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
        (``alloc.en``, ``ar.take``, ``wb.take``, ``install.take``) at the clock edge. Returns the
        chosen indices ``(free_i, ar_i, wb_i, in_i)``.
        """
        N = self.cfg.mshrs
        free_v, free_i = self._prio(m, E, "free", lambda e: ~e["active"])
        m.d.comb += [
            self.free.any.eq(free_v),
            self.free.idx.eq(free_i),
            self.free.count.eq(sum((~e["active"]).as_unsigned() for e in E)),
            self.free.idle.eq(self.free.count == N),
        ]

        ar_v, ar_i = self._prio(m, E, "ar", lambda e: e["active"] & e["ar_needed"])
        m.d.comb += [self.ar.valid.eq(ar_v), self.ar.idx.eq(ar_i)]
        self._lookup(m, E, ar_i, "line", self.ar.line)
        wb_v, wb_i = self._prio(m, E, "wb", lambda e: e["active"] & e["wb_needed"])
        m.d.comb += [self.wb.valid.eq(wb_v), self.wb.idx.eq(wb_i)]
        self._lookup(m, E, wb_i, "victim", self.wb.line)
        self._lookup(m, E, wb_i, "way", self.wb.way)
        wl = Signal(self.line_w)
        self._lookup(m, E, wb_i, "victim", wl)
        m.d.comb += self.wb.set.eq(self._set_of(wl))
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
        m.d.comb += [self.install.valid.eq(in_v), self.install.idx.eq(in_i)]
        self._lookup(m, E, in_i, "line", self.install.line)
        self._lookup(m, E, in_i, "way", self.install.way)
        self._lookup(m, E, in_i, "fill_err", self.install.fill_err)
        return free_i, ar_i, wb_i, in_i

    def _index_lookups(self, m, E):
        """Per-index read ports, combinational: way / set / beat of the filling entry ``r.idx``, and
        the state of the entry ``q.idx`` (the one the head of the slice's parking queue waits on).
        """
        rl = Signal(self.line_w)
        self._lookup(m, E, self.r.idx, "way", self.r.way)
        self._lookup(m, E, self.r.idx, "beat", self.r.beat)
        self._lookup(m, E, self.r.idx, "line", rl)
        m.d.comb += self.r.set.eq(self._set_of(rl))
        for field, out in (
            ("installed", self.q.installed),
            ("filling", self.q.filling),
            ("fill_err", self.q.fill_err),
            ("wb_err", self.q.wb_err),
            ("wb_pending", self.q.wb_pending),
            ("beat", self.q.beat),
            ("waiters", self.q.waiters),
        ):
            self._lookup(m, E, self.q.idx, field, out)

    def _cam(self, m, E):
        """CAM ports, combinational: ``s1`` (the line in the slice's stage 1 being fetched),
        ``adm`` (the line of the request offered for admission being fetched, or still being
        written back as a victim: ``adm.wb_hit``) and the ways reserved in ``adm.set`` / ``s1.set``.
        """
        for i, e in enumerate(E):
            fetch = e["active"] & ~e["wb_only"]
            with m.If(fetch & (e["line"] == self.s1.line)):
                m.d.comb += [self.s1.hit.eq(1), self.s1.idx.eq(i)]
            with m.If(fetch & (e["line"] == self.adm.line)):
                m.d.comb += [self.adm.hit.eq(1), self.adm.hit_filling.eq(~e["installed"])]
            with m.If(e["active"] & e["wb_pending"] & (e["victim"] == self.adm.line)):
                m.d.comb += self.adm.wb_hit.eq(1)
            for w in range(self.cfg.ways):
                with m.If(fetch & (e["way"] == w) & (self._set_of(e["line"]) == self.adm.set)):
                    m.d.comb += self.adm.reserved[w].eq(1)
                with m.If(fetch & (e["way"] == w) & (self._set_of(e["line"]) == self.s1.set)):
                    m.d.comb += self.s1.reserved[w].eq(1)

    def _entry_updates(self, m, E, *, free_i, ar_i, wb_i, in_i):
        """Every entry's state at the clock edge: waiter count (``park.push_en`` / ``park.pop_en``), the
        steps of its life (``ar.take``, ``wb.take``, ``wb_done.en``, ``b.en``, ``r.en``, ``install.take``),
        freeing, and allocation at ``free_i`` (``alloc.en``).
        ``ar_i`` / ``wb_i`` / ``in_i`` are the offered indices from :meth:`_offers`.
        """
        for i, e in enumerate(E):
            push = self.park.push_en & (self.park.push_idx == i)
            pop = self.park.pop_en & (self.park.pop_idx == i)
            waiters_next = Signal.like(e["waiters"], name=f"m{i}_waiters_next")
            m.d.comb += waiters_next.eq(e["waiters"] + push - pop)
            m.d.sync += e["waiters"].eq(waiters_next)
            with m.If(self.ar.take & (ar_i == i)):
                m.d.sync += e["ar_needed"].eq(0)
            with m.If(self.wb.take & (wb_i == i)):
                m.d.sync += e["wb_needed"].eq(0)
            with m.If(self.wb_done.en & (self.wb_done.idx == i) & ~e["wb_only"] & ~e["nofill"]):
                m.d.sync += e["ar_needed"].eq(1)
            with m.If(self.b.en & (self.b.idx == i)):
                m.d.sync += [e["wb_pending"].eq(0), e["wb_err"].eq(e["wb_err"] | self.b.err)]
            with m.If(self.r.en & (self.r.idx == i)):
                m.d.sync += [e["beat"].eq(e["beat"] + 1), e["fill_err"].eq(e["fill_err"] | self.r.err)]
                with m.If(self.r.last):
                    m.d.sync += e["filling"].eq(0)
            with m.If(self.install.take & (in_i == i)):
                m.d.sync += e["installed"].eq(1)
            done_wb_only = e["wb_only"] & ~e["wb_needed"] & ~e["wb_pending"]
            done_fetch = ~e["wb_only"] & e["installed"] & (waiters_next == 0)
            with m.If(e["active"] & (done_wb_only | done_fetch)):
                m.d.sync += e["active"].eq(0)
            with m.If(self.alloc.en & (free_i == i)):
                m.d.sync += [
                    e["active"].eq(1),
                    e["wb_only"].eq(self.alloc.wb_only),
                    e["nofill"].eq(self.alloc.nofill),
                    e["wb_needed"].eq(self.alloc.victim_dirty),
                    e["wb_pending"].eq(self.alloc.victim_dirty),
                    e["ar_needed"].eq(~self.alloc.victim_dirty & ~self.alloc.wb_only & ~self.alloc.nofill),
                    e["filling"].eq(~self.alloc.wb_only & ~self.alloc.nofill),
                    e["installed"].eq(0),
                    e["fill_err"].eq(0),
                    e["wb_err"].eq(0),
                    e["beat"].eq(0),
                    e["line"].eq(self.alloc.line),
                    e["victim"].eq(self.alloc.victim_line),
                    e["way"].eq(self.alloc.way),
                ]
