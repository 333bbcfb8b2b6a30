"""``Router``: one mesh router, XY routing, credit flow control, in-network multicast fork."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from tessera.rtl.noc.arbiter import after, onehot_mux, round_robin
from tessera.rtl.noc.layouts import CLASSES, DIRS, flit_layout, link_signature, node_id, node_xy, vc_is

__all__ = ["Router", "router_ports", "allowed_turn"]


def router_ports(cfg, x: int, y: int) -> list[str]:
    """Port names of the router at (x, y): local endpoints ``l0..`` then the existing directions."""
    exists = {"n": y > 0, "e": x < cfg.width - 1, "s": y < cfg.height - 1, "w": x > 0}
    return [f"l{i}" for i in range(cfg.local_ports)] + [d for d in DIRS if exists[d]]


def allowed_turn(src: str, dst: str) -> bool:
    """Whether XY routing can ever move a flit from input port ``src`` to output port ``dst``.

    From a local port: anywhere. Travelling along X (entered at ``w`` or ``e``): onward in X, into
    Y, or out to a local port. Travelling along Y (entered at ``n`` or ``s``): onward in Y or out.
    """
    if src.startswith("l") or dst.startswith("l"):
        return True
    onward = {"w": "e", "e": "w", "n": "s", "s": "n"}[src]
    if src in ("w", "e"):
        return dst in (onward, "n", "s")
    return dst == onward


class Router(wiring.Component):
    """One router of the mesh at ``(x, y)``.

    Ports: for every port name ``p`` of :func:`router_ports` an input link ``in_p``, an output
    link ``out_p`` (:func:`tessera.rtl.noc.layouts.link_signature`) and a flit counter ``count_p`` (flits
    sent on that output since reset, 32 bits, wrapping).

    Buffers: each input port has one FIFO of ``depth`` flits per (class, VC); the upstream sender
    tracks its free space with credits (a credit pulse per pop). A flit keeps the (class, VC) it
    was injected on all the way (the NI picks the VC statically per source endpoint), so packets
    of one (source, destination, class) stay in order.

    Routing: XY dimension order, computed combinationally from the head flit's destination bitmask
    against constant per-output node masks (east: columns > x; west: columns < x; north/south:
    this column, rows above/below; local ``l<port>``: this node and the header's ``port``).
    A multicast head whose bitmask covers several outputs forks: each copy carries only the
    destinations of its branch, so every destination gets exactly one copy.

    Allocation, single cycle: every input FIFO head requests each output in its route that it has
    not yet been sent to; an output grants one request per cycle, round-robin over the input
    FIFOs. A unicast head is eligible when the output (class, VC) is not held by another packet and
    has a credit; a body flit follows its head's (class, VC), which the head holds until the tail
    passes. A multicast head is granted atomically: only when, on every output of its route, the
    (class, VC) is unowned and the downstream FIFO is empty (virtual cut-through), and then on all
    those outputs in the same cycle (one multicast per router per cycle, round-robin). It never
    holds one branch while waiting for another; ``docs/noc.md`` shows why that keeps the fork
    deadlock-free. A flit leaves its input FIFO once every branch has taken it.

    Latency: a flit written into an input FIFO at one clock edge leaves on an output link during
    the next cycle and is in the next router's FIFO at the following edge: one cycle per hop,
    router and link together. Throughput: one flit per output per cycle; every input FIFO can send
    in the same cycle (to different outputs). Credits return in one cycle, so two flits of buffer
    per VC sustain a full-rate stream.

    Errors: none are detected here; the network interfaces drop malformed packets at injection.
    A flit whose route is empty is discarded.
    """

    def __init__(self, cfg, x: int, y: int):
        if not (0 <= x < cfg.width and 0 <= y < cfg.height):
            raise ValueError(f"Router position ({x}, {y}) is outside the {cfg.width} x {cfg.height} mesh")
        self.cfg, self.x, self.y = cfg, x, y
        self.node = node_id(cfg, x, y)
        self.ports = router_ports(cfg, x, y)
        sig = {}
        for p in self.ports:
            sig[f"in_{p}"] = In(link_signature(cfg))
            sig[f"out_{p}"] = Out(link_signature(cfg))
            sig[f"count_{p}"] = Out(32)
        super().__init__(sig)

    def branch_mask(self, port: str) -> int:
        """Constant bitmask of the destination nodes served through output ``port``."""
        cfg, mask = self.cfg, 0
        for n in range(cfg.nodes):
            nx, ny = node_xy(cfg, n)
            hit = {
                "e": nx > self.x,
                "w": nx < self.x,
                "n": nx == self.x and ny < self.y,
                "s": nx == self.x and ny > self.y,
            }.get(port, n == self.node)
            if hit:
                mask |= 1 << n
        return mask

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        layout = flit_layout(cfg)
        ports = self.ports
        V, D = cfg.vcs, cfg.depth

        # One FIFO per (input port, class, VC): its head flit, route and what is still to send.
        inputs = []   # dicts: port, cls, vc, fifo, head, want
        for p in ports:
            link = getattr(self, f"in_{p}")
            for c in range(CLASSES):
                for v in range(V):
                    fifo = SyncFIFO(width=layout.size, depth=D)
                    m.submodules[f"buf_{p}_c{c}_v{v}"] = fifo
                    m.d.comb += [
                        fifo.w_data.eq(link.flit),
                        fifo.w_en.eq(link.valid & (link.flit.cls == c) & vc_is(link.flit.vc, v)),
                        link.credit[c * V + v].eq(fifo.r_en & fifo.r_rdy),
                    ]
                    head = data.View(layout, fifo.r_data)
                    inputs.append({"port": p, "cls": c, "vc": v, "fifo": fifo, "head": head})

        def route_of(head, out: str):
            if out.startswith("l"):
                return head.dest[self.node] & (head.port == Const(int(out[1:]), len(head.port)))
            return (head.dest & self.branch_mask(out)).any()

        for i, inp in enumerate(inputs):
            head, fifo = inp["head"], inp["fifo"]
            outs = [o for o in ports if allowed_turn(inp["port"], o)]
            route_now = Signal(len(outs), name=f"route_now_{i}")
            m.d.comb += route_now.eq(Cat(route_of(head, o) for o in outs))
            route_held = Signal(len(outs), name=f"route_{i}")   # of the packet in progress
            done = Signal(len(outs), name=f"done_{i}")          # branches the head flit already took
            with m.If(fifo.r_rdy & head.head):
                m.d.sync += route_held.eq(route_now)
            want = Signal(len(outs), name=f"want_{i}")
            m.d.comb += want.eq(Mux(fifo.r_rdy, Mux(head.head, route_now, route_held) & ~done, 0))
            inp.update(outs=outs, want=want, done=done, sent=[])

        # Per output and (class, VC): credits, owner, and the three eligibility conditions.
        state = {}
        for o in ports:
            for c in range(CLASSES):
                for v in range(V):
                    credit = Signal(range(D + 1), init=D, name=f"credit_{o}_c{c}_v{v}")
                    owned = Signal(name=f"owned_{o}_c{c}_v{v}")
                    nz, free_u, free_m = (Signal(name=f"{k}_{o}_c{c}_v{v}")
                                          for k in ("nz", "free_u", "free_m"))
                    m.d.comb += [
                        nz.eq(credit.any()),
                        free_u.eq(~owned & credit.any()),
                        free_m.eq(~owned & (credit == D)),     # empty downstream: cut-through
                    ]
                    state[o, c, v] = (credit, owned, nz, free_u, free_m)

        # Multicast heads are granted atomically: all their branches in the same cycle, and only
        # when every branch's downstream (class, VC) is empty and unowned. One multicast per cycle
        # per router wins (round-robin); the winner overrides the arbiters of its outputs.
        mc_cand = []
        for i, inp in enumerate(inputs):
            head, want = inp["head"], inp["want"]
            all_free = Cat(~want[k] | state[o, inp["cls"], inp["vc"]][4] for k, o in enumerate(inp["outs"]))
            cand = Signal(name=f"mc_cand_{i}")
            m.d.comb += cand.eq(head.head & head.mcast & want.any() & all_free.all())
            mc_cand.append(cand)
        n_in = len(inputs)
        mc_prio = Signal(n_in, init=(1 << n_in) - 1)
        mc_win = Signal(n_in)
        m.d.comb += mc_win.eq(round_robin(Cat(mc_cand), mc_prio))
        with m.If(mc_win.any()):
            m.d.sync += mc_prio.eq(after(mc_win, n_in))

        for o in ports:
            link = getattr(self, f"out_{o}")
            cands = [(i, inp) for i, inp in enumerate(inputs) if o in inp["outs"]]
            n = len(cands)
            if n == 0:
                m.d.comb += link.valid.eq(0)
                continue
            want_o = Cat(inp["want"][inp["outs"].index(o)] for _, inp in cands)
            is_head = Cat(inp["head"].head for _, inp in cands)
            is_mc = Cat(inp["head"].mcast for _, inp in cands)
            nz = Cat(state[o, inp["cls"], inp["vc"]][2] for _, inp in cands)
            free_u = Cat(state[o, inp["cls"], inp["vc"]][3] for _, inp in cands)
            # Unicast heads need a free credited VC, body flits a credit; multicast heads go only
            # through the atomic path above.
            req = Signal(n, name=f"req_{o}")
            m.d.comb += req.eq(want_o & ((is_head & ~is_mc & free_u) | (~is_head & nz)))
            mc_here = Signal(n, name=f"mc_here_{o}")
            m.d.comb += mc_here.eq(Cat(mc_win[i] for i, _ in cands) & want_o)
            prio = Signal(n, init=(1 << n) - 1, name=f"prio_{o}")
            rr = Signal(n, name=f"rr_{o}")
            grant = Signal(n, name=f"grant_{o}")
            m.d.comb += [rr.eq(round_robin(req, prio)), grant.eq(Mux(mc_here.any(), mc_here, rr))]
            with m.If(~mc_here.any() & req.any()):
                m.d.sync += prio.eq(after(rr, n))
            for k, (_, inp) in enumerate(cands):
                inp["sent"].append((o, grant[k]))

            sel = Signal(layout, name=f"sel_{o}")
            m.d.comb += sel.eq(onehot_mux(grant, [inp["head"] for _, inp in cands]))
            m.d.comb += [link.valid.eq(grant.any()), link.flit.eq(sel)]
            if not o.startswith("l"):
                m.d.comb += link.flit.dest.eq(sel.dest & self.branch_mask(o))
            else:
                m.d.comb += link.flit.dest.eq(sel.dest & (1 << self.node))

            for c in range(CLASSES):
                for v in range(V):
                    credit, owned = state[o, c, v][:2]
                    send = Signal(name=f"send_{o}_c{c}_v{v}")
                    m.d.comb += send.eq(link.valid & (sel.cls == c) & (sel.vc == Const(v, len(sel.vc))))
                    m.d.sync += credit.eq(credit + link.credit[c * V + v] - send)
                    with m.If(send & sel.head & ~sel.tail):
                        m.d.sync += owned.eq(1)
                    with m.If(send & sel.tail):
                        m.d.sync += owned.eq(0)

            count = getattr(self, f"count_{o}")
            with m.If(link.valid):
                m.d.sync += count.eq(count + 1)

        # A flit leaves its FIFO once every branch of its route has taken it.
        for inp in inputs:
            fifo, want, done = inp["fifo"], inp["want"], inp["done"]
            sent = Cat(dict(inp["sent"]).get(o, Const(0, 1)) for o in inp["outs"])
            remaining = want & ~sent
            m.d.comb += fifo.r_en.eq(fifo.r_rdy & ~remaining.any())
            with m.If(fifo.r_rdy):
                with m.If(remaining.any()):
                    m.d.sync += done.eq(done | sent)
                with m.Else():
                    m.d.sync += done.eq(0)
        return m
