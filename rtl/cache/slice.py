"""One L2 cache slice: set-associative, write-back, write-allocate, true LRU, non-blocking."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from tessera.rtl.bus.axi import axi4_fields, axi4_members, bus_view, connect_flat
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
        self.axi_fields = axi4_fields(**axi_params(cfg))
        super().__init__(
            {
                "req": In(stream.Signature(request_layout(cfg))),
                "resp": Out(stream.Signature(response_layout(cfg))),
                "counters": Out(counters_layout()),
                **axi4_members("m_axi", **axi_params(cfg)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        W, D, Q = cfg.ways, cfg.data_bytes, cfg.queue_depth
        lo = (D - 1).bit_length()  # byte-in-word bits
        ob, ib = cfg.offset_bits, cfg.index_bits

        m.submodules.tags = tags = TagArray(cfg)
        m.submodules.darr = darr = DataArray(cfg)
        m.submodules.lru = lru = LruPolicy(W)
        m.submodules.mshr = mshr = MshrFile(cfg)
        m.submodules.port = port = AxiMemPort(cfg)
        plo = parked_layout(cfg)
        m.submodules.queue = queue = SyncFIFOBuffered(width=plo.size, depth=Q)
        connect_flat(
            m,
            bus_view(port, "m_axi", self.axi_fields),
            bus_view(self, "m_axi", self.axi_fields),
            self.axi_fields,
        )

        def line_of(addr):
            return addr[ob:]

        def set_of(addr):
            return addr[ob : ob + ib]

        def tag_of(addr):
            return addr[ob + ib :]

        def row_of(addr):
            return addr[lo : ob + ib]

        cnt = self.counters

        def count(name, cond=1):
            m.d.sync += getattr(cnt, name).eq(getattr(cnt, name) + cond)

        # ------------------------------------------------------------------ response register
        resp_free = ~self.resp.valid | self.resp.ready
        with m.If(self.resp.ready):
            m.d.sync += self.resp.valid.eq(0)

        def respond(**fields):
            m.d.sync += self.resp.valid.eq(1)
            for k, v in fields.items():
                m.d.sync += getattr(self.resp.payload, k).eq(v)

        # ------------------------------------------------------------------ stage-1 registers
        s1_valid = Signal()
        s1_replay = Signal()
        s1 = Signal(plo)  # the request and, for replays, its parking record
        s1_fill_err = Signal()
        s1_wb_err = Signal()
        r1 = s1.req

        # ------------------------------------------------------------------ stage-1 decode
        tv, td, tt = tags.rd_valid, tags.rd_dirty, tags.rd_tag
        hit_vec = Signal(W)
        for w in range(W):
            m.d.comb += hit_vec[w].eq(tv[w] & (tt[w] == tag_of(r1.addr)))
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
            mshr.look_line.eq(line_of(r1.addr)),
            mshr.s1_set.eq(set_of(r1.addr)),
            lru.valid.eq(tv),
            lru.reserved.eq(mshr.s1_reserved),
            lru.ages.eq(tags.rd_ages),
        ]

        k_mal = s1_valid & malformed
        k_err = s1_valid & s1_replay & s1_fill_err
        k_sec = s1_valid & ~s1_replay & ~malformed & mshr.look_hit
        k_hit = s1_valid & ((s1_replay & ~s1_fill_err) | (~s1_replay & ~malformed & ~mshr.look_hit & hit))
        k_miss = s1_valid & ~s1_replay & ~malformed & ~mshr.look_hit & ~hit
        gives_resp = k_mal | k_err | k_hit
        # Stage 1 waits while a line install or an R beat needs the tag / data write port of the
        # way it would write (installs and fills are never starved by a run of writes).
        s1_hold = Signal()
        s1_fire = s1_valid & (~gives_resp | resp_free) & ~s1_hold
        advance = ~s1_valid | s1_fire
        is_write = r1.op == CacheOp.WRITE
        is_read = r1.op == CacheOp.READ

        s1_alloc = Signal()
        s1_push = Signal()
        m.d.comb += [s1_alloc.eq(s1_fire & k_miss), s1_push.eq(s1_fire & (k_miss | k_sec))]
        victim = lru.victim
        victim_line = Signal(mshr.line_w)
        victim_tag = Signal(tags.tag_w)
        for w in range(W):
            with m.If(victim == w):
                m.d.comb += victim_tag.eq(tt[w])
        m.d.comb += victim_line.eq(Cat(set_of(r1.addr), victim_tag))
        victim_dirty = lru.victim_valid & (td >> victim)[0]

        # tag / age / data writes of stage 1
        s1_tag_we = Signal(W)
        s1_data_we = Signal(W)
        m.d.comb += lru.touch_way.eq(Mux(k_miss, victim, hit_way))
        with m.If(s1_fire & (k_hit | k_miss)):
            m.d.comb += [
                tags.ages_we.eq(1),
                tags.ages_set.eq(set_of(r1.addr)),
                tags.ages_data.eq(lru.ages_next),
            ]
        with m.If(s1_fire & k_hit & is_write):
            m.d.comb += [s1_tag_we.eq(1 << hit_way), s1_data_we.eq(1 << hit_way)]
        with m.If(s1_fire & k_hit & is_alloc):
            m.d.comb += s1_tag_we.eq(1 << hit_way)

        # ALLOC on its line (a hit, or the replay of an ALLOC parked on an MSHR): stage 1 zeroes the
        # line's rows in the hit way, one row per cycle, then fires (tag dirty, ages, response).
        # A row write yields to an R beat into the same way. Stage 1 is held until the last row.
        B = cfg.beats_per_line
        z_cnt = Signal(range(max(B, 2)))
        z_done = Signal()
        z_alloc = k_hit & is_alloc
        z_write = Signal()
        z_ready = z_done | (z_write & (z_cnt == B - 1))
        z_row = Cat(z_cnt[: ob - lo], set_of(r1.addr)) if B > 1 else set_of(r1.addr)
        with m.If(z_write):
            m.d.sync += z_cnt.eq(z_cnt + 1)
            with m.If(z_cnt == B - 1):
                m.d.sync += z_done.eq(1)
        with m.If(s1_fire):
            m.d.sync += [z_cnt.eq(0), z_done.eq(0)]
        with m.If(s1_fire & k_miss):
            m.d.comb += s1_tag_we.eq(1 << victim)

        # ------------------------------------------------------------------ stage-1 actions
        entry = Signal(plo)
        m.d.comb += [entry.req.eq(r1), queue.w_data.eq(entry), queue.w_en.eq(s1_push)]
        with m.If(k_sec):
            m.d.comb += [entry.m.eq(mshr.look_idx), entry.secondary.eq(1)]
        with m.Else():
            m.d.comb += [
                entry.m.eq(mshr.free_idx),
                entry.primary.eq(1),
                entry.evict.eq(lru.victim_valid),
                entry.writeback.eq(victim_dirty),
            ]
        m.d.comb += [mshr.push_en.eq(s1_push), mshr.push_idx.eq(entry.m)]

        with m.If(s1_fire):
            with m.If(~s1_replay):
                count("requests")
            with m.If(k_mal):
                count("malformed")
                respond(
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
                respond(
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
                    count("hits")
                rdata = darr.rd_data[hit_way]
                respond(
                    op=r1.op,
                    status=Mux(s1_replay & s1.primary & s1_wb_err, CacheStatus.WB_ERROR, CacheStatus.OK),
                    hit=~s1_replay,
                    secondary=s1_replay & s1.secondary,
                    evict=s1_replay & s1.evict,
                    writeback=s1_replay & s1.writeback,
                    data=Mux(is_read, rdata, 0),
                    id=r1.id,
                    dest=r1.dest,
                )
            with m.If(k_sec):
                count("secondary_misses")
            with m.If(k_miss):
                count("misses")
                count("evictions", lru.victim_valid)
                count("writebacks", victim_dirty)

        # ------------------------------------------------------------------ flush / invalidate
        flushing = Signal(init=1)  # also high while the tags are cleared after reset
        f_op = Signal(CacheOp)
        f_id = Signal.like(self.req.payload.id)
        f_dest = Signal.like(self.req.payload.dest)
        f_err = Signal()
        f_set = Signal(max(1, ib))
        f_way = Signal(range(W + 1))
        is_flush_op = (self.req.payload.op == CacheOp.FLUSH) | (self.req.payload.op == CacheOp.INVALIDATE)
        f_accept = ~flushing & self.req.valid & is_flush_op & ~s1_valid & (queue.level == 0) & mshr.idle

        # ------------------------------------------------------------------ fast path
        # A parked read at the head of the queue is answered straight from the R beat that carries
        # its word, while the line is still arriving (it would otherwise replay after the install).
        # Not a primary miss alone on its MSHR: answered before its line is present, it would turn
        # the requester's next access to that line into a secondary miss where the one-at-a-time
        # LRU model (and any sequential requester) expects a hit.
        rb = port.r_beat
        r_conflict = (s1_data_we >> mshr.r_way)[0]  # never high: s1_hold gives R the port
        s1_tag_way = Mux(k_miss, victim, hit_way)
        s1_writes_tag = k_miss | (k_hit & (is_write | is_alloc))
        m.d.comb += z_write.eq(z_alloc & ~z_done & ~(rb.valid & (hit_way == mshr.r_way)))
        m.d.comb += s1_hold.eq(
            (mshr.install_valid & ~flushing & s1_writes_tag & (s1_tag_way == mshr.install_way))
            | (rb.valid & k_hit & is_write & (hit_way == mshr.r_way))
            | (z_alloc & ~z_ready)
        )
        head = Signal(plo)
        head_beat = head.req.addr[lo:ob] if ob > lo else 0
        r_beat_no = mshr.r_beat[: ob - lo] if ob > lo else 0
        fast = Signal()
        m.d.comb += fast.eq(
            ~flushing
            & queue.r_rdy
            & rb.valid
            & ~r_conflict
            & ~rb.payload.err
            & (head.m == mshr.r_idx)
            & mshr.q_filling
            & ~mshr.q_wb_pending
            & (head.req.op == CacheOp.READ)
            & (head_beat == r_beat_no)
            & ~(head.primary & (mshr.q_waiters == 1))
            & ~(s1_fire & gives_resp)
            & resp_free
        )
        with m.If(fast):
            respond(
                op=head.req.op,
                status=Mux(head.primary & mshr.q_wb_err, CacheStatus.WB_ERROR, CacheStatus.OK),
                hit=0,
                secondary=head.secondary,
                evict=head.evict,
                writeback=head.writeback,
                data=rb.payload.data,
                id=head.req.id,
                dest=head.req.dest,
            )

        # ------------------------------------------------------------------ stage 0
        m.d.comb += [head.eq(queue.r_data), mshr.q_idx.eq(head.m)]
        sel_replay = ~flushing & queue.r_rdy & mshr.q_installed & advance

        req = self.req.payload
        m.d.comb += [mshr.adm_line.eq(line_of(req.addr)), mshr.adm_set.eq(set_of(req.addr))]
        same_set = set_of(req.addr) == set_of(r1.addr)
        reserved = Signal(W)
        m.d.comb += reserved.eq(mshr.adm_reserved | Mux(s1_alloc & same_set, 1 << victim, 0))
        adm_line_hit = mshr.adm_hit | (s1_alloc & (line_of(req.addr) == line_of(r1.addr)))
        # A request to a line still being fetched parks without an MSHR of its own.
        mshr_ok = (
            (mshr.free_count > s1_alloc)
            | mshr.adm_hit_filling
            | (s1_alloc & (line_of(req.addr) == line_of(r1.addr)))
        )
        set_ok = adm_line_hit | (reserved != (1 << W) - 1)
        wb_ok = ~mshr.adm_wb_hit & ~(s1_alloc & victim_dirty & (victim_line == line_of(req.addr)))
        queue_ok = (queue.level + s1_push) < Q
        admit = mshr_ok & set_ok & wb_ok & queue_ok
        sel_new = ~flushing & ~sel_replay & self.req.valid & ~is_flush_op & admit & advance
        m.d.comb += self.req.ready.eq(sel_new | f_accept)

        s0 = Signal(plo)
        with m.If(sel_replay):
            m.d.comb += s0.eq(head)
        with m.Else():
            m.d.comb += s0.req.eq(req)
        m.d.comb += [
            queue.r_en.eq(sel_replay | fast),
            mshr.pop_en.eq(sel_replay | fast),
            mshr.pop_idx.eq(head.m),
            darr.rd_addr.eq(row_of(s0.req.addr)),
            darr.rd_en.eq(advance),
        ]
        with m.If(flushing):
            m.d.comb += [tags.rd_set.eq(f_set)]
        with m.Else():
            m.d.comb += [tags.rd_set.eq(set_of(s0.req.addr)), tags.rd_en.eq(advance)]
        with m.If(advance):
            m.d.sync += [
                s1_valid.eq(sel_replay | sel_new),
                s1_replay.eq(sel_replay),
                s1.eq(s0),
                s1_fill_err.eq(mshr.q_fill_err),
                s1_wb_err.eq(mshr.q_wb_err),
            ]

        # ------------------------------------------------------------------ MSHR allocation
        f_alloc = Signal()
        f_victim = Signal(mshr.line_w)
        with m.If(f_alloc):
            m.d.comb += [
                mshr.alloc_en.eq(1),
                mshr.alloc_line.eq(0),
                mshr.alloc_way.eq(f_way),
                mshr.alloc_victim_line.eq(f_victim),
                mshr.alloc_victim_dirty.eq(1),
                mshr.alloc_wb_only.eq(1),
            ]
        with m.Else():
            m.d.comb += [
                mshr.alloc_en.eq(s1_alloc),
                mshr.alloc_line.eq(line_of(r1.addr)),
                mshr.alloc_way.eq(victim),
                mshr.alloc_victim_line.eq(victim_line),
                mshr.alloc_victim_dirty.eq(victim_dirty),
                mshr.alloc_nofill.eq(is_alloc),
            ]

        # ------------------------------------------------------------------ memory side
        m.d.comb += [
            port.ar_cmd.valid.eq(mshr.ar_valid),
            port.ar_cmd.payload.line.eq(mshr.ar_line),
            port.ar_cmd.payload.id.eq(mshr.ar_idx),
            mshr.ar_take.eq(port.ar_cmd.valid & port.ar_cmd.ready),
            port.wb_cmd.valid.eq(mshr.wb_valid),
            port.wb_cmd.payload.line.eq(mshr.wb_line),
            port.wb_cmd.payload.id.eq(mshr.wb_idx),
            port.wb_cmd.payload.set.eq(mshr.wb_set),
            port.wb_cmd.payload.way.eq(mshr.wb_way),
            mshr.wb_take.eq(port.wb_cmd.valid & port.wb_cmd.ready),
            darr.wb_way.eq(port.wb_way),
            darr.wb_addr.eq(port.wb_addr),
            darr.wb_en.eq(port.wb_en),
            port.wb_data.eq(darr.wb_data),
            mshr.wb_done_en.eq(port.wb_done),
            mshr.wb_done_idx.eq(port.wb_done_id),
            mshr.b_en.eq(port.b_valid),
            mshr.b_idx.eq(port.b_id),
            mshr.b_err.eq(port.b_err),
        ]
        count("wb_errors", port.b_valid & port.b_err)

        # R beats go straight into the reserved way, unless stage 1 writes that way this cycle.
        m.d.comb += [
            mshr.r_idx.eq(rb.payload.id),
            mshr.r_last.eq(rb.payload.last),
            mshr.r_err.eq(rb.payload.err),
        ]
        m.d.comb += [rb.ready.eq(~r_conflict), mshr.r_en.eq(rb.valid & ~r_conflict)]
        r_row = Cat(mshr.r_beat[: ob - lo], mshr.r_set[:ib]) if (ob - lo) + ib else 0

        for w in range(W):
            with m.If(s1_data_we[w]):
                m.d.comb += [
                    darr.wr_be[w].eq(lanes & r1.mask),
                    darr.wr_addr[w].eq(row_of(r1.addr)),
                    darr.wr_data[w].eq(r1.data),
                ]
            with m.Elif(z_write & (hit_way == w)):
                m.d.comb += [
                    darr.wr_be[w].eq(-1),
                    darr.wr_addr[w].eq(z_row),
                    darr.wr_data[w].eq(0),
                ]
            with m.Elif(rb.valid & (mshr.r_way == w)):
                m.d.comb += [
                    darr.wr_be[w].eq(-1),
                    darr.wr_addr[w].eq(r_row),
                    darr.wr_data[w].eq(rb.payload.data),
                ]

        # Line install: the tag of the fetched line, once its fill (and write-back) completed.
        inst_way_busy = (s1_tag_we >> mshr.install_way)[0]
        install = mshr.install_valid & ~inst_way_busy & ~flushing
        m.d.comb += mshr.install_take.eq(install)
        count("fill_errors", install & mshr.install_fill_err)

        f_tag_we = Signal()
        f_clear = Signal()
        for w in range(W):
            with m.If(f_tag_we):
                m.d.comb += [
                    tags.wr_en[w].eq(1),
                    tags.wr_set[w].eq(f_set),
                    tags.wr_valid[w].eq(tv[w] & (f_op == CacheOp.FLUSH) & ~f_clear),
                    tags.wr_dirty[w].eq(0),
                    tags.wr_tag[w].eq(tt[w]),
                ]
            with m.Elif(s1_tag_we[w]):
                m.d.comb += [
                    tags.wr_en[w].eq(1),
                    tags.wr_set[w].eq(set_of(r1.addr)),
                    tags.wr_valid[w].eq(k_hit),
                    tags.wr_dirty[w].eq(k_hit),
                    tags.wr_tag[w].eq(Mux(k_hit, tt[w], tag_of(r1.addr))),
                ]
            with m.Elif(install & (mshr.install_way == w)):
                m.d.comb += [
                    tags.wr_en[w].eq(1),
                    tags.wr_set[w].eq(mshr.install_line[:ib] if ib else 0),
                    tags.wr_valid[w].eq(~mshr.install_fill_err),
                    tags.wr_dirty[w].eq(0),
                    tags.wr_tag[w].eq(mshr.install_line[ib:]),
                ]

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
                    f_tag_we.eq(1),
                    f_clear.eq(1),
                    tags.ages_we.eq(1),
                    tags.ages_set.eq(f_set),
                    tags.ages_data.eq(sum(i << (i * tags.age_w) for i in range(W))),
                ]
                next_set("CLEARED")
            with m.State("CLEARED"):
                m.d.sync += [flushing.eq(0), f_set.eq(0)]
                m.next = "IDLE"
            with m.State("IDLE"):
                with m.If(f_accept):
                    m.d.sync += [
                        flushing.eq(1),
                        f_op.eq(req.op),
                        f_id.eq(req.id),
                        f_dest.eq(req.dest),
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
                            f_victim.eq(Cat(f_set[:ib] if ib else 0, tt[w])),
                        ]
                with m.If(f_way == W):
                    m.next = "WRITE"
                with m.Elif(~dirty):
                    m.d.sync += f_way.eq(f_way + 1)
                with m.Elif(mshr.any_free):
                    m.d.comb += f_alloc.eq(1)
                    count("flush_writebacks")
                    m.d.sync += f_way.eq(f_way + 1)
            with m.State("WRITE"):
                m.d.comb += f_tag_we.eq(1)
                m.next = "READ"
                next_set("DRAIN")
            with m.State("DRAIN"):
                with m.If(mshr.idle):
                    m.next = "RESP"
            with m.State("RESP"):
                with m.If(resp_free):
                    respond(
                        op=f_op,
                        status=Mux(f_err, CacheStatus.WB_ERROR, CacheStatus.OK),
                        hit=0,
                        secondary=0,
                        evict=0,
                        writeback=0,
                        data=0,
                        id=f_id,
                        dest=f_dest,
                    )
                    m.d.sync += flushing.eq(0)
                    m.next = "IDLE"
        return m
