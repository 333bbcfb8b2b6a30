"""``NetworkInterface``: packets in and out of the mesh as streams, for one local endpoint."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from tessera.rtl.noc.arbiter import after, onehot_mux, round_robin
from tessera.rtl.noc.layouts import (
    CLASSES,
    beat_layout,
    flit_layout,
    link_signature,
    node_bits,
    node_xy,
    vc_is,
)

__all__ = ["NetworkInterface", "injection_vc"]


def injection_vc(cfg, node: int, port: int) -> int:
    """The VC (within each class) on which endpoint ``port`` of ``node`` injects every packet.

    Static per source, so that the packets of one (source, destination, class) share one path
    and one VC and stay in order; chequered over the mesh so that both VCs carry traffic.
    """
    x, y = node_xy(cfg, node)
    return (x + y + port) % cfg.vcs


class NetworkInterface(wiring.Component):
    """Network interface of endpoint ``port`` at ``node``.

    ``tx`` (in): packets to send, as beats of :func:`tessera.rtl.noc.layouts.beat_layout`; the header is
    taken from the first beat of each packet (later beats' ``hdr`` is ignored), ``last`` marks the
    final beat. ``hdr.src`` / ``hdr.src_port`` are ignored (the NI fills them in).
    ``rx`` (out): packets delivered here, one whole packet at a time (beats of different packets
    never interleave), ``hdr`` repeated on every beat with ``src`` / ``src_port`` of the sender and
    ``dest`` the delivered bitmask (this node's bit).
    ``to_router`` / ``from_router``: the links to this endpoint's router port.
    ``errors`` (out, 32 bits): bad packets since reset (dropped, or truncated multicasts; below).

    Bad input: a unicast whose ``dest`` index is not a node of the mesh, a multicast whose
    ``dest`` bitmask is empty, or a ``port`` that is not an endpoint index is consumed whole
    (every beat up to ``last``) without entering the network and counted in ``errors``; traffic
    before and after it is unaffected. A multicast longer than ``depth`` beats (the limit of the
    multicast deadlock-freedom argument, ``docs/noc.md``) is truncated: its first ``depth`` beats
    enter the network as a complete ``depth``-flit packet (beat ``depth`` carries the tail, so
    every destination receives those ``depth`` beats with ``last`` on the final one), the
    remaining beats up to ``last`` are consumed without entering the network, and the packet is
    counted once in ``errors`` (when beat ``depth`` is sent). Beats already injected cannot
    be recalled, and holding a multicast back until its length is known would delay every legal
    one; so an over-long multicast never exists in the network, and legal packets see no change
    in timing. An endpoint that receives a ``depth``-beat multicast cannot tell a truncated one
    from a legal one; the sender's ``errors`` count is the report.

    Endpoint obligation (one ``rx`` for both classes): the NI delivers whole packets and, once a
    packet is offered on ``rx``, offers nothing else until its tail is taken, so a packet the
    endpoint holds up blocks every packet of either class behind it at this endpoint. The class
    separation of the network therefore holds end to end only if (1) the endpoint takes every
    response beat without waiting for anything in the NoC (its own ``tx`` being accepted, another
    packet arriving), and (2) if it also receives requests, it takes request beats under the same
    rule. An endpoint that receives only requests may wait for its own responses to be accepted
    on ``tx``. The fabric meets this with endpoints of one class each (``docs/noc.md``, "Endpoint
    obligation").

    Latency: a beat accepted on ``tx`` is in the router's input FIFO at the next edge. A flit in
    the ejection FIFO is offered on ``rx`` in the cycle after it arrives. Throughput: one beat per
    cycle each way. ``tx.ready`` depends on ``tx.valid`` / ``tx.payload`` (header check, credits);
    ``rx.valid`` depends only on state. A multicast packet enters the network only when the
    router's input FIFO of its (class, VC) is empty, and is at most ``depth`` flits long in the
    network (the virtual cut-through condition of the multicast deadlock-freedom argument,
    enforced by the truncation above).
    """

    def __init__(self, cfg, node: int, port: int):
        if not 0 <= node < cfg.nodes:
            raise ValueError(f"NetworkInterface node = {node} is not a node of the mesh (0..{cfg.nodes - 1})")
        if not 0 <= port < cfg.local_ports:
            raise ValueError(f"NetworkInterface port = {port} is not an endpoint (0..{cfg.local_ports - 1})")
        self.cfg, self.node, self.port = cfg, node, port
        super().__init__({
            "tx": In(stream.Signature(beat_layout(cfg))),
            "rx": Out(stream.Signature(beat_layout(cfg))),
            "to_router": Out(link_signature(cfg)),
            "from_router": In(link_signature(cfg)),
            "errors": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        self._inject(m)
        self._eject(m)
        return m

    def _inject(self, m):
        cfg, V, D = self.cfg, self.cfg.vcs, self.cfg.depth
        vc = injection_vc(cfg, self.node, self.port)
        tx, link, hdr = self.tx, self.to_router, self.tx.payload.hdr

        credit = Array(Signal(range(D + 1), init=D, name=f"credit_c{c}") for c in range(CLASSES))
        for c in range(CLASSES):
            m.d.sync += credit[c].eq(credit[c] + link.credit[c * V + vc]
                                     - (link.valid & (link.flit.cls == c)))

        in_packet = Signal()       # beats after the first of a packet being sent
        dropping = Signal()        # beats after the first of a packet being dropped
        held = Signal(flit_layout(cfg))   # routing fields of the packet in progress

        bad = Signal()
        nb = node_bits(cfg)
        outside = hdr.dest[nb:].any() if cfg.nodes > nb else Const(0, 1)
        if cfg.nodes < 1 << nb:
            outside = outside | (hdr.dest[:nb] >= cfg.nodes)   # cfg.nodes needs exactly nb bits
        bad_expr = Mux(hdr.mcast, ~hdr.dest.any(), outside)
        if cfg.local_ports & (cfg.local_ports - 1):
            bad_expr = bad_expr | (hdr.port >= Const(cfg.local_ports, len(hdr.port)))
        m.d.comb += bad.eq(bad_expr)
        dest_mask = Mux(hdr.mcast, hdr.dest, (Const(1, cfg.nodes) << hdr.dest[:nb])[:cfg.nodes])

        first = Signal(flit_layout(cfg))
        m.d.comb += [
            first.head.eq(1), first.cls.eq(hdr.cls), first.vc.eq(vc), first.mcast.eq(hdr.mcast),
            first.dest.eq(dest_mask), first.port.eq(hdr.port),
            first.src.eq(self.node), first.src_port.eq(self.port),
        ]
        flit = Signal(flit_layout(cfg))
        # Multicast length limit: ``beat`` counts the beats of the packet being sent (reset by
        # every tail). Beat D - 1 of a multicast is always sent as the tail; if it is not the
        # packet's last beat, the packet is over-long: the network gets its first D beats as a
        # D-flit packet, the rest is dropped (``cut``). NocConfig keeps D >= 2, so that beat is
        # never a first beat: ``at_limit`` comes from registers (``held``), not ``tx.payload``.
        assert D >= 2, "NocConfig.depth >= 2"
        beat = Signal(range(D), name="beat")
        at_limit = Signal()
        cut = Signal()
        m.d.comb += at_limit.eq(in_packet & held.mcast & (beat == D - 1))
        m.d.comb += [
            flit.eq(Mux(in_packet, held, first)),
            flit.head.eq(~in_packet),
            flit.data.eq(tx.payload.data),
            flit.tail.eq(tx.payload.last),
            cut.eq(at_limit & ~tx.payload.last),
        ]
        tail = flit.tail | at_limit     # the tail as sent (``flit`` keeps the packet's own)
        cr = credit[flit.cls]
        room = Mux(flit.head & flit.mcast, cr == D, cr.any())
        starting_bad = ~in_packet & ~dropping & bad

        with m.If(dropping | starting_bad):
            m.d.comb += tx.ready.eq(1)
            with m.If(tx.valid):
                m.d.sync += dropping.eq(~tx.payload.last)
                with m.If(starting_bad):
                    m.d.sync += self.errors.eq(self.errors + 1)
        with m.Else():
            m.d.comb += [tx.ready.eq(room), link.valid.eq(tx.valid & room), link.flit.eq(flit),
                         link.flit.tail.eq(tail)]
            with m.If(tx.valid & room):
                m.d.sync += in_packet.eq(~tail)
                with m.If(~in_packet):
                    m.d.sync += held.eq(first)
                m.d.sync += beat.eq(Mux(tail, 0, beat + 1))
                with m.If(cut):
                    m.d.sync += [dropping.eq(1), self.errors.eq(self.errors + 1)]

    def _eject(self, m):
        cfg, V, D = self.cfg, self.cfg.vcs, self.cfg.depth
        layout = flit_layout(cfg)
        link, rx = self.from_router, self.rx
        n = CLASSES * V

        fifos, heads = [], []
        for c in range(CLASSES):
            for v in range(V):
                fifo = SyncFIFO(width=layout.size, depth=D)
                m.submodules[f"eject_c{c}_v{v}"] = fifo
                m.d.comb += [
                    fifo.w_data.eq(link.flit),
                    fifo.w_en.eq(link.valid & (link.flit.cls == c) & vc_is(link.flit.vc, v)),
                    link.credit[c * V + v].eq(fifo.r_en & fifo.r_rdy),
                ]
                fifos.append(fifo)
                heads.append(fifo.r_data)

        # Deliver one whole packet at a time: pick a FIFO round-robin, then stay on it to the tail.
        locked = Signal()
        lock = Signal(n)
        prio = Signal(n, init=(1 << n) - 1)
        ready = Cat(f.r_rdy for f in fifos)
        pick = Signal(n)
        m.d.comb += pick.eq(Mux(locked, lock, round_robin(ready, prio)))
        flit = Signal(layout)
        m.d.comb += flit.eq(onehot_mux(pick, heads))
        m.d.comb += [
            rx.valid.eq((ready & pick).any()),
            rx.payload.data.eq(flit.data),
            rx.payload.last.eq(flit.tail),
            rx.payload.hdr.cls.eq(flit.cls),
            rx.payload.hdr.mcast.eq(flit.mcast),
            rx.payload.hdr.port.eq(flit.port),
            rx.payload.hdr.dest.eq(flit.dest),
            rx.payload.hdr.src.eq(flit.src),
            rx.payload.hdr.src_port.eq(flit.src_port),
        ]
        for k, fifo in enumerate(fifos):
            m.d.comb += fifo.r_en.eq(pick[k] & rx.ready)
        with m.If(rx.valid):
            # Hold the choice from the first cycle it is offered, so the payload stays stable.
            m.d.sync += [locked.eq(1), lock.eq(pick)]
            with m.If(rx.ready & flit.tail):
                m.d.sync += [locked.eq(0), prio.eq(after(pick, n))]
