"""N:1 AXI4 arbiter: several AXI4 masters (L2 slices) share one AXI4 memory port."""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.bus.axi import AXI4Signature, axi4_fields

__all__ = ["AxiArbiter", "sel_bits"]


def sel_bits(n: int) -> int:
    """Source-index bits the arbiter prepends to IDs: ceil(log2(n)) (0 for n = 1)."""
    return (n - 1).bit_length()


def _payload(fields, ch: str) -> list[tuple[str, int]]:
    """(name, width) of the payload fields of channel ``ch`` ("ar", "aw", "w", "r", "b")."""
    return [(n, w) for n, w, _ in fields
            if n.startswith(ch) and n not in (f"{ch}valid", f"{ch}ready")]


class AxiArbiter(wiring.Component):
    """``n`` AXI4 slave ports ``s_axi[i]`` arbitrated onto one AXI4 master port ``m_axi``.

    Ports (:class:`AXI4Signature`; exported as ``s_axi{i}_*`` and ``m_axi_*``): for each upstream
    master ``i`` a slave port ``s_axi[i]`` (IDs ``id_bits`` wide) and one master port ``m_axi`` whose
    IDs are ``id_bits + ceil(log2(n))`` wide: the arbiter sends ``{i, id}`` (source index in the
    high bits) and routes R and B beats back by those high bits (the low bits become the upstream
    RID/BID). With ``n = 1`` the IDs keep their width and the block is a register slice with the
    same latencies as below. All other AXI fields pass unchanged.

    Read address (AR) and write address (AW), each independently: every slave port has a one-entry
    skid register, so ``s_axi{i}_arready``/``awready`` are registered (high unless that port's
    skid register is full) and never depend on any valid. A round-robin arbiter (priority starts
    after the last granted port) picks one request per cycle into an output register that drives
    ``m_axi_ar*``/``aw*``; it reloads when empty or when ``m_axi_arready``/``awready`` is high.
    Latency: a request presented in cycle t is on ``m_axi`` in cycle t+1 when the output register
    is free. Throughput: one AR and one AW per cycle in total; a lone port keeps one per cycle.
    A port that loses arbitration is served within ``n - 1`` further grants.

    Write data (W): each AW grant pushes its source index into an ordering FIFO of
    ``w_fifo_depth`` entries (AW grants stall while it is full, so AW may run at most that many
    bursts ahead of W). Only the FIFO's head source gets ``wready``; its beats pass through a
    register stage to ``m_axi_w*`` (latency 1, one beat per cycle) and WLAST pops the FIFO, so W
    bursts leave in AW order, never interleaved, and never before their AW was granted (the first
    W beat reaches ``m_axi`` at the earliest one cycle after its AW). ``s_axi{i}_wready`` depends
    on ``m_axi_wready`` and the FIFO head, never on ``s_axi{i}_wvalid``.

    Responses (R, B): one register stage each (latency 1, one beat per cycle). A beat is offered to
    the port named by the high ID bits only; ``m_axi_rready``/``bready`` = stage empty or that
    port's ready (combinational ready path, independent of ``m_axi_rvalid``/``bvalid``). Beats of
    different IDs may interleave freely; ordering per port is the memory's. A response whose
    source index is >= n (a broken slave) is dropped rather than blocking the port.

    Ordering: per port, AR order and AW order are preserved onto ``m_axi``; requests of different
    ports are interleaved by the arbitration. No ordering between reads and writes is added.
    """

    def __init__(self, n: int, *, addr_bits: int, data_bits: int, id_bits: int, w_fifo_depth: int = 4):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if not isinstance(addr_bits, int) or addr_bits < 1:
            raise ValueError(f"addr_bits must be an integer >= 1, got {addr_bits!r}")
        if not isinstance(data_bits, int) or data_bits < 8 or data_bits & (data_bits - 1) or data_bits > 1024:
            raise ValueError(f"data_bits must be a power of two in 8..1024, got {data_bits!r}")
        if not isinstance(id_bits, int) or id_bits < 1:
            raise ValueError(f"id_bits must be an integer >= 1, got {id_bits!r}")
        if not isinstance(w_fifo_depth, int) or w_fifo_depth < 1:
            raise ValueError(f"w_fifo_depth must be an integer >= 1, got {w_fifo_depth!r}")
        self.n = n
        self.addr_bits, self.data_bits, self.id_bits = addr_bits, data_bits, id_bits
        self.w_fifo_depth = w_fifo_depth
        self.sel_bits = sel_bits(n)
        self.m_id_bits = id_bits + self.sel_bits
        self.s_fields = axi4_fields(addr_bits, data_bits, id_bits)
        self.m_fields = axi4_fields(addr_bits, data_bits, self.m_id_bits)
        super().__init__({
            "s_axi": In(AXI4Signature(addr_bits=addr_bits, data_bits=data_bits, id_bits=id_bits)).array(n),
            "m_axi": Out(AXI4Signature(addr_bits=addr_bits, data_bits=data_bits, id_bits=self.m_id_bits)),
        })

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _round_robin(m, req: list, name: str):
        """Comb grant index among ``req`` starting at a pointer; returns (any, idx, ptr)."""
        n = len(req)
        if n == 1:
            return req[0], Const(0, 1), None
        ptr = Signal(range(n), name=f"{name}_ptr")
        idx = Signal(range(n), name=f"{name}_grant")
        with m.Switch(ptr):
            for p in range(n):
                with m.Case(p):
                    for k in reversed(range(n)):  # the last matching If wins: k = 0 is highest priority
                        j = (p + k) % n
                        with m.If(req[j]):
                            m.d.comb += idx.eq(j)
        return Cat(*req).any(), idx, ptr

    def _address_channel(self, m, ch: str, srcs, dst, gate=None):
        """Skid register per port + round-robin + output register for AR or AW.

        Returns (grant, idx): ``grant`` is high in a cycle where port ``idx`` is granted.
        """
        n = self.n
        fields = _payload(self.s_fields, ch)
        idn = f"{ch}id"
        valid, ready = f"{ch}valid", f"{ch}ready"
        req, pay, skids = [], [], []
        for i, s in enumerate(srcs):
            sk_valid = Signal(name=f"s{i}_{ch}_skid_valid")
            sk = {f: Signal(w, name=f"s{i}_{ch}_skid_{f}") for f, w in fields}
            m.d.comb += getattr(s, ready).eq(~sk_valid)
            req.append(sk_valid | getattr(s, valid))
            pay.append({f: Mux(sk_valid, sk[f], getattr(s, f)) for f, _ in fields})
            skids.append((sk_valid, sk))
        any_req, idx, ptr = self._round_robin(m, req, ch)

        out_valid = Signal(name=f"{ch}_out_valid")
        out = {f: Signal(w, name=f"{ch}_out_{f}") for f, w in fields}
        out_src = Signal(self.sel_bits, name=f"{ch}_out_src") if n > 1 else Const(0, 0)
        for f, _ in fields:
            if f != idn:
                m.d.comb += getattr(dst, f).eq(out[f])
        m.d.comb += [getattr(dst, idn).eq(Cat(out[idn], out_src)), getattr(dst, valid).eq(out_valid)]

        load = ~out_valid | getattr(dst, ready)
        if gate is not None:
            load = load & gate
        grant = Signal(name=f"{ch}_grant_fire")
        m.d.comb += grant.eq(any_req & load)
        with m.If(grant):
            m.d.sync += out_valid.eq(1)
            if n > 1:
                m.d.sync += [out_src.eq(idx), ptr.eq(Mux(idx == n - 1, 0, idx + 1))]
            with m.Switch(idx):
                for i in range(n):
                    with m.Case(i):
                        m.d.sync += [out[f].eq(pay[i][f]) for f, _ in fields]
        with m.Elif(getattr(dst, ready)):
            m.d.sync += out_valid.eq(0)

        # skid registers: capture an offered request that is not consumed this cycle
        for i, (s, (sk_valid, sk)) in enumerate(zip(srcs, skids, strict=True)):
            consumed = grant & (idx == i)
            with m.If(sk_valid):
                with m.If(consumed):
                    m.d.sync += sk_valid.eq(0)
            with m.Elif(getattr(s, valid) & ~consumed):
                m.d.sync += sk_valid.eq(1)
                m.d.sync += [sk[f].eq(getattr(s, f)) for f, _ in fields]
        return grant, idx

    def _response_channel(self, m, ch: str, srcs, dst):
        """Register stage on R or B, routed to the port named by the ID's high bits."""
        n, ib = self.n, self.id_bits
        fields = _payload(self.m_fields, ch)
        idn = f"{ch}id"
        valid, ready = f"{ch}valid", f"{ch}ready"
        st_valid = Signal(name=f"{ch}_stage_valid")
        st = {f: Signal(w, name=f"{ch}_stage_{f}") for f, w in fields}
        sel = st[idn][ib:]
        readies = Array([getattr(s, ready) for s in srcs] + [Const(1)] * ((1 << self.sel_bits) - n))
        out_ready = Signal(name=f"{ch}_stage_out_ready")
        m.d.comb += out_ready.eq(readies[sel])
        for i, s in enumerate(srcs):
            m.d.comb += getattr(s, valid).eq(st_valid & (sel == i))
            for f, _ in fields:
                m.d.comb += getattr(s, f).eq(st[f][:ib] if f == idn else st[f])
        in_ready = ~st_valid | out_ready
        m.d.comb += getattr(dst, ready).eq(in_ready)
        with m.If(getattr(dst, valid) & in_ready):
            m.d.sync += st_valid.eq(1)
            m.d.sync += [st[f].eq(getattr(dst, f)) for f, _ in fields]
        with m.Elif(out_ready):
            m.d.sync += st_valid.eq(0)

    def _w_stage(self, m, srcs, dst, head, head_ok):
        """W register stage fed by port ``head`` while ``head_ok``; returns the WLAST-taken pulse."""
        fields = _payload(self.s_fields, "w")
        out_valid = Signal(name="w_out_valid")
        out = {f: Signal(w, name=f"w_out_{f}") for f, w in fields}
        m.d.comb += [getattr(dst, f).eq(out[f]) for f, _ in fields]
        m.d.comb += dst.wvalid.eq(out_valid)
        load = ~out_valid | dst.wready

        sel_valid = Signal(name="w_sel_valid")
        sel = {f: Signal(w, name=f"w_sel_{f}") for f, w in fields}
        with m.Switch(head):
            for i, s in enumerate(srcs):
                with m.Case(i):
                    m.d.comb += sel_valid.eq(s.wvalid)
                    m.d.comb += [sel[f].eq(getattr(s, f)) for f, _ in fields]
        for i, s in enumerate(srcs):
            m.d.comb += s.wready.eq(load & head_ok & (head == i))
        take = Signal(name="w_take")
        m.d.comb += take.eq(load & head_ok & sel_valid)
        with m.If(take):
            m.d.sync += out_valid.eq(1)
            m.d.sync += [out[f].eq(sel[f]) for f, _ in fields]
        with m.Elif(dst.wready):
            m.d.sync += out_valid.eq(0)
        return take & sel["wlast"]

    def _write_data(self, m, srcs, dst, push, push_idx):
        """W ordering FIFO of granted sources and the W register stage; returns FIFO not full."""
        if self.n == 1:                 # one source: W needs no ordering, just the register stage
            self._w_stage(m, srcs, dst, Const(0, 1), Const(1, 1))
            return Const(1, 1)
        D = self.w_fifo_depth
        entries = Array([Signal(self.sel_bits, name=f"wfifo_{k}") for k in range(D)])
        wp = Signal(range(D), name="wfifo_wp")
        rp = Signal(range(D), name="wfifo_rp")
        count = Signal(range(D + 1), name="wfifo_count")
        head = Signal(self.sel_bits, name="wfifo_head")
        m.d.comb += head.eq(entries[rp])
        pop = self._w_stage(m, srcs, dst, head, count != 0)
        with m.If(push):
            m.d.sync += [entries[wp].eq(push_idx), wp.eq(Mux(wp == D - 1, 0, wp + 1))]
        with m.If(pop):
            m.d.sync += rp.eq(Mux(rp == D - 1, 0, rp + 1))
        with m.If(push & ~pop):
            m.d.sync += count.eq(count + 1)
        with m.Elif(pop & ~push):
            m.d.sync += count.eq(count - 1)
        return count != D

    # ------------------------------------------------------------------ elaborate
    def elaborate(self, platform):
        m = Module()
        dst = self.m_axi
        srcs = list(self.s_axi)
        self._address_channel(m, "ar", srcs, dst)
        aw_ok = Signal(name="aw_fifo_not_full")
        aw_grant, aw_idx = self._address_channel(m, "aw", srcs, dst, gate=aw_ok)
        m.d.comb += aw_ok.eq(self._write_data(m, srcs, dst, aw_grant, aw_idx))
        self._response_channel(m, "r", srcs, dst)
        self._response_channel(m, "b", srcs, dst)
        return m
