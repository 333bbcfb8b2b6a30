"""One L2 cache slice: set-associative, write-back, write-allocate, true LRU, non-blocking."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from tessera.rtl.bus.axi import AXI4Signature
from tessera.rtl.cache.axi_port import AxiMemPort, axi_params
from tessera.rtl.cache.data import DataArray
from tessera.rtl.cache.layouts import CacheOp, CacheStatus, counters_layout, request_layout, response_layout
from tessera.rtl.cache.lru import LruPolicy
from tessera.rtl.cache.mshr import MshrFile, mshr_bits
from tessera.rtl.cache.tags import TagArray
from tessera.rtl.config import CacheConfig


def parked_layout(cfg) -> data.StructLayout:
    """A request parked on an MSHR until its line is present, with how its first pass went."""
    return data.StructLayout(
        {
            "req": request_layout(cfg),
            "m": mshr_bits(cfg),
            "secondary": 1,
            "primary": 1,
            "evict": 1,
            "writeback": 1,
        }
    )


class _Nets(SimpleNamespace):
    """The sub-components and nets the steps of :meth:`CacheSlice.elaborate` share.

    Each step reads what earlier steps made and registers the nets it makes with :meth:`add`
    (each name once).
    """

    def add(self, **nets):
        for name, net in nets.items():
            assert not hasattr(self, name), f"net {name} added twice"
            setattr(self, name, net)


class CacheSlice(wiring.Component):
    """An L2 slice: ``req`` stream in, ``resp`` stream out, AXI4 master ``m_axi_*`` to memory.

    Requests and responses use :func:`request_layout` / :func:`response_layout` (``layouts.py``).
    Every request gets exactly one response; responses of different lines may come out of order
    (a hit overtakes a miss), requests to the same line take effect and respond in request order.

    Pipeline: stage 0 chooses a parked request whose line has arrived (priority) or a new request,
    and reads tags, ages and the data word of every way; stage 1 compares, updates and writes the
    response register. **Hit latency 2 cycles** (request accepted at edge t, response valid from edge
    t+2 on), **one request per cycle** while responses are taken. ``resp.ready`` low stalls stage 1
    and then ``req.ready``.

    Misses: a primary miss takes an MSHR, chooses a victim (invalid way first, else LRU; ways
    reserved by other MSHRs excluded), invalidates it and parks the request; a request to a line an
    MSHR is fetching is a secondary miss and parks behind it. A dirty victim is written back (one
    AXI INCR burst) before the fill (one INCR burst) may overwrite it; the fill is installed once it
    and the write-back's B are complete, then the parked requests replay in order and respond with
    ``hit=0``. Up to ``mshrs`` misses are outstanding; a new request is accepted only if an MSHR, a
    victim way and a queue slot would be available should it miss (so a miss never blocks the
    pipeline), and not while its line is being written back.

    ALLOC claims a line without fetching it. A hit zeroes the line in stage 1, one data row per
    cycle (``beats_per_line`` cycles in stage 1 instead of one; latency ``beats_per_line + 1``),
    marks it dirty and responds ``hit=1``. A miss is a write miss (MSHR, victim, write-back of a
    dirty victim) whose MSHR issues no AXI read: the line is installed once the write-back is done,
    and the parked ALLOC, first in line, replays and zeroes it before any later request to the line.
    A secondary ALLOC (its line being fetched) replays after the fill and zeroes the line in order.

    Flush / invalidate wait until the slice is idle, then write back every dirty line (flush keeps
    lines valid and clean, invalidate invalidates them) and respond once every B has arrived.

    Errors: a malformed request (unknown op, access outside one data word) gets ``MALFORMED`` and
    changes nothing. An AXI error on a fill answers the requests parked on it with ``FILL_ERROR``
    (writes dropped, line left invalid); on a write-back, the request that caused it (or the
    flush) gets ``WB_ERROR``. Both are counted (``counters``); the slice keeps working.
    """

    def __init__(self, cfg: CacheConfig):
        if not isinstance(cfg, CacheConfig):
            raise ValueError(f"CacheSlice: cfg must be a CacheConfig, not {type(cfg).__name__}")
        self.cfg = cfg
        super().__init__(
            {
                "req": In(stream.Signature(request_layout(cfg))),
                "resp": Out(stream.Signature(response_layout(cfg))),
                "counters": Out(counters_layout()),
                "m_axi": Out(AXI4Signature(**axi_params(cfg))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg

        m.submodules.tags = tags = TagArray(cfg)
        m.submodules.darr = darr = DataArray(cfg)
        m.submodules.lru = lru = LruPolicy(cfg.ways)
        m.submodules.mshr = mshr = MshrFile(cfg)
        m.submodules.port = port = AxiMemPort(cfg)
        plo = parked_layout(cfg)
        m.submodules.queue = queue = SyncFIFOBuffered(width=plo.size, depth=cfg.queue_depth)
        wiring.connect(m, port.m_axi, wiring.flipped(self.m_axi))
        n = _Nets(tags=tags, darr=darr, lru=lru, mshr=mshr, port=port, queue=queue, plo=plo)

        # ------------------------------------------------------------------ response register
        n.add(resp_free=~self.resp.valid | self.resp.ready)
        with m.If(self.resp.ready):
            m.d.sync += self.resp.valid.eq(0)

        # Keep the steps in this order: where two of them drive the same net the later statement
        # wins, and the order also fixes the generated Verilog.
        self._stage1_decode(m, n)
        self._stage1_classify(m, n)
        self._stage1_writes(m, n)
        self._stage1_actions(m, n)
        self._flush_registers(m, n)
        self._stage1_hold(m, n)
        self._fast_path(m, n)
        self._stage0(m, n)
        self._mshr_alloc(m, n)
        self._memory_side(m, n)
        self._data_writes(m, n)
        self._tag_writes(m, n)
        self._flush_fsm(m, n)
        return m

    # ---------------------------------------------------------------------- address fields, helpers
    @property
    def _lo(self):
        """Byte-in-word address bits."""
        return (self.cfg.data_bytes - 1).bit_length()

    def _line_of(self, addr):
        return addr[self.cfg.offset_bits :]

    def _set_of(self, addr):
        ob, ib = self.cfg.offset_bits, self.cfg.index_bits
        return addr[ob : ob + ib]

    def _tag_of(self, addr):
        return addr[self.cfg.offset_bits + self.cfg.index_bits :]

    def _row_of(self, addr):
        return addr[self._lo : self.cfg.offset_bits + self.cfg.index_bits]

    def _count(self, m, name, cond=1):
        """Add ``cond`` to counter ``name`` at the clock edge."""
        cnt = self.counters
        m.d.sync += getattr(cnt, name).eq(getattr(cnt, name) + cond)

    def _respond(self, m, **fields):
        """Load the response register (valid from the next edge); the caller checks it has room."""
        m.d.sync += self.resp.valid.eq(1)
        for k, v in fields.items():
            m.d.sync += getattr(self.resp.payload, k).eq(v)

    # ---------------------------------------------------------------------- stage 1
    def _stage1_decode(self, m, n):
        """Stage-1 registers and decode: the request registered by stage 0 meets the tags, ages and
        data words read for it. Combinational: tag match (``hit``, ``hit_way``), byte lanes,
        malformed check; stage 1's line and set go to the MSHRs' CAM, the set's state to the LRU.
        """
        cfg, tags, lru, mshr, plo = self.cfg, n.tags, n.lru, n.mshr, n.plo
        W, D, lo = cfg.ways, cfg.data_bytes, self._lo

        # ------------------------------------------------------------------ stage-1 registers
        s1_valid = Signal()
        s1_replay = Signal()
        s1 = Signal(plo)  # the request and, for replays, its parking record
        s1_fill_err = Signal()
        s1_wb_err = Signal()
        r1 = s1.req

        # ------------------------------------------------------------------ stage-1 decode
        tv, tt = tags.rd_valid, tags.rd_tag
        hit_vec = Signal(W)
        for w in range(W):
            m.d.comb += hit_vec[w].eq(tv[w] & (tt[w] == self._tag_of(r1.addr)))
        hit = hit_vec.any()
        hit_way = Signal(lru.victim.shape())
        for w in reversed(range(W)):
            with m.If(hit_vec[w]):
                m.d.comb += hit_way.eq(w)

        offs = r1.addr[:lo] if lo else 0
        nbytes = Signal(range(2 * D + 2))
        lanes = Signal(D)
        size_ok = Signal()
        for s in range(lo + 1):
            with m.If(r1.size == s):
                m.d.comb += [nbytes.eq(1 << s), size_ok.eq(1), lanes.eq(((1 << (1 << s)) - 1) << offs)]
        is_alloc = r1.op == CacheOp.ALLOC
        malformed = ~s1_replay & (
            (~is_alloc & (~size_ok | (offs + nbytes > D)))
            | (r1.op.as_value() > CacheOp.ALLOC.value)
            | (r1.op == CacheOp.FLUSH)
            | (r1.op == CacheOp.INVALIDATE)
        )
        m.d.comb += [
            mshr.s1.line.eq(self._line_of(r1.addr)),
            mshr.s1.set.eq(self._set_of(r1.addr)),
            lru.valid.eq(tv),
            lru.reserved.eq(mshr.s1.reserved),
            lru.ages.eq(tags.rd_ages),
        ]
        n.add(
            s1_valid=s1_valid,
            s1_replay=s1_replay,
            s1=s1,
            s1_fill_err=s1_fill_err,
            s1_wb_err=s1_wb_err,
            r1=r1,
            hit=hit,
            hit_way=hit_way,
            lanes=lanes,
            is_alloc=is_alloc,
            malformed=malformed,
        )

    def _stage1_classify(self, m, n):
        """Stage 1's request classified, and whether it fires; combinational.

        Exactly one of ``k_mal`` (malformed), ``k_err`` (replay of a failed fill), ``k_sec``
        (secondary miss), ``k_hit`` (hit, or replay of a present line) and ``k_miss`` (primary miss)
        is high while ``s1_valid``; also the victim a primary miss would take. Stage 1 fires
        (``s1_fire``) when its response, if it gives one, has room in the response register and
        ``s1_hold`` is low; ``advance`` (stage 1 empty or firing) lets stage 0 move.
        """
        tags, lru, mshr = n.tags, n.lru, n.mshr
        td, tt = tags.rd_dirty, tags.rd_tag
        s1_valid, s1_replay, s1_fill_err, r1 = n.s1_valid, n.s1_replay, n.s1_fill_err, n.r1
        malformed, hit = n.malformed, n.hit

        k_mal = s1_valid & malformed
        k_err = s1_valid & s1_replay & s1_fill_err
        k_sec = s1_valid & ~s1_replay & ~malformed & mshr.s1.hit
        k_hit = s1_valid & ((s1_replay & ~s1_fill_err) | (~s1_replay & ~malformed & ~mshr.s1.hit & hit))
        k_miss = s1_valid & ~s1_replay & ~malformed & ~mshr.s1.hit & ~hit
        gives_resp = k_mal | k_err | k_hit
        # Stage 1 waits while a line install or an R beat needs the tag / data write port of the
        # way it would write (installs and fills are never starved by a run of writes).
        s1_hold = Signal()  # driven by _stage1_hold
        s1_fire = s1_valid & (~gives_resp | n.resp_free) & ~s1_hold
        advance = ~s1_valid | s1_fire
        is_write = r1.op == CacheOp.WRITE
        is_read = r1.op == CacheOp.READ

        s1_alloc = Signal()
        s1_push = Signal()
        m.d.comb += [s1_alloc.eq(s1_fire & k_miss), s1_push.eq(s1_fire & (k_miss | k_sec))]
        victim = lru.victim
        victim_line = Signal(mshr.line_w)
        victim_tag = Signal(tags.tag_w)
        for w in range(self.cfg.ways):
            with m.If(victim == w):
                m.d.comb += victim_tag.eq(tt[w])
        m.d.comb += victim_line.eq(Cat(self._set_of(r1.addr), victim_tag))
        victim_dirty = lru.victim_valid & (td >> victim)[0]

        n.add(
            is_write=is_write,
            is_read=is_read,
            k_mal=k_mal,
            k_err=k_err,
            k_sec=k_sec,
            k_hit=k_hit,
            k_miss=k_miss,
            gives_resp=gives_resp,
            s1_hold=s1_hold,
            s1_fire=s1_fire,
            advance=advance,
            s1_alloc=s1_alloc,
            s1_push=s1_push,
            victim=victim,
            victim_line=victim_line,
            victim_dirty=victim_dirty,
        )

    def _stage1_writes(self, m, n):
        """Which ways stage 1 writes when it fires: ages (LRU touch of the hit or victim way), tag and
        data of a WRITE hit, tag of an ALLOC hit (dirty) or a primary miss (victim invalidated).

        ALLOC on its line (a hit, or the replay of an ALLOC parked on an MSHR): stage 1 zeroes the
        line's rows in the hit way, one row per cycle, then fires (tag dirty, ages, response). A row
        write yields to an R beat into the same way. Stage 1 is held until the last row
        (``z_ready``), so an ALLOC hit takes ``beats_per_line`` cycles in stage 1.
        """
        cfg, tags, lru = self.cfg, n.tags, n.lru
        W, ob, lo = cfg.ways, cfg.offset_bits, self._lo
        r1, k_hit, k_miss, s1_fire = n.r1, n.k_hit, n.k_miss, n.s1_fire
        hit_way, victim, is_alloc = n.hit_way, n.victim, n.is_alloc

        # tag / age / data writes of stage 1
        s1_tag_we = Signal(W)
        s1_data_we = Signal(W)
        m.d.comb += lru.touch_way.eq(Mux(k_miss, victim, hit_way))
        with m.If(s1_fire & (k_hit | k_miss)):
            m.d.comb += [
                tags.ages_we.eq(1),
                tags.ages_set.eq(self._set_of(r1.addr)),
                tags.ages_data.eq(lru.ages_next),
            ]
        with m.If(s1_fire & k_hit & n.is_write):
            m.d.comb += [s1_tag_we.eq(1 << hit_way), s1_data_we.eq(1 << hit_way)]
        with m.If(s1_fire & k_hit & is_alloc):
            m.d.comb += s1_tag_we.eq(1 << hit_way)

        # ALLOC zeroing (see above)
        B = cfg.beats_per_line
        z_cnt = Signal(range(max(B, 2)))
        z_done = Signal()
        z_alloc = k_hit & is_alloc
        z_write = Signal()  # driven by _stage1_hold
        z_ready = z_done | (z_write & (z_cnt == B - 1))
        z_row = Cat(z_cnt[: ob - lo], self._set_of(r1.addr)) if B > 1 else self._set_of(r1.addr)
        with m.If(z_write):
            m.d.sync += z_cnt.eq(z_cnt + 1)
            with m.If(z_cnt == B - 1):
                m.d.sync += z_done.eq(1)
        with m.If(s1_fire):
            m.d.sync += [z_cnt.eq(0), z_done.eq(0)]
        with m.If(s1_fire & k_miss):
            m.d.comb += s1_tag_we.eq(1 << victim)

        n.add(
            s1_tag_we=s1_tag_we,
            s1_data_we=s1_data_we,
            z_done=z_done,
            z_alloc=z_alloc,
            z_write=z_write,
            z_ready=z_ready,
            z_row=z_row,
        )

    def _stage1_actions(self, m, n):
        """What stage 1 does when it fires, besides its writes: a miss parks the request (queue push,
        MSHR waiter count); a malformed request, a failed fill's replay and a hit load the response
        register (response valid from the next edge: hit latency 2); the counters count.
        """
        queue, mshr, lru, plo = n.queue, n.mshr, n.lru, n.plo
        s1, r1, s1_replay, s1_push = n.s1, n.r1, n.s1_replay, n.s1_push
        k_mal, k_err, k_sec, k_hit, k_miss = n.k_mal, n.k_err, n.k_sec, n.k_hit, n.k_miss

        # ------------------------------------------------------------------ stage-1 actions
        entry = Signal(plo)
        m.d.comb += [entry.req.eq(r1), queue.w_data.eq(entry), queue.w_en.eq(s1_push)]
        with m.If(k_sec):
            m.d.comb += [entry.m.eq(mshr.s1.idx), entry.secondary.eq(1)]
        with m.Else():
            m.d.comb += [
                entry.m.eq(mshr.free.idx),
                entry.primary.eq(1),
                entry.evict.eq(lru.victim_valid),
                entry.writeback.eq(n.victim_dirty),
            ]
        m.d.comb += [mshr.park.push_en.eq(s1_push), mshr.park.push_idx.eq(entry.m)]

        with m.If(n.s1_fire):
            with m.If(~s1_replay):
                self._count(m, "requests")
            with m.If(k_mal):
                self._count(m, "malformed")
                self._respond(
                    m,
                    op=r1.op,
                    status=CacheStatus.MALFORMED,
                    hit=0,
                    secondary=0,
                    evict=0,
                    writeback=0,
                    data=0,
                    id=r1.id,
                    dest=r1.dest,
                )
            with m.If(k_err):
                self._respond(
                    m,
                    op=r1.op,
                    status=CacheStatus.FILL_ERROR,
                    hit=0,
                    secondary=s1.secondary,
                    evict=s1.evict,
                    writeback=s1.writeback,
                    data=0,
                    id=r1.id,
                    dest=r1.dest,
                )
            with m.If(k_hit):
                with m.If(~s1_replay):
                    self._count(m, "hits")
                rdata = n.darr.rd_data[n.hit_way]
                self._respond(
                    m,
                    op=r1.op,
                    status=Mux(s1_replay & s1.primary & n.s1_wb_err, CacheStatus.WB_ERROR, CacheStatus.OK),
                    hit=~s1_replay,
                    secondary=s1_replay & s1.secondary,
                    evict=s1_replay & s1.evict,
                    writeback=s1_replay & s1.writeback,
                    data=Mux(n.is_read, rdata, 0),
                    id=r1.id,
                    dest=r1.dest,
                )
            with m.If(k_sec):
                self._count(m, "secondary_misses")
            with m.If(k_miss):
                self._count(m, "misses")
                self._count(m, "evictions", lru.victim_valid)
                self._count(m, "writebacks", n.victim_dirty)

    def _flush_registers(self, m, n):
        """Flush / invalidate registers (state machine in :meth:`_flush_fsm`). ``flushing`` is high
        from reset until the tags are cleared and while a flush / invalidate runs; no request enters
        the pipeline and no line is installed meanwhile. ``f_accept``: a flush / invalidate is offered
        and the slice is idle (stage 1 empty, no parked request, every MSHR free).
        """
        W, ib = self.cfg.ways, self.cfg.index_bits

        # ------------------------------------------------------------------ flush / invalidate
        flushing = Signal(init=1)  # also high while the tags are cleared after reset
        f_op = Signal(CacheOp)
        f_id = Signal.like(self.req.payload.id)
        f_dest = Signal.like(self.req.payload.dest)
        f_err = Signal()
        f_set = Signal(max(1, ib))
        f_way = Signal(range(W + 1))
        is_flush_op = (self.req.payload.op == CacheOp.FLUSH) | (self.req.payload.op == CacheOp.INVALIDATE)
        f_accept = (
            ~flushing & self.req.valid & is_flush_op & ~n.s1_valid & (n.queue.level == 0) & n.mshr.free.idle
        )

        n.add(
            flushing=flushing,
            f_op=f_op,
            f_id=f_id,
            f_dest=f_dest,
            f_err=f_err,
            f_set=f_set,
            f_way=f_way,
            is_flush_op=is_flush_op,
            f_accept=f_accept,
        )

    def _stage1_hold(self, m, n):
        """Stage 1's stall (``s1_hold``) and ALLOC row write (``z_write``), combinational.

        Stage 1 waits while a line install (not during a flush) needs the tag write port of the way
        it would write, while an R beat writes the way a WRITE hit would write, and while an ALLOC
        has rows left to zero; a zeroing row write waits for an R beat into the same way.
        """
        mshr, rb = n.mshr, n.port.r_beat
        k_hit, k_miss, hit_way = n.k_hit, n.k_miss, n.hit_way
        is_write, is_alloc = n.is_write, n.is_alloc

        r_conflict = (n.s1_data_we >> mshr.r.way)[0]  # never high: s1_hold gives R the port
        s1_tag_way = Mux(k_miss, n.victim, hit_way)
        s1_writes_tag = k_miss | (k_hit & (is_write | is_alloc))
        m.d.comb += n.z_write.eq(n.z_alloc & ~n.z_done & ~(rb.valid & (hit_way == mshr.r.way)))
        m.d.comb += n.s1_hold.eq(
            (mshr.install.valid & ~n.flushing & s1_writes_tag & (s1_tag_way == mshr.install.way))
            | (rb.valid & k_hit & is_write & (hit_way == mshr.r.way))
            | (n.z_alloc & ~n.z_ready)
        )
        n.add(r_conflict=r_conflict)

    def _fast_path(self, m, n):
        """A parked read at the head of the queue is answered straight from the R beat that carries
        its word, while the line is still arriving (it would otherwise replay after the install).

        Not a primary miss alone on its MSHR: answered before its line is present, it would turn
        the requester's next access to that line into a secondary miss where the one-at-a-time
        LRU model (and any sequential requester) expects a hit. Takes the response register only
        when stage 1 does not (stage 1 has priority) and it has room; with ``fast`` high the request
        is popped at the edge that loads its response (valid from that edge on).
        """
        cfg, queue, mshr, rb = self.cfg, n.queue, n.mshr, n.port.r_beat
        ob, lo = cfg.offset_bits, self._lo

        head = Signal(n.plo)
        head_beat = head.req.addr[lo:ob] if ob > lo else 0
        r_beat_no = mshr.r.beat[: ob - lo] if ob > lo else 0
        fast = Signal()
        m.d.comb += fast.eq(
            ~n.flushing
            & queue.r_rdy
            & rb.valid
            & ~n.r_conflict
            & ~rb.payload.err
            & (head.m == mshr.r.idx)
            & mshr.q.filling
            & ~mshr.q.wb_pending
            & (head.req.op == CacheOp.READ)
            & (head_beat == r_beat_no)
            & ~(head.primary & (mshr.q.waiters == 1))
            & ~(n.s1_fire & n.gives_resp)
            & n.resp_free
        )
        with m.If(fast):
            self._respond(
                m,
                op=head.req.op,
                status=Mux(head.primary & mshr.q.wb_err, CacheStatus.WB_ERROR, CacheStatus.OK),
                hit=0,
                secondary=head.secondary,
                evict=head.evict,
                writeback=head.writeback,
                data=rb.payload.data,
                id=head.req.id,
                dest=head.req.dest,
            )
        n.add(head=head, fast=fast)

    # ---------------------------------------------------------------------- stage 0
    def _stage0(self, m, n):
        """Stage 0: choose a parked request whose line is installed (priority) or admit a new one, and
        read its set's tags and ages and its data word in every way (registered into stage 1 at the
        next edge, with the request).

        A new request is admitted (``req.ready``) only if, should it miss, an MSHR, a victim way and
        a queue slot would be there, and not while its line is being written back; a flush /
        invalidate is accepted only when the slice is idle. No request enters stage 1 while it
        stalls (``advance`` low) or while ``flushing``; then the tag read port serves the flush.
        """
        cfg, tags, darr, mshr, queue = self.cfg, n.tags, n.darr, n.mshr, n.queue
        W, Q = cfg.ways, cfg.queue_depth
        head, r1, advance, flushing = n.head, n.r1, n.advance, n.flushing
        s1_alloc, victim_dirty = n.s1_alloc, n.victim_dirty

        # ------------------------------------------------------------------ stage 0
        m.d.comb += [head.eq(queue.r_data), mshr.q.idx.eq(head.m)]
        sel_replay = ~flushing & queue.r_rdy & mshr.q.installed & advance

        req = self.req.payload
        m.d.comb += [mshr.adm.line.eq(self._line_of(req.addr)), mshr.adm.set.eq(self._set_of(req.addr))]
        same_set = self._set_of(req.addr) == self._set_of(r1.addr)
        reserved = Signal(W)
        m.d.comb += reserved.eq(mshr.adm.reserved | Mux(s1_alloc & same_set, 1 << n.victim, 0))
        adm_line_hit = mshr.adm.hit | (s1_alloc & (self._line_of(req.addr) == self._line_of(r1.addr)))
        # A request to a line still being fetched parks without an MSHR of its own.
        mshr_ok = (
            (mshr.free.count > s1_alloc)
            | mshr.adm.hit_filling
            | (s1_alloc & (self._line_of(req.addr) == self._line_of(r1.addr)))
        )
        set_ok = adm_line_hit | (reserved != (1 << W) - 1)
        wb_ok = ~mshr.adm.wb_hit & ~(s1_alloc & victim_dirty & (n.victim_line == self._line_of(req.addr)))
        queue_ok = (queue.level + n.s1_push) < Q
        admit = mshr_ok & set_ok & wb_ok & queue_ok
        sel_new = ~flushing & ~sel_replay & self.req.valid & ~n.is_flush_op & admit & advance
        m.d.comb += self.req.ready.eq(sel_new | n.f_accept)

        s0 = Signal(n.plo)
        with m.If(sel_replay):
            m.d.comb += s0.eq(head)
        with m.Else():
            m.d.comb += s0.req.eq(req)
        m.d.comb += [
            queue.r_en.eq(sel_replay | n.fast),
            mshr.park.pop_en.eq(sel_replay | n.fast),
            mshr.park.pop_idx.eq(head.m),
            darr.rd_addr.eq(self._row_of(s0.req.addr)),
            darr.rd_en.eq(advance),
        ]
        with m.If(flushing):
            m.d.comb += [tags.rd_set.eq(n.f_set)]
        with m.Else():
            m.d.comb += [tags.rd_set.eq(self._set_of(s0.req.addr)), tags.rd_en.eq(advance)]
        with m.If(advance):
            m.d.sync += [
                n.s1_valid.eq(sel_replay | sel_new),
                n.s1_replay.eq(sel_replay),
                n.s1.eq(s0),
                n.s1_fill_err.eq(mshr.q.fill_err),
                n.s1_wb_err.eq(mshr.q.wb_err),
            ]

    # ---------------------------------------------------------------------- MSHRs, memory, arrays
    def _mshr_alloc(self, m, n):
        """MSHR allocation, combinational: a write-back-only entry for the flush's dirty line
        (``f_alloc``, from :meth:`_flush_fsm`), else the entry of a primary miss firing in stage 1.
        Takes effect at the next edge.
        """
        mshr = n.mshr

        # ------------------------------------------------------------------ MSHR allocation
        f_alloc = Signal()
        f_victim = Signal(mshr.line_w)
        with m.If(f_alloc):
            m.d.comb += [
                mshr.alloc.en.eq(1),
                mshr.alloc.line.eq(0),
                mshr.alloc.way.eq(n.f_way),
                mshr.alloc.victim_line.eq(f_victim),
                mshr.alloc.victim_dirty.eq(1),
                mshr.alloc.wb_only.eq(1),
            ]
        with m.Else():
            m.d.comb += [
                mshr.alloc.en.eq(n.s1_alloc),
                mshr.alloc.line.eq(self._line_of(n.r1.addr)),
                mshr.alloc.way.eq(n.victim),
                mshr.alloc.victim_line.eq(n.victim_line),
                mshr.alloc.victim_dirty.eq(n.victim_dirty),
                mshr.alloc.nofill.eq(n.is_alloc),
            ]
        n.add(f_alloc=f_alloc, f_victim=f_victim)

    def _memory_side(self, m, n):
        """The MSHRs' AR / write-back commands to the AXI port, the write-back's data-array read
        port, write-back completion and B responses back to the MSHRs, and the R beats' index, last
        and error flags. An offered R beat is always taken in its cycle (``r_conflict`` is never high
        with it: ``s1_hold`` gives R the data write port).
        """
        mshr, port, darr, rb = n.mshr, n.port, n.darr, n.port.r_beat

        # ------------------------------------------------------------------ memory side
        m.d.comb += [
            port.ar_cmd.valid.eq(mshr.ar.valid),
            port.ar_cmd.payload.line.eq(mshr.ar.line),
            port.ar_cmd.payload.id.eq(mshr.ar.idx),
            mshr.ar.take.eq(port.ar_cmd.valid & port.ar_cmd.ready),
            port.wb_cmd.valid.eq(mshr.wb.valid),
            port.wb_cmd.payload.line.eq(mshr.wb.line),
            port.wb_cmd.payload.id.eq(mshr.wb.idx),
            port.wb_cmd.payload.set.eq(mshr.wb.set),
            port.wb_cmd.payload.way.eq(mshr.wb.way),
            mshr.wb.take.eq(port.wb_cmd.valid & port.wb_cmd.ready),
            darr.wb_way.eq(port.wb_way),
            darr.wb_addr.eq(port.wb_addr),
            darr.wb_en.eq(port.wb_en),
            port.wb_data.eq(darr.wb_data),
            mshr.wb_done.en.eq(port.wb_done),
            mshr.wb_done.idx.eq(port.wb_done_id),
            mshr.b.en.eq(port.b_valid),
            mshr.b.idx.eq(port.b_id),
            mshr.b.err.eq(port.b_err),
        ]
        self._count(m, "wb_errors", port.b_valid & port.b_err)

        # R beats go straight into the reserved way, unless stage 1 writes that way this cycle.
        m.d.comb += [
            mshr.r.idx.eq(rb.payload.id),
            mshr.r.last.eq(rb.payload.last),
            mshr.r.err.eq(rb.payload.err),
        ]
        m.d.comb += [rb.ready.eq(~n.r_conflict), mshr.r.en.eq(rb.valid & ~n.r_conflict)]

    def _data_writes(self, m, n):
        """The data array's write port of each way, by priority: a WRITE hit in stage 1, an ALLOC's
        zeroing row, an R beat of a fill (the first two never collide with an R beat into the same
        way: ``s1_hold`` / ``z_write`` yield). Written at the next edge.
        """
        cfg, darr, mshr, rb = self.cfg, n.darr, n.mshr, n.port.r_beat
        ob, ib, lo = cfg.offset_bits, cfg.index_bits, self._lo
        r1 = n.r1

        r_row = Cat(mshr.r.beat[: ob - lo], mshr.r.set[:ib]) if (ob - lo) + ib else 0

        for w in range(cfg.ways):
            with m.If(n.s1_data_we[w]):
                m.d.comb += [
                    darr.wr_be[w].eq(n.lanes & r1.mask),
                    darr.wr_addr[w].eq(self._row_of(r1.addr)),
                    darr.wr_data[w].eq(r1.data),
                ]
            with m.Elif(n.z_write & (n.hit_way == w)):
                m.d.comb += [
                    darr.wr_be[w].eq(-1),
                    darr.wr_addr[w].eq(n.z_row),
                    darr.wr_data[w].eq(0),
                ]
            with m.Elif(rb.valid & (mshr.r.way == w)):
                m.d.comb += [
                    darr.wr_be[w].eq(-1),
                    darr.wr_addr[w].eq(r_row),
                    darr.wr_data[w].eq(rb.payload.data),
                ]

    def _tag_writes(self, m, n):
        """The tag array's write port of each way, by priority: the flush state machine (clear after
        reset, clean / invalidate a set), stage 1 (hit made dirty, victim invalidated), then a line
        install. The install (tag of the fetched line, once its fill and write-back completed) waits
        while stage 1 writes its way and during a flush. Written at the next edge.
        """
        cfg, tags, mshr = self.cfg, n.tags, n.mshr
        ib = cfg.index_bits
        tv, tt = tags.rd_valid, tags.rd_tag
        r1, k_hit, f_op, f_set, flushing = n.r1, n.k_hit, n.f_op, n.f_set, n.flushing

        # Line install: the tag of the fetched line, once its fill (and write-back) completed.
        inst_way_busy = (n.s1_tag_we >> mshr.install.way)[0]
        install = mshr.install.valid & ~inst_way_busy & ~flushing
        m.d.comb += mshr.install.take.eq(install)
        self._count(m, "fill_errors", install & mshr.install.fill_err)

        f_tag_we = Signal()
        f_clear = Signal()
        for w in range(cfg.ways):
            with m.If(f_tag_we):
                m.d.comb += [
                    tags.wr_en[w].eq(1),
                    tags.wr_set[w].eq(f_set),
                    tags.wr_valid[w].eq(tv[w] & (f_op == CacheOp.FLUSH) & ~f_clear),
                    tags.wr_dirty[w].eq(0),
                    tags.wr_tag[w].eq(tt[w]),
                ]
            with m.Elif(n.s1_tag_we[w]):
                m.d.comb += [
                    tags.wr_en[w].eq(1),
                    tags.wr_set[w].eq(self._set_of(r1.addr)),
                    tags.wr_valid[w].eq(k_hit),
                    tags.wr_dirty[w].eq(k_hit),
                    tags.wr_tag[w].eq(Mux(k_hit, tt[w], self._tag_of(r1.addr))),
                ]
            with m.Elif(install & (mshr.install.way == w)):
                m.d.comb += [
                    tags.wr_en[w].eq(1),
                    tags.wr_set[w].eq(mshr.install.line[:ib] if ib else 0),
                    tags.wr_valid[w].eq(~mshr.install.fill_err),
                    tags.wr_dirty[w].eq(0),
                    tags.wr_tag[w].eq(mshr.install.line[ib:]),
                ]
        n.add(f_tag_we=f_tag_we, f_clear=f_clear)

    # ---------------------------------------------------------------------- flush / invalidate
    def _flush_fsm(self, m, n):
        """Flush state machine. After reset (CLEAR) it invalidates every line and sets each set's
        ages to a permutation, one set per cycle. A flush / invalidate (accepted when the slice is
        idle) then reads each set (READ), scans its ways (SCAN, one way per cycle, a dirty way
        waiting for a free MSHR to write it back), writes the set's tags back clean (flush) or
        invalid (invalidate) (WRITE), waits for every write-back's B (DRAIN) and responds once the
        response register has room (RESP; ``WB_ERROR`` if any B failed).
        """
        cfg, tags, mshr, port = self.cfg, n.tags, n.mshr, n.port
        W, ib = cfg.ways, cfg.index_bits
        tv, td, tt = tags.rd_valid, tags.rd_dirty, tags.rd_tag
        req = self.req.payload
        flushing, f_set, f_way, f_err = n.flushing, n.f_set, n.f_way, n.f_err

        # ------------------------------------------------------------------ flush state machine
        with m.If(flushing & port.b_valid & port.b_err):
            m.d.sync += f_err.eq(1)

        def next_set(done_state):
            m.d.sync += f_set.eq(f_set + 1)
            if cfg.sets > 1:
                with m.If(f_set == cfg.sets - 1):
                    m.next = done_state
            else:
                m.next = done_state

        with m.FSM(name="flush", init="CLEAR"):
            with m.State("CLEAR"):  # after reset: every line invalid, ages a permutation
                m.d.comb += [
                    n.f_tag_we.eq(1),
                    n.f_clear.eq(1),
                    tags.ages_we.eq(1),
                    tags.ages_set.eq(f_set),
                    tags.ages_data.eq(sum(i << (i * tags.age_w) for i in range(W))),
                ]
                next_set("CLEARED")
            with m.State("CLEARED"):
                m.d.sync += [flushing.eq(0), f_set.eq(0)]
                m.next = "IDLE"
            with m.State("IDLE"):
                with m.If(n.f_accept):
                    m.d.sync += [
                        flushing.eq(1),
                        n.f_op.eq(req.op),
                        n.f_id.eq(req.id),
                        n.f_dest.eq(req.dest),
                        f_err.eq(0),
                        f_set.eq(0),
                    ]
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += tags.rd_en.eq(1)
                m.d.sync += f_way.eq(0)
                m.next = "SCAN"
            with m.State("SCAN"):
                dirty = Signal()
                for w in range(W):
                    with m.If(f_way == w):
                        m.d.comb += [
                            dirty.eq(tv[w] & td[w]),
                            n.f_victim.eq(Cat(f_set[:ib] if ib else 0, tt[w])),
                        ]
                with m.If(f_way == W):
                    m.next = "WRITE"
                with m.Elif(~dirty):
                    m.d.sync += f_way.eq(f_way + 1)
                with m.Elif(mshr.free.any):
                    m.d.comb += n.f_alloc.eq(1)
                    self._count(m, "flush_writebacks")
                    m.d.sync += f_way.eq(f_way + 1)
            with m.State("WRITE"):
                m.d.comb += n.f_tag_we.eq(1)
                m.next = "READ"
                next_set("DRAIN")
            with m.State("DRAIN"):
                with m.If(mshr.free.idle):
                    m.next = "RESP"
            with m.State("RESP"):
                with m.If(n.resp_free):
                    self._respond(
                        m,
                        op=n.f_op,
                        status=Mux(f_err, CacheStatus.WB_ERROR, CacheStatus.OK),
                        hit=0,
                        secondary=0,
                        evict=0,
                        writeback=0,
                        data=0,
                        id=n.f_id,
                        dest=n.f_dest,
                    )
                    m.d.sync += flushing.eq(0)
                    m.next = "IDLE"
