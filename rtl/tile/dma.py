"""The compute tile's tensor DMA: LOAD / STORE descriptors <-> request and response packets."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value
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


@dataclass(frozen=True)
class _Params:
    """Elaboration constants of a :class:`TensorDma`, shared by its sections."""

    W: int                        # word bytes
    wb: int                       # byte-offset bits of a word
    L: int                        # cache line bytes
    ob: int                       # byte-offset bits of a line
    own: Value                    # one-hot of this tile's node (a signal when ``node_id`` is a port)
    lwb: int                      # local word address bits
    cw: int                       # width of one descriptor's word counts
    tagl: data.StructLayout       # request tag (:func:`tessera.rtl.fabric.messages.tag_layout`)
    rqh: data.StructLayout        # request head
    rsh: data.StructLayout        # response head
    beat: data.StructLayout       # NoC beat


@dataclass(frozen=True)
class _LoadSide:
    """Signals of :meth:`TensorDma._load_requests` used by the other sections."""

    active: Signal                # a LOCAL / SEND LOAD is generating requests: ``beat`` is valid
    beat: Signal                  # the current word's READ request beat
    take: Signal                  # driven by the tx arbiter: ``beat`` is taken this cycle
    expected: Array               # per slot: words the LOAD brings to this tile
    arrived: Array                # per slot: words written (or skipped) so far
    armed: Signal                 # per slot: the LOAD has been taken and its requests have all left
    done_seq: Signal              # slot of the next LOAD to complete
    arm_recv: Signal              # per slot, one cycle: a RECV LOAD is taken
    arm_sent: Signal              # per slot, one cycle: a LOAD's last request leaves on tx


@dataclass(frozen=True)
class _StoreSide:
    """State of the STORE in progress and its word queues (:meth:`TensorDma._store_reads`)."""

    busy: Signal                  # a STORE is in progress
    gen: Signal                   # still reading words of the accumulator
    sent: Signal                  # acknowledged WRITEs sent
    resps: Signal                 # acknowledgements received
    meta_l: data.StructLayout     # a ``meta`` entry: addr, mask, alloc, ack
    meta: SyncFIFOBuffered        # per word read: its packet metadata
    dfifo: SyncFIFOBuffered       # per word read: its data


@dataclass(frozen=True)
class _StorePackets:
    """The STORE's packet beat offered to the tx arbiter (:meth:`TensorDma._store_packets`)."""

    in_data: Signal               # the WRITE head has gone, its data beat is next
    need_alloc: Value             # the word at the queue head still needs its ALLOC
    cand: Signal                  # the beat offered
    cand_valid: Signal
    take: Signal                  # driven by the tx arbiter: ``cand`` is taken this cycle


