"""``Router``: one mesh router, XY routing, credit flow control, in-network multicast fork."""

from __future__ import annotations

from typing import NamedTuple

from amaranth.hdl import Assert, Assume, Cat, Const, Module, Mux, Signal
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


class _VcState(NamedTuple):
    """Signals of one (output, class, VC) of a router (names ``<field>_<output>_c<class>_v<vc>``)."""

    credit: Signal   # free slots in the downstream FIFO (register, reset ``depth``)
    owned: Signal    # held by a packet between its head and its tail (register)
    nz: Signal       # a credit is left: a body flit may go
    free_u: Signal   # unowned and a credit left: a unicast head may go
    free_m: Signal   # unowned and the downstream FIFO empty: a multicast head may go (cut-through)


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

    ``formal=True`` adds the credit properties (:meth:`_credit_properties`) for the formal proofs
    (``tb/formal``, docs/verification.md); the logic is otherwise the same.
    """

    def __init__(self, cfg, x: int, y: int, formal: bool = False):
        self.formal = formal
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
        m = Module()
        inputs = self._input_buffers(m)
        self._input_routes(m, inputs)
        state = self._output_vc_state(m)
        mc_win = self._multicast_arbiter(m, inputs, state)
        for o in self.ports:
            self._output_port(m, o, inputs, state, mc_win)
        self._input_pops(m, inputs)
        return m

    def _input_buffers(self, m: Module) -> list[dict]:
        """One FIFO of ``depth`` flits per (input port, class, VC), written from the input link.

        Returns one dict per FIFO (``port``, ``cls``, ``vc``, ``fifo`` and ``head``, a view of the
        FIFO's head flit), in port, class, VC order. A flit is written at the clock edge it
        arrives; the credit for a slot goes back upstream (combinationally) in the cycle the flit
        is popped. No back-pressure here: the upstream credits guarantee a free slot.
        """
        layout = flit_layout(self.cfg)
        V, D = self.cfg.vcs, self.cfg.depth
        inputs = []   # dicts: port, cls, vc, fifo, head
        for p in self.ports:
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
                    if self.formal:     # the upstream keeps to its credits and to the VCs there are
                        m.d.comb += [Assume(~fifo.w_en | fifo.w_rdy),
                                     Assume(~link.valid | (link.flit.vc < V))]
                    head = data.View(layout, fifo.r_data)
                    inputs.append({"port": p, "cls": c, "vc": v, "fifo": fifo, "head": head})
        return inputs

    def _route_of(self, head, out: str):
        """Whether the flit ``head`` (its destination bitmask and port) has a branch through ``out``."""
        if out.startswith("l"):
            return head.dest[self.node] & (head.port == Const(int(out[1:]), len(head.port)))
        return (head.dest & self.branch_mask(out)).any()

    def _input_routes(self, m: Module, inputs: list[dict]):
        """Each FIFO head's route and the outputs it still wants, added to its ``inputs`` dict.

        Adds ``outs`` (the output ports an XY turn from this input can reach), ``want`` (one bit
        per ``outs``: the branches the head flit still has to be sent to, zero when the FIFO is
        empty), ``done`` (branches already taken, a register updated by :meth:`_input_pops`)
        and an empty ``sent`` list for the outputs' grants. A head flit's route is combinational
        (same cycle); it is registered in ``route_<i>`` while the head is at the FIFO output and
        reused by the body flits of the packet.
        """
        for i, inp in enumerate(inputs):
            head, fifo = inp["head"], inp["fifo"]
            outs = [o for o in self.ports if allowed_turn(inp["port"], o)]
            route_now = Signal(len(outs), name=f"route_now_{i}")
            m.d.comb += route_now.eq(Cat(self._route_of(head, o) for o in outs))
            route_held = Signal(len(outs), name=f"route_{i}")   # of the packet in progress
            done = Signal(len(outs), name=f"done_{i}")          # branches the head flit already took
            with m.If(fifo.r_rdy & head.head):
                m.d.sync += route_held.eq(route_now)
            want = Signal(len(outs), name=f"want_{i}")
            m.d.comb += want.eq(Mux(fifo.r_rdy, Mux(head.head, route_now, route_held) & ~done, 0))
            inp.update(outs=outs, want=want, done=done, sent=[])

    def _output_vc_state(self, m: Module) -> dict[tuple[str, int, int], _VcState]:
        """Per output and (class, VC): credits, owner, and the three eligibility conditions.

        Returns ``{(output, class, vc): _VcState}``. ``credit`` and ``owned`` are registers
        updated by :meth:`_output_vc_update`; ``nz``, ``free_u`` and ``free_m`` are combinational
        from them (same cycle).
        """
        D = self.cfg.depth
        state = {}
        for o in self.ports:
            for c in range(CLASSES):
                for v in range(self.cfg.vcs):
                    credit = Signal(range(D + 1), init=D, name=f"credit_{o}_c{c}_v{v}")
                    owned = Signal(name=f"owned_{o}_c{c}_v{v}")
                    nz, free_u, free_m = (Signal(name=f"{k}_{o}_c{c}_v{v}")
                                          for k in ("nz", "free_u", "free_m"))
                    m.d.comb += [
                        nz.eq(credit.any()),
                        free_u.eq(~owned & credit.any()),
                        free_m.eq(~owned & (credit == D)),     # empty downstream: cut-through
                    ]
                    state[o, c, v] = _VcState(credit, owned, nz, free_u, free_m)
        return state

    def _multicast_arbiter(self, m: Module, inputs: list[dict], state: dict) -> Signal:
        """Pick at most one multicast head per cycle to send on all its branches at once.

        Multicast heads are granted atomically: all their branches in the same cycle, and only
        when every branch's downstream (class, VC) is empty and unowned (``free_m``). One
        multicast per cycle per router wins (round-robin over the input FIFOs, priority advanced
        at the edge after a win); the winner overrides the arbiters of its outputs. Returns the
        one-hot winner over ``inputs``, combinational (same cycle as the request). A candidate
        that is blocked holds no output: it simply requests again the next cycle.
        """
        mc_cand = []
        for i, inp in enumerate(inputs):
            head, want = inp["head"], inp["want"]
            vcs = [state[o, inp["cls"], inp["vc"]] for o in inp["outs"]]
            all_free = Cat(~want[k] | vc.free_m for k, vc in enumerate(vcs))
            cand = Signal(name=f"mc_cand_{i}")
            m.d.comb += cand.eq(head.head & head.mcast & want.any() & all_free.all())
            mc_cand.append(cand)
        n_in = len(inputs)
        mc_prio = Signal(n_in, init=(1 << n_in) - 1)
        mc_win = Signal(n_in)
        m.d.comb += mc_win.eq(round_robin(Cat(mc_cand), mc_prio))
        with m.If(mc_win.any()):
            m.d.sync += mc_prio.eq(after(mc_win, n_in))
        return mc_win

    def _output_port(self, m: Module, o: str, inputs: list[dict], state: dict, mc_win: Signal):
        """Output ``o``: grant one input FIFO, drive the link with its head flit, count the flit.

        The flit goes out in the cycle it is granted (combinational from the FIFO head), with its
        destination bitmask cut down to the branch behind ``o``. Each grant is recorded in the
        input's ``sent`` list for :meth:`_input_pops`. An output no input can turn into is tied
        off (``valid`` 0). ``count_o`` counts the flits sent, registered (one cycle later).
        """
        link = getattr(self, f"out_{o}")
        cands = [(i, inp) for i, inp in enumerate(inputs) if o in inp["outs"]]
        if not cands:
            m.d.comb += link.valid.eq(0)
            return
        grant = self._output_grant(m, o, cands, state, mc_win)
        for k, (_, inp) in enumerate(cands):
            inp["sent"].append((o, grant[k]))

        sel = Signal(flit_layout(self.cfg), name=f"sel_{o}")
        m.d.comb += sel.eq(onehot_mux(grant, [inp["head"] for _, inp in cands]))
        m.d.comb += [link.valid.eq(grant.any()), link.flit.eq(sel)]
        if not o.startswith("l"):
            m.d.comb += link.flit.dest.eq(sel.dest & self.branch_mask(o))
        else:
            m.d.comb += link.flit.dest.eq(sel.dest & (1 << self.node))

        self._output_vc_update(m, o, link, sel, state)

        count = getattr(self, f"count_{o}")
        with m.If(link.valid):
            m.d.sync += count.eq(count + 1)

    def _output_grant(self, m: Module, o: str, cands: list[tuple[int, dict]], state: dict,
                      mc_win: Signal) -> Signal:
        """One-hot grant of output ``o`` over ``cands`` (the ``(index, input)`` that can reach it).

        Unicast heads need a free credited VC (``free_u``), body flits a credit (``nz``);
        multicast heads go only through the atomic path of :meth:`_multicast_arbiter`, whose
        winner overrides the round-robin here. Combinational (same cycle); the round-robin
        priority advances at the edge after a unicast/body grant. A request without a credit is
        back-pressured simply by not being eligible.
        """
        n = len(cands)
        want_o = Cat(inp["want"][inp["outs"].index(o)] for _, inp in cands)
        is_head = Cat(inp["head"].head for _, inp in cands)
        is_mc = Cat(inp["head"].mcast for _, inp in cands)
        nz = Cat(state[o, inp["cls"], inp["vc"]].nz for _, inp in cands)
        free_u = Cat(state[o, inp["cls"], inp["vc"]].free_u for _, inp in cands)
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
        return grant

    def _output_vc_update(self, m: Module, o: str, link, sel, state: dict):
        """Credit and owner registers of every (class, VC) of output ``o``, at each clock edge.

        A credit is spent by a flit sent on that (class, VC) and returned by the downstream
        router's credit pulse; a head that is not also a tail takes ownership, its tail releases
        it. Both take effect at the edge after the send (the eligibility in :meth:`_output_vc_state`
        sees them the next cycle).
        """
        V = self.cfg.vcs
        for c in range(CLASSES):
            for v in range(V):
                vc = state[o, c, v]
                send = Signal(name=f"send_{o}_c{c}_v{v}")
                m.d.comb += send.eq(link.valid & (sel.cls == c) & (sel.vc == Const(v, len(sel.vc))))
                m.d.sync += vc.credit.eq(vc.credit + link.credit[c * V + v] - send)
                if self.formal:
                    self._credit_properties(m, vc.credit, send, link.credit[c * V + v], f"{o}_c{c}_v{v}")
                with m.If(send & sel.head & ~sel.tail):
                    m.d.sync += vc.owned.eq(1)
                with m.If(send & sel.tail):
                    m.d.sync += vc.owned.eq(0)

    def _credit_properties(self, m: Module, credit, send, returned, name: str):
        """Formal properties of one output (class, VC): ``held`` counts the flits sent and not yet
        returned as credits, i.e. the downstream FIFO's occupancy. Assumed: the downstream returns
        a credit only for a flit it holds. Asserted: ``credit + held == depth`` (so the credit
        never exceeds the depth and never wraps) and no flit is sent into a full FIFO."""
        D = self.cfg.depth
        held = Signal(range(D + 2), name=f"held_{name}")
        m.d.sync += held.eq(held + send - returned)
        m.d.comb += [
            Assume(~returned | (held != 0)),
            Assert(credit + held == D),
            Assert(~send | (held < D)),
        ]

    def _input_pops(self, m: Module, inputs: list[dict]):
        """A flit leaves its FIFO once every branch of its route has taken it.

        Pops in the cycle the last outstanding branch is granted (combinational ``r_en``); until
        then the branches granted so far are remembered in ``done`` (registered) so that they are
        not sent twice. An empty route pops at once (the flit is discarded).
        """
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
