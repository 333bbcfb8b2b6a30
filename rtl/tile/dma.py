"""The compute tile's tensor DMA: LOAD / STORE descriptors <-> request and response packets."""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from tessera.rtl.cache.layouts import CacheOp, CacheStatus
from tessera.rtl.config import FabricConfig
from tessera.rtl.fabric.messages import (
    LOAD_SLOTS,
    SLICE_PORT,
    SLOT_BITS,
    local_word_bits,
    owner,
    quiet_bit,
    req_head_layout,
    resp_head_layout,
    tag_layout,
)
from tessera.rtl.noc.layouts import REQUEST, beat_layout
from tessera.rtl.tile.accumulator import acc_read_signature, acc_write_layout
from tessera.rtl.tile.isa import Mode, Space, scratchpad_write_layout, xfer_desc_layout

__all__ = ["TensorDma"]


class _Walk2D:
    """The word-by-word walk over a 2D strided transfer, shared by LOAD and STORE.

    ``rows_left``, ``rem`` (bytes of the row from the current word on), ``mem`` (byte address of
    the current word in memory), ``local`` (its local word address); :meth:`start` loads a
    descriptor, :meth:`advance` steps one word and returns the condition "that was the last word"."""

    def __init__(self, prefix: str, local_bits: int):
        self.rows_left = Signal(12, name=f"{prefix}_rows_left")
        self.rem = Signal(17, name=f"{prefix}_rem")
        self.row_mem = Signal(32, name=f"{prefix}_row_mem")
        self.mem = Signal(32, name=f"{prefix}_cur_mem")
        self.row_local = Signal(local_bits, name=f"{prefix}_row_local")
        self.local = Signal(local_bits, name=f"{prefix}_cur_local")

    def start(self, d, wb: int) -> list:
        return [self.rows_left.eq(d.rows), self.rem.eq(d.row_bytes),
                self.row_mem.eq(d.mem_addr), self.mem.eq(d.mem_addr),
                self.row_local.eq(d.local_addr >> wb), self.local.eq(d.local_addr >> wb)]

    def advance(self, m, d, W: int, wb: int):
        """Step to the next word of descriptor ``d`` (in the current ``m.If``); return the
        condition that the word just left was the transfer's last."""
        with m.If(self.rem <= W):
            m.d.sync += [
                self.rows_left.eq(self.rows_left - 1), self.rem.eq(d.row_bytes),
                self.row_mem.eq(self.row_mem + d.stride), self.mem.eq(self.row_mem + d.stride),
                self.row_local.eq(self.row_local + (d.pitch >> wb)),
                self.local.eq(self.row_local + (d.pitch >> wb)),
            ]
        with m.Else():
            m.d.sync += [self.rem.eq(self.rem - W), self.mem.eq(self.mem + W), self.local.eq(self.local + 1)]
        return (self.rem <= W) & (self.rows_left == 1)