@dataclass(frozen=True)
class _Responses:
    """Signals of :meth:`TensorDma._responses` used by the completion sections."""

    w_valid: Signal               # the write register holds a data word
    w_done: Signal                # its write is taken (or skipped) this cycle
    w_slot: Signal                # the LOAD slot of that word
    st_resp_inc: Signal           # a STORE acknowledgement is received this cycle


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
        cfg, noc = self.cfg, self.cfg.noc
        W = cfg.tile.word_bytes
        if self.node is None:
            own = Signal(noc.nodes, name="own")
            m.d.comb += own.eq(Const(1, noc.nodes) << self.node_id)
        else:
            own = Const(1 << self.node, noc.nodes)
        lwb = local_word_bits(cfg)
        k = _Params(W=W, wb=(W - 1).bit_length(), L=cfg.cache.line_bytes, ob=cfg.cache.offset_bits,
                    own=own, lwb=lwb, cw=lwb + 2, tagl=tag_layout(cfg), rqh=req_head_layout(cfg),
                    rsh=resp_head_layout(cfg), beat=beat_layout(noc))

        ld = self._load_requests(m, k)
        st = self._store_reads(m, k)
        sp = self._store_packets(m, k, st)
        self._tx_arbiter(m, ld, sp)
        rsp = self._responses(m, k, st)
        self._load_completion(m, ld, rsp)
        self._store_completion(m, st, sp, rsp)

        m.d.comb += self.busy.eq(ld.active | st.busy | ld.armed.any() | rsp.w_valid | self.tx.valid)
        return m

    def _request_beat(self, m, k: _Params, name, op, addr, tag, dest, mask, last) -> Signal:
        """The beat ``name`` of a request packet's head (combinational): ``op`` at byte ``addr``, to
        the L2 slice that owns ``addr``, with ``tag`` as ``id``; ``last`` for a one-beat packet."""
        b = Signal(k.beat, name=name)
        h = Signal(k.rqh, name=name + "_head")
        m.d.comb += [
            h.op.as_value().eq(op), h.addr.eq(addr), h.mask.eq(mask), h.id.eq(tag), h.dest.eq(dest),
            b.data.eq(h.as_value()), b.last.eq(last),
            b.hdr.cls.eq(REQUEST), b.hdr.mcast.eq(0), b.hdr.port.eq(SLICE_PORT),
            b.hdr.dest.eq(owner(self.cfg, addr)),
        ]
        return b

    # ================================ LOAD request generator ==================================
    def _load_requests(self, m, k: _Params) -> _LoadSide:
        """LOAD request generator: takes a ``load`` descriptor, sets its slot's expected word count,
        and walks a LOCAL / SEND LOAD word by word, offering one READ request beat per word
        (``beat`` while ``active``; the tx arbiter pulses ``take`` when it takes it). Also holds the
        per-slot completion state (used by :meth:`_load_completion`) and arms a slot: a RECV LOAD's
        when it is taken, a LOCAL / SEND LOAD's when its last request beat leaves the ``tx`` register.

        Latency: a descriptor taken at edge t has its first request beat on ``tx`` from edge t + 1;
        one word per beat taken. Back-pressure: ``load.ready`` is low while a LOAD is generating (a
        RECV LOAD is taken in one cycle and generates nothing)."""
        cfg, W, wb, own = self.cfg, k.W, k.wb, k.own
        ld = Signal(xfer_desc_layout(cfg), name="ld")
        ld_active = Signal()
        ldw = _Walk2D("ld", k.lwb + 1)
        ld_rem, ld_cur_mem, ld_cur_local = ldw.rem, ldw.mem, ldw.local
        ld_dest = Signal(cfg.noc.nodes)
        ld_slot = Signal(SLOT_BITS)
        load_seq = Signal(SLOT_BITS)

        expected = Array(Signal(k.cw, name=f"expected{i}") for i in range(LOAD_SLOTS))
        arrived = Array(Signal(k.cw, name=f"arrived{i}") for i in range(LOAD_SLOTS))
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

        ld_tag = Signal(k.tagl)
        m.d.comb += [
            ld_tag.valid.eq(Mux(ld_rem <= W, ld_rem[:wb], 0)),
            ld_tag.word.eq(ld_cur_local),
            ld_tag.space.eq(ld.space),
            ld_tag.slot.eq(ld_slot),
        ]
        ld_beat = self._request_beat(m, k, "ld_beat", CacheOp.READ.value, ld_cur_mem, ld_tag.as_value(),
                                     ld_dest, 0, 1)
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

        return _LoadSide(active=ld_active, beat=ld_beat, take=ld_take, expected=expected, arrived=arrived,
                         armed=armed, done_seq=done_seq, arm_recv=arm_recv, arm_sent=arm_sent)

    # ================================ STORE ===================================================
    def _store_reads(self, m, k: _Params) -> _StoreSide:
        """STORE word walk: takes a ``store`` descriptor and reads its words from the accumulator in
        order (``acc_rd``), queueing per word the packet metadata (address, valid-byte mask, ALLOC
        and acknowledge flags) in ``meta`` and the read data in ``dfifo``.

        Latency: a descriptor taken at edge t has its first accumulator read taken at edge t + 1 at
        the earliest (so its first beat is on ``tx`` from t + 3); one read per cycle. Back-pressure:
        ``store.ready`` is low while a STORE is in progress; a read is issued only while ``meta``
        has room and its response is taken while ``dfifo`` has room, so the reads run at most 4
        words ahead of the packets."""
        W, wb, L, ob = k.W, k.wb, k.L, k.ob
        st_busy = Signal()
        st = Signal(xfer_desc_layout(self.cfg), name="st")
        st_gen = Signal()                 # still reading words of the accumulator
        stw = _Walk2D("st", k.lwb + 1)
        st_rem, st_cur_mem, st_cur_local = stw.rem, stw.mem, stw.local
        st_sent = Signal(k.cw + 1)
        st_resps = Signal(k.cw + 1)
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

        return _StoreSide(busy=st_busy, gen=st_gen, sent=st_sent, resps=st_resps, meta_l=meta_l,
                          meta=meta, dfifo=dfifo)

    def _store_packets(self, m, k: _Params, st: _StoreSide) -> _StorePackets:
        """STORE packets: for the word at the heads of ``meta`` / ``dfifo``, an ALLOC beat first when
        the word starts a line the row covers completely, then the WRITE head beat and its data
        beat, offered one at a time on ``cand`` / ``cand_valid`` (combinational from the FIFO heads);
        the tx arbiter pulses ``take``. Counts the acknowledged WRITEs sent (``st.sent``) and the
        ``write_requests`` / ``alloc_requests``.

        Back-pressure: the word's FIFO entries are popped when its data beat is taken; once the
        WRITE head is taken, the data beat is offered unconditionally (``in_data``)."""
        meta, dfifo, st_sent = st.meta, st.dfifo, st.sent
        rmeta = Signal(st.meta_l)
        m.d.comb += rmeta.as_value().eq(meta.r_data)
        st_alloc_sent = Signal()
        st_in_data = Signal()             # the WRITE head has gone, its data beat is next
        alloc_tag, write_tag = Signal(k.tagl), Signal(k.tagl)
        m.d.comb += [alloc_tag.space.eq(Space.ACC.value), alloc_tag.quiet.eq(1),
                     write_tag.space.eq(Space.ACC.value), write_tag.quiet.eq(~rmeta.ack)]
        need_alloc = rmeta.alloc & ~st_alloc_sent
        alloc_beat = self._request_beat(m, k, "alloc_beat", CacheOp.ALLOC.value, rmeta.addr,
                                        alloc_tag.as_value(), k.own, 0, 1)
        whead_beat = self._request_beat(m, k, "whead_beat", CacheOp.WRITE.value, rmeta.addr,
                                        write_tag.as_value(), k.own, rmeta.mask, 0)
        wdata_beat = Signal(k.beat)
        m.d.comb += [wdata_beat.eq(whead_beat), wdata_beat.data.eq(dfifo.r_data), wdata_beat.last.eq(1)]
        st_cand = Signal(k.beat)
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

        return _StorePackets(in_data=st_in_data, need_alloc=need_alloc, cand=st_cand,
                             cand_valid=st_cand_valid, take=st_take)

    # ================================ tx arbitration ==========================================
    def _tx_arbiter(self, m, ld: _LoadSide, sp: _StorePackets):
        """tx arbitration: loads the ``tx`` register whenever it is free (empty or being taken),
        round-robin between LOAD requests and STORE packets, packet by packet (a WRITE's head and
        data beats go back to back); pulses ``ld.take`` / ``sp.take`` and counts ``read_requests``.

        Latency: a beat taken at edge t is on ``tx`` from t + 1. Back-pressure: ``tx.valid`` never
        depends on ``tx.ready``; nothing is taken while the register is full and not being taken."""
        tx_free = ~self.tx.valid | self.tx.ready
        ld_valid = ld.active
        prefer_st = Signal()
        with m.If(tx_free):
            with m.If(sp.in_data | (sp.cand_valid & (prefer_st | ~ld_valid))):
                m.d.comb += sp.take.eq(1)
                m.d.sync += [self.tx.payload.eq(sp.cand), self.tx.valid.eq(1)]
                with m.If(sp.in_data):
                    m.d.sync += prefer_st.eq(0)
            with m.Elif(ld_valid):
                m.d.comb += ld.take.eq(1)
                m.d.sync += [self.tx.payload.eq(ld.beat), self.tx.valid.eq(1), prefer_st.eq(1),
                             self.read_requests.eq(self.read_requests + 1)]
            with m.Else():
                m.d.sync += self.tx.valid.eq(0)
        with m.If(sp.take & ~sp.in_data & sp.need_alloc):
            m.d.sync += prefer_st.eq(0)

    # ================================ responses ===============================================
    def _responses(self, m, k: _Params, st: _StoreSide) -> _Responses:
        """Responses from ``rx``: a READ's data word goes into the write register, offered on
        ``sp_wr`` or ``acc_wr`` by the tag's space with the tag's valid bytes as mask (not written,
        only counted, when the READ failed), and counts in ``resp_words``; a STORE acknowledgement
        counts in ``st.resps``; a non-OK status pulses ``fault`` (registered). Other beats up to
        ``last`` are dropped.

        Latency: a data beat taken from ``rx`` at edge t is offered on the write port from t + 1;
        ``fault`` follows the head beat by one cycle. Back-pressure: ``rx.ready`` is high for a head
        beat, and for a data beat when the write register is free (empty or being written)."""
        cfg, W, tagl, rsh = self.cfg, k.W, k.tagl, k.rsh
        st_resps = st.resps
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
        w_addr = Signal(k.lwb)
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

        return _Responses(w_valid=w_valid, w_done=w_done, w_slot=w_slot, st_resp_inc=st_resp_inc)

    # ================================ LOAD completion =========================================
    def _load_completion(self, m, ld: _LoadSide, rsp: _Responses):
        """LOAD completion, in order: counts each written (or skipped) data word in its slot's
        ``arrived``; the LOAD of slot ``done_seq`` completes when the slot is armed and ``arrived``
        has reached ``expected``, which clears the slot (``expected`` is subtracted, so words of the
        slot's next LOAD that came early stay counted) and pulses ``load_done`` the next cycle.

        Latency: ``load_done`` comes at the earliest two cycles after the write of the LOAD's last
        word is taken (or after its last request beat is taken from ``tx``, whichever is later)."""
        expected, arrived, armed, done_seq = ld.expected, ld.arrived, ld.armed, ld.done_seq
        complete = Signal()
        m.d.comb += complete.eq(armed.bit_select(done_seq, 1) & (arrived[done_seq] == expected[done_seq]))
        clear = Signal(LOAD_SLOTS)
        with m.If(complete):
            m.d.comb += clear.eq(Const(1, LOAD_SLOTS) << done_seq)
            m.d.sync += done_seq.eq(done_seq + 1)
        m.d.sync += [armed.eq((armed & ~clear) | ld.arm_recv | ld.arm_sent), self.load_done.eq(complete)]
        for i in range(LOAD_SLOTS):
            inc = rsp.w_done & (rsp.w_slot == i)
            m.d.sync += arrived[i].eq(arrived[i] + inc - Mux(clear[i], expected[i], 0))

    # ================================ STORE completion ========================================
    def _store_completion(self, m, st: _StoreSide, sp: _StorePackets, rsp: _Responses):
        """STORE completion: once every word is read, queued and sent and every acknowledgement is
        back, ``store_done`` pulses the next cycle and ``store`` is ready again (the cycle after
        the last response is received)."""
        st_done = Signal()
        m.d.comb += st_done.eq(st.busy & ~st.gen & (st.meta.level == 0) & ~sp.in_data & ~st.meta.w_en
                               & (st.resps == st.sent) & ~rsp.st_resp_inc)
        m.d.sync += self.store_done.eq(st_done)
        with m.If(st_done):
            m.d.sync += st.busy.eq(0)
