"""``SlicePort``: the L2 slice's endpoint on the NoC (request packets in, response packets out)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.cache.layouts import CacheOp, CacheStatus, request_layout, response_layout
from tessera.rtl.config import FabricConfig
from tessera.rtl.fabric.messages import TILE_PORT, quiet_bit, req_head_layout, resp_head_layout, slice_addr
from tessera.rtl.noc.layouts import RESPONSE, beat_layout, header_layout

__all__ = ["SlicePort"]

# ALLOC (op 4) and every other op are passed to the slice unchanged.
MALFORMED_OP = 7   # what a FLUSH / INVALIDATE arriving over the NoC is turned into


class SlicePort(wiring.Component):
    """Between NI port ``SLICE_PORT`` of ``node`` and a :class:`tessera.rtl.cache.slice.CacheSlice`.

    Ports: ``rx`` (in) / ``tx`` (out), beat streams of :func:`tessera.rtl.noc.layouts.beat_layout`;
    ``req`` (out, :func:`tessera.rtl.cache.layouts.request_layout`) / ``resp`` (in,
    :func:`tessera.rtl.cache.layouts.response_layout`) to the slice; ``flush`` (in, pulse), ``flush_op``
    (in, 0 FLUSH, 1 INVALIDATE), ``flush_busy`` (out), ``flush_errors`` (out, 32-bit count of
    non-OK flush responses); counters (32-bit, wrapping) ``requests`` (request packets received),
    ``resp_flits`` (response beats sent), ``mcast_packets`` (multicast response packets sent).

    Requests (:mod:`tessera.rtl.fabric.messages`): the head beat is decoded into one cache request
    (``size`` = log2(word), ``addr`` = :func:`tessera.rtl.fabric.messages.slice_addr` of the head's
    address; ``op``, ``mask``, ``id``, ``dest`` passed); a WRITE takes its data from the second
    beat. Beats after the ones a request needs are dropped up to ``last``. A FLUSH or INVALIDATE
    request from the NoC (not part of the protocol) is passed as op 7, so that the slice answers
    MALFORMED to its sender. A WRITE head with ``last`` set (no data beat) is passed with mask 0
    (it writes nothing).

    Responses: a :func:`tessera.rtl.fabric.messages.resp_head_layout` beat, then for READ the data beat;
    header class RESPONSE, port ``TILE_PORT``; unicast (``mcast`` 0, ``dest`` the node index)
    when ``dest`` has exactly one bit set, else multicast (``mcast`` 1, ``dest`` the bitmask;
    an empty mask is dropped by the NI and counted there). A WRITE or ALLOC response whose ``id``
    has the tag's ``quiet`` bit (:func:`tessera.rtl.fabric.messages.quiet_bit`) set and whose status is
    OK is consumed here and sends nothing (a STORE asks for one acknowledgement per line).

    Flush: a ``flush`` pulse (ignored while ``flush_busy``) injects a FLUSH / INVALIDATE into the
    slice as soon as no WRITE is half received, ahead of new NoC requests; its response is
    consumed here (``flush_busy`` from the pulse until that response).

    Latency: a request beat taken at edge t is offered to the slice from t + 1; a response taken
    at edge t puts its head on ``tx`` from t + 1 and its data beat from the edge the head goes.
    Throughput: one request per cycle (READ / ALLOC; a WRITE takes 2 beats, 2 cycles); response
    beats one per cycle (a READ's two beats in two cycles). Back-pressure: ``req`` and ``tx`` are
    registers (valid never depends on ready); ``rx.ready`` is high when the request register is
    free or being taken, ``resp.ready`` when the tx register is free and no data beat waits.
    """

    def __init__(self, cfg: FabricConfig, node: int):
        if not isinstance(cfg, FabricConfig):
            raise ValueError("SlicePort cfg must be a FabricConfig")
        if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < cfg.noc.nodes:
            raise ValueError(f"SlicePort node = {node!r} is not a node of the mesh (0..{cfg.noc.nodes - 1})")
        self.cfg, self.node = cfg, node
        super().__init__({
            "rx": In(stream.Signature(beat_layout(cfg.noc))),
            "tx": Out(stream.Signature(beat_layout(cfg.noc))),
            "req": Out(stream.Signature(request_layout(cfg.cache))),
            "resp": In(stream.Signature(response_layout(cfg.cache))),
            "flush": In(1),
            "flush_op": In(1),
            "flush_busy": Out(1),
            "flush_errors": Out(32),
            "requests": Out(32),
            "resp_flits": Out(32),
            "mcast_packets": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        nodes = cfg.noc.nodes
        W = cfg.cache.data_bytes
        rqh, rsh = req_head_layout(cfg), resp_head_layout(cfg)

        # ================================ requests ============================================
        rx, req = self.rx, self.req
        head = Signal(rqh)
        m.d.comb += head.as_value().eq(rx.payload.data[:rqh.size])
        req_free = ~req.valid | req.ready
        with m.If(req.valid & req.ready):
            m.d.sync += req.valid.eq(0)

        in_write = Signal()               # a WRITE head is held; its data beat is next
        drain = Signal()                  # drop beats up to last
        held = Signal(request_layout(cfg.cache))
        flush_pending = Signal()
        flush_out = Signal()              # the flush request is in the slice
        flush_kind = Signal()

        dec = Signal(request_layout(cfg.cache))
        op_raw = head.op.as_value()
        is_flush_op = (op_raw == CacheOp.FLUSH.value) | (op_raw == CacheOp.INVALIDATE.value)
        m.d.comb += [
            dec.op.as_value().eq(Mux(is_flush_op, MALFORMED_OP, op_raw)),
            dec.size.eq((W - 1).bit_length()),
            dec.addr.eq(slice_addr(cfg, head.addr)),
            dec.mask.eq(head.mask),
            dec.data.eq(0),
            dec.id.eq(head.id),
            dec.dest.eq(head.dest),
        ]

        inject = Signal()
        m.d.comb += inject.eq(flush_pending & ~in_write & ~drain & req_free)
        m.d.comb += rx.ready.eq(Mux(drain, 1, req_free & ~inject))
        with m.If(inject):
            m.d.sync += [
                req.valid.eq(1), req.payload.eq(0),
                req.payload.op.eq(Mux(flush_kind, CacheOp.INVALIDATE.value, CacheOp.FLUSH.value)),
                flush_pending.eq(0), flush_out.eq(1),
            ]
        with m.Elif(rx.valid & rx.ready):
            last = rx.payload.last
            with m.If(drain):
                m.d.sync += drain.eq(~last)
            with m.Elif(in_write):
                m.d.sync += [req.valid.eq(1), req.payload.eq(held), req.payload.data.eq(rx.payload.data),
                             in_write.eq(0), drain.eq(~last)]
            with m.Else():
                m.d.sync += self.requests.eq(self.requests + 1)
                with m.If((op_raw == CacheOp.WRITE.value) & ~last):
                    m.d.sync += [held.eq(dec), in_write.eq(1)]
                with m.Else():
                    m.d.sync += [req.valid.eq(1), req.payload.eq(dec), drain.eq(~last)]
                    with m.If(op_raw == CacheOp.WRITE.value):      # a WRITE without data: write nothing
                        m.d.sync += req.payload.mask.eq(0)

        with m.If(self.flush & ~flush_pending & ~flush_out):
            m.d.sync += [flush_pending.eq(1), flush_kind.eq(self.flush_op)]
        m.d.comb += self.flush_busy.eq(flush_pending | flush_out)

        # ================================ responses ===========================================
        resp, tx = self.resp, self.tx
        r = resp.payload
        tx_free = ~tx.valid | tx.ready
        data_next = Signal()              # the data beat of a READ response is next
        rdata = Signal(W * 8)
        rhdr = Signal(header_layout(cfg.noc))
        with m.If(tx.valid & tx.ready):
            m.d.sync += self.resp_flits.eq(self.resp_flits + 1)
            m.d.sync += tx.valid.eq(0)

        r_op = r.op.as_value()
        local = (r_op == CacheOp.FLUSH.value) | (r_op == CacheOp.INVALIDATE.value)
        quiet = ((r_op == CacheOp.WRITE.value) | (r_op == CacheOp.ALLOC.value)) \
            & r.id[quiet_bit(cfg)] & (r.status == CacheStatus.OK)
        rh = Signal(rsh)
        m.d.comb += [rh.op.eq(r.op), rh.status.eq(r.status), rh.id.eq(r.id)]
        dest = r.dest[:nodes]
        onehot = Signal()
        index = Signal(max(1, (nodes - 1).bit_length()))
        m.d.comb += onehot.eq((dest != 0) & ((dest & (dest - 1)) == 0))
        for i in range(nodes):
            with m.If(dest[i]):
                m.d.comb += index.eq(i)
        hdr = Signal(header_layout(cfg.noc))
        m.d.comb += [hdr.cls.eq(RESPONSE), hdr.port.eq(TILE_PORT), hdr.mcast.eq(~onehot),
                     hdr.dest.eq(Mux(onehot, index, dest))]

        m.d.comb += resp.ready.eq(Mux(local | quiet, 1, tx_free & ~data_next))
        with m.If(data_next & tx_free):
            m.d.sync += [tx.valid.eq(1), tx.payload.data.eq(rdata), tx.payload.last.eq(1),
                         tx.payload.hdr.eq(rhdr), data_next.eq(0)]
        with m.If(resp.valid & resp.ready):
            with m.If(local):
                m.d.sync += flush_out.eq(0)
                with m.If(r.status != CacheStatus.OK):
                    m.d.sync += self.flush_errors.eq(self.flush_errors + 1)
            with m.Elif(~quiet):
                is_read = r_op == CacheOp.READ.value
                m.d.sync += [
                    tx.valid.eq(1), tx.payload.data.eq(Cat(rh.as_value(), Const(0, W * 8 - rsh.size))),
                    tx.payload.last.eq(~is_read), tx.payload.hdr.eq(hdr),
                    data_next.eq(is_read), rdata.eq(r.data), rhdr.eq(hdr),
                ]
                with m.If(~onehot):
                    m.d.sync += self.mcast_packets.eq(self.mcast_packets + 1)
        return m