class TensorDma(wiring.Component):
    """Tensor DMA of tile ``node``: executes LOAD and STORE descriptors over the NoC.

    Ports:

    * ``load``, ``store`` (in, streams of :func:`tessera.rtl.tile.isa.xfer_desc_layout`): descriptors.
      A LOAD is taken when the request generator is idle (a RECV LOAD is taken in one cycle and
      generates nothing); a STORE when no STORE is in progress (one STORE at a time).
    * ``load_done``, ``store_done`` (out): one-cycle pulse per completed descriptor, in order.
    * ``fault`` (out): one-cycle pulse per response whose status is not OK (it is still counted,
      so the descriptor still completes).
    * ``tx`` (out) / ``rx`` (in): beat streams of :func:`tessera.rtl.noc.layouts.beat_layout` to / from
      the NI of port ``TILE_PORT``. Request packets follow :mod:`tessera.rtl.fabric.messages`.
    * ``sp_wr`` (out, :func:`tessera.rtl.tile.isa.scratchpad_write_layout`), ``acc_wr`` (out,
      :func:`acc_write_layout`): byte-masked word writes of LOAD data; both may be refused.
    * ``acc_rd`` (:func:`acc_read_signature`): accumulator reads of a STORE (in order, any
      latency >= 1, response back-pressure honoured).
    * ``busy`` (out): a descriptor is in progress or a LOAD has not completed.
    * ``read_requests``, ``write_requests``, ``alloc_requests``, ``resp_words`` (out, 32-bit
      wrapping): READ, WRITE and ALLOC request packets sent; READ data words received.

    LOAD (LOCAL / SEND): one READ packet (one beat) per word of each row, to the owning slice,
    row by row; ``dest`` the own bit (LOCAL) or the group (SEND); ``id`` the
    :func:`tessera.rtl.fabric.messages.tag_layout` (slot = LOAD sequence number mod 16, space, local word,
    valid bytes). A LOAD completes when the words it brings to this tile have all been written
    (``rows * ceil(row_bytes / W)`` words when this tile is LOCAL or in the group, else 0),
    counted per slot, so that RECV data that arrives before its descriptor is counted too, and
    when its last request beat has left on ``tx`` (a RECV LOAD: when it is taken). So a LOAD that
    brings nothing here (a SEND whose group leaves this tile out) completes only once all its
    requests are in the network. LOADs complete in order.

    STORE: for each word, an ALLOC packet first when the word starts a line that the row covers
    completely, then an accumulator read and a WRITE packet (head, data) with the valid bytes as
    mask. Only the last WRITE of each line segment (the words of one row in one line) asks for a
    response; the ALLOC and the other WRITEs carry the tag's ``quiet`` bit, so that the slice
    answers them only with an error. The slice completes the requests of a line in order and the
    NoC keeps the order of one source and destination, so the acknowledged WRITE is the last of
    its line to complete. Complete when every acknowledgement is back (a quiet request's error
    response pulses ``fault`` and is not counted).

    Throughput: one READ request per cycle while ``tx`` is ready; a STORE sends 2 beats per word
    (3 for a word that starts a line), accumulator reads run up to 4 words ahead. LOAD requests
    and STORE packets share ``tx`` round-robin, packet by packet. Received data: one word per
    cycle (``rx.ready`` follows the write port's ready).

    Latency: a descriptor taken at edge t puts its first request beat on ``tx`` from edge t + 1 on
    (t + 3 for a STORE: accumulator read, then FIFO). A data beat taken from ``rx`` at edge t is
    offered on ``sp_wr`` / ``acc_wr`` from t + 1; the ``load_done`` pulse comes at the earliest
    two cycles after the write of the LOAD's last word is taken (or after its last request beat
    is taken from ``tx``, whichever is later). ``store_done`` comes the cycle
    after the last response is received.

    Back-pressure: every output stream is driven from registers (valid never depends on ready);
    ``rx.ready`` is high for a head beat, and for a data beat when the write register is free.
    """

    def __init__(self, cfg: FabricConfig, node: int | None):
        """``node``: this tile's node index, or None for an input port ``node_id`` (so that every
        tile of a fabric is the same module)."""
        if not isinstance(cfg, FabricConfig):
            raise ValueError("TensorDma cfg must be a FabricConfig")
        if node is not None and (isinstance(node, bool) or not isinstance(node, int)
                                 or not 0 <= node < cfg.noc.nodes):
            raise ValueError(f"TensorDma node = {node!r} is not a node of the mesh (0..{cfg.noc.nodes - 1})")
        self.cfg, self.node = cfg, node
        tile = cfg.tile
        super().__init__({
            "load": In(stream.Signature(xfer_desc_layout(cfg))),
            "store": In(stream.Signature(xfer_desc_layout(cfg))),
            "load_done": Out(1),
            "store_done": Out(1),
            "fault": Out(1),
            "tx": Out(stream.Signature(beat_layout(cfg.noc))),
            "rx": In(stream.Signature(beat_layout(cfg.noc))),
            "sp_wr": Out(stream.Signature(scratchpad_write_layout(tile))),
            "acc_wr": Out(stream.Signature(acc_write_layout(cfg))),
            "acc_rd": Out(acc_read_signature(cfg)),
            "busy": Out(1),
            "read_requests": Out(32),
            "write_requests": Out(32),
            "alloc_requests": Out(32),
            "resp_words": Out(32),
            **({"node_id": In(max(1, (cfg.noc.nodes - 1).bit_length()))} if node is None else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, tile, noc = self.cfg, self.cfg.tile, self.cfg.noc
        W = tile.word_bytes
        wb = (W - 1).bit_length()
        L = cfg.cache.line_bytes
        ob = cfg.cache.offset_bits
        if self.node is None:
            own = Signal(noc.nodes, name="own")
            m.d.comb += own.eq(Const(1, noc.nodes) << self.node_id)
        else:
            own = Const(1 << self.node, noc.nodes)
        lwb = local_word_bits(cfg)
        cw = lwb + 2                      # word counts of one descriptor
        tagl = tag_layout(cfg)
        rqh = req_head_layout(cfg)
        rsh = resp_head_layout(cfg)
        beat = beat_layout(noc)

        def request_beat(name, op, addr, tag, dest, mask, last):
            b = Signal(beat, name=name)
            h = Signal(rqh, name=name + "_head")
            m.d.comb += [
                h.op.as_value().eq(op), h.addr.eq(addr), h.mask.eq(mask), h.id.eq(tag), h.dest.eq(dest),
                b.data.eq(h.as_value()), b.last.eq(last),
                b.hdr.cls.eq(REQUEST), b.hdr.mcast.eq(0), b.hdr.port.eq(SLICE_PORT),
                b.hdr.dest.eq(owner(cfg, addr)),
            ]
            return b

        # ================================ LOAD request generator ==============================
        ld = Signal(xfer_desc_layout(cfg), name="ld")
        ld_active = Signal()
        ldw = _Walk2D("ld", lwb + 1)
        ld_rem, ld_cur_mem, ld_cur_local = ldw.rem, ldw.mem, ldw.local
        ld_dest = Signal(noc.nodes)
        ld_slot = Signal(SLOT_BITS)
        load_seq = Signal(SLOT_BITS)

        expected = Array(Signal(cw, name=f"expected{i}") for i in range(LOAD_SLOTS))
        arrived = Array(Signal(cw, name=f"arrived{i}") for i in range(LOAD_SLOTS))
        armed = Signal(LOAD_SLOTS)
        done_seq = Signal(SLOT_BITS)
        arm_recv = Signal(LOAD_SLOTS)     # a RECV LOAD is taken (it sends nothing)
        arm_sent = Signal(LOAD_SLOTS)     # the last request of a LOCAL / SEND LOAD leaves on tx

        d = self.load.payload
        wpr = Signal(13)
        m.d.comb += wpr.eq((d.row_bytes + (W - 1)) >> wb)
        d_own = Signal()
        m.d.comb += d_own.eq((d.mode == Mode.LOCAL) | (d.dest & own).any())
        m.d.comb += self.load.ready.eq(~ld_active)

        with m.If(self.load.valid & self.load.ready):
            m.d.sync += [
                expected[load_seq].eq(Mux(d_own, d.rows * wpr, 0)),
                load_seq.eq(load_seq + 1),
                ld.eq(d), ld_slot.eq(load_seq),
                *ldw.start(d, wb),
                ld_dest.eq(Mux(d.mode == Mode.LOCAL, own, d.dest)),
            ]
            with m.If(d.mode == Mode.RECV):
                m.d.comb += arm_recv.eq(Const(1, LOAD_SLOTS) << load_seq)
            with m.Else():
                m.d.sync += ld_active.eq(1)

        ld_tag = Signal(tagl)
        m.d.comb += [
            ld_tag.valid.eq(Mux(ld_rem <= W, ld_rem[:wb], 0)),
            ld_tag.word.eq(ld_cur_local),
            ld_tag.space.eq(ld.space),
            ld_tag.slot.eq(ld_slot),
        ]
        ld_beat = request_beat("ld_beat", CacheOp.READ.value, ld_cur_mem, ld_tag.as_value(), ld_dest, 0, 1)
        ld_take = Signal()                # the arbiter takes ld_beat this cycle
        # A LOAD's slot is armed when its last request beat leaves on ``tx`` (not when the beat
        # enters the ``tx`` register): a LOAD that brings nothing to this tile (a SEND whose group
        # leaves this tile out) completes only once all its requests are in the network.
        last_in_tx = Signal()             # the beat in the tx register is a LOAD's last request
        last_slot = Signal(SLOT_BITS)
        with m.If(last_in_tx & self.tx.ready):
            m.d.sync += last_in_tx.eq(0)
            m.d.comb += arm_sent.eq(Const(1, LOAD_SLOTS) << last_slot)
        with m.If(ld_take):
            with m.If(ldw.advance(m, ld, W, wb)):
                m.d.sync += [ld_active.eq(0), last_in_tx.eq(1), last_slot.eq(ld_slot)]

        # ================================ STORE ===============================================
        st_busy = Signal()
        st = Signal(xfer_desc_layout(cfg), name="st")
        st_gen = Signal()                 # still reading words of the accumulator
        stw = _Walk2D("st", lwb + 1)
        st_rem, st_cur_mem, st_cur_local = stw.rem, stw.mem, stw.local
        st_sent = Signal(cw + 1)
        st_resps = Signal(cw + 1)
        m.d.comb += self.store.ready.eq(~st_busy)
        sd = self.store.payload
        with m.If(self.store.valid & self.store.ready):
            m.d.sync += [
                st.eq(sd), st_busy.eq(1), st_gen.eq(1), *stw.start(sd, wb),
                st_sent.eq(0), st_resps.eq(0),
            ]

        meta_l = data.StructLayout({"addr": 32, "mask": W, "alloc": 1, "ack": 1})
        m.submodules.st_meta = meta = SyncFIFOBuffered(width=meta_l.size, depth=4)
        m.submodules.st_data = dfifo = SyncFIFOBuffered(width=W * 8, depth=4)
        wmeta = Signal(meta_l)
        m.d.comb += [
            wmeta.addr.eq(st_cur_mem),
            wmeta.mask.eq(Cat(st_rem > i for i in range(W))),
            wmeta.alloc.eq((st_cur_mem[:ob] == 0) & (st_rem >= L)),
            # the last word of its row or of its line asks for the acknowledgement
            wmeta.ack.eq((st_rem <= W) | (st_cur_mem[wb:ob].all() if ob > wb else 1)),
            meta.w_data.eq(wmeta.as_value()),
            self.acc_rd.req.valid.eq(st_gen & meta.w_rdy),
            self.acc_rd.req.payload.eq(st_cur_local),
            meta.w_en.eq(self.acc_rd.req.valid & self.acc_rd.req.ready),
            dfifo.w_data.eq(self.acc_rd.resp.payload),
            dfifo.w_en.eq(self.acc_rd.resp.valid),
            self.acc_rd.resp.ready.eq(dfifo.w_rdy),
        ]
        with m.If(meta.w_en):
            with m.If(stw.advance(m, st, W, wb)):
                m.d.sync += st_gen.eq(0)

        rmeta = Signal(meta_l)
        m.d.comb += rmeta.as_value().eq(meta.r_data)
        st_alloc_sent = Signal()
        st_in_data = Signal()             # the WRITE head has gone, its data beat is next
        alloc_tag, write_tag = Signal(tagl), Signal(tagl)
        m.d.comb += [alloc_tag.space.eq(Space.ACC.value), alloc_tag.quiet.eq(1),
                     write_tag.space.eq(Space.ACC.value), write_tag.quiet.eq(~rmeta.ack)]
        need_alloc = rmeta.alloc & ~st_alloc_sent
        alloc_beat = request_beat("alloc_beat", CacheOp.ALLOC.value, rmeta.addr, alloc_tag.as_value(), own,
                                  0, 1)
        whead_beat = request_beat("whead_beat", CacheOp.WRITE.value, rmeta.addr, write_tag.as_value(), own,
                                  rmeta.mask, 0)
        wdata_beat = Signal(beat)
        m.d.comb += [wdata_beat.eq(whead_beat), wdata_beat.data.eq(dfifo.r_data), wdata_beat.last.eq(1)]
        st_cand = Signal(beat)
        st_cand_valid = Signal()
        with m.If(st_in_data):
            m.d.comb += [st_cand.eq(wdata_beat), st_cand_valid.eq(1)]
        with m.Elif(meta.r_rdy & need_alloc):
            m.d.comb += [st_cand.eq(alloc_beat), st_cand_valid.eq(1)]
        with m.Else():
            m.d.comb += [st_cand.eq(whead_beat), st_cand_valid.eq(meta.r_rdy & dfifo.r_rdy)]
        st_take = Signal()
        with m.If(st_take):
            m.d.sync += st_sent.eq(st_sent + (~st_in_data & ~need_alloc & rmeta.ack))
            with m.If(st_in_data):
                m.d.sync += [st_in_data.eq(0), st_alloc_sent.eq(0)]
                m.d.comb += [meta.r_en.eq(1), dfifo.r_en.eq(1)]
                m.d.sync += self.write_requests.eq(self.write_requests + 1)
            with m.Elif(need_alloc):
                m.d.sync += st_alloc_sent.eq(1)
                m.d.sync += self.alloc_requests.eq(self.alloc_requests + 1)
            with m.Else():
                m.d.sync += st_in_data.eq(1)

        # ================================ tx arbitration ======================================
        tx_free = ~self.tx.valid | self.tx.ready
        ld_valid = ld_active
        prefer_st = Signal()
        with m.If(tx_free):
            with m.If(st_in_data | (st_cand_valid & (prefer_st | ~ld_valid))):
                m.d.comb += st_take.eq(1)
                m.d.sync += [self.tx.payload.eq(st_cand), self.tx.valid.eq(1)]
                with m.If(st_in_data):
                    m.d.sync += prefer_st.eq(0)
            with m.Elif(ld_valid):
                m.d.comb += ld_take.eq(1)
                m.d.sync += [self.tx.payload.eq(ld_beat), self.tx.valid.eq(1), prefer_st.eq(1),
                             self.read_requests.eq(self.read_requests + 1)]
            with m.Else():
                m.d.sync += self.tx.valid.eq(0)
        with m.If(st_take & ~st_in_data & need_alloc):
            m.d.sync += prefer_st.eq(0)

        # ================================ responses ===========================================
        rx = self.rx
        head = Signal(rsh)
        m.d.comb += head.as_value().eq(rx.payload.data[:rsh.size])
        in_data = Signal()                # the next beat is a READ's data word
        drain = Signal()                  # skip beats up to last
        rtag = Signal(tagl)
        rskip = Signal()
        st_resp_inc = Signal()

        w_valid = Signal()
        w_space = Signal()
        w_skip = Signal()
        w_slot = Signal(SLOT_BITS)
        w_addr = Signal(lwb)
        w_data = Signal(W * 8)
        w_mask = Signal(W)
        w_done = Signal()
        m.d.comb += [
            self.sp_wr.valid.eq(w_valid & ~w_skip & (w_space == Space.SP.value)),
            self.acc_wr.valid.eq(w_valid & ~w_skip & (w_space == Space.ACC.value)),
            self.sp_wr.payload.addr.eq(w_addr), self.sp_wr.payload.data.eq(w_data),
            self.sp_wr.payload.mask.eq(w_mask),
            self.acc_wr.payload.addr.eq(w_addr), self.acc_wr.payload.data.eq(w_data),
            self.acc_wr.payload.mask.eq(w_mask),
            w_done.eq(w_valid & (w_skip | Mux(w_space, self.acc_wr.ready, self.sp_wr.ready))),
        ]
        w_free = ~w_valid | w_done
        with m.If(w_done):
            m.d.sync += w_valid.eq(0)

        m.d.comb += rx.ready.eq(Mux(in_data, w_free, 1))
        fault = Signal()
        with m.If(rx.valid & rx.ready):
            with m.If(drain):
                m.d.sync += drain.eq(~rx.payload.last)
            with m.Elif(in_data):
                rtv = rtag.valid
                m.d.sync += [
                    in_data.eq(0), drain.eq(~rx.payload.last),
                    w_valid.eq(1), w_space.eq(rtag.space), w_skip.eq(rskip), w_slot.eq(rtag.slot),
                    w_addr.eq(rtag.word), w_data.eq(rx.payload.data),
                    w_mask.eq(Cat(Const(1, 1), *[(rtv == 0) | (rtv > i) for i in range(1, W - 1)], rtv == 0)),
                    self.resp_words.eq(self.resp_words + 1),
                ]
            with m.Else():
                m.d.comb += fault.eq(head.status != CacheStatus.OK)
                with m.If((head.op == CacheOp.READ) & ~rx.payload.last):
                    m.d.sync += [in_data.eq(1), rtag.eq(head.id[:tagl.size]),
                                 rskip.eq(head.status != CacheStatus.OK)]
                with m.Else():            # a STORE's acknowledgement, or a quiet request's error
                    m.d.comb += st_resp_inc.eq(~head.id[quiet_bit(cfg)])
                    m.d.sync += drain.eq(~rx.payload.last)
        m.d.sync += self.fault.eq(fault)
        with m.If(st_resp_inc):
            m.d.sync += st_resps.eq(st_resps + 1)

        # ================================ LOAD completion =====================================
        complete = Signal()
        m.d.comb += complete.eq(armed.bit_select(done_seq, 1) & (arrived[done_seq] == expected[done_seq]))
        clear = Signal(LOAD_SLOTS)
        with m.If(complete):
            m.d.comb += clear.eq(Const(1, LOAD_SLOTS) << done_seq)
            m.d.sync += done_seq.eq(done_seq + 1)
        m.d.sync += [armed.eq((armed & ~clear) | arm_recv | arm_sent), self.load_done.eq(complete)]
        for i in range(LOAD_SLOTS):
            inc = w_done & (w_slot == i)
            m.d.sync += arrived[i].eq(arrived[i] + inc - Mux(clear[i], expected[i], 0))

        # ================================ STORE completion ====================================
        st_done = Signal()
        m.d.comb += st_done.eq(st_busy & ~st_gen & (meta.level == 0) & ~st_in_data & ~meta.w_en
                               & (st_resps == st_sent) & ~st_resp_inc)
        m.d.sync += self.store_done.eq(st_done)
        with m.If(st_done):
            m.d.sync += st_busy.eq(0)

        m.d.comb += self.busy.eq(ld_active | st_busy | armed.any() | w_valid | self.tx.valid)
        return m
