"""Operand fetch: maps MATMUL descriptors onto the tensor core's streams (docs/isa.md)."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from tessera.rtl.config import FabricConfig
from tessera.rtl.tensor.interface import a_layout, b_layout, c_layout, d_layout, op_layout
from tessera.rtl.tile.accumulator import acc_core_read_signature, acc_core_write_layout
from tessera.rtl.tile.isa import matmul_desc_layout, scratchpad_read_signature

__all__ = ["OperandFetch"]

FIFO_DEPTH = 4      # operand / C words in flight or buffered per stream


class _BlockWalk:
    """The core's block walk: per group of T blocks, ``o`` 0..``outer_last``, slot ``t`` 0..T-1.

    State: ``m``, ``n`` (the MATMUL's sizes), ``gm`` / ``gn`` (first block of the group),
    ``mrow`` / ``ncol`` (current block), ``t``, ``o``, ``active``; :meth:`start` loads a MATMUL,
    :meth:`advance` moves to the next position (to be called under an ``m.If``)."""

    def __init__(self, m, name: str, outer_last, tc):
        self.R, self.C, self.T = tc.rows, tc.cols, tc.interleave
        self.outer_last = outer_last
        self.m = Signal(16, name=f"{name}_m")
        self.n = Signal(16, name=f"{name}_n")
        self.gm = Signal(17, name=f"{name}_gm")
        self.gn = Signal(17, name=f"{name}_gn")
        self.mrow = Signal(17, name=f"{name}_mrow")
        self.ncol = Signal(17, name=f"{name}_ncol")
        self.t = Signal(range(self.T), name=f"{name}_t")
        self.o = Signal(16, name=f"{name}_o")
        self.active = Signal(name=f"{name}_active")
        wrap = Signal(name=f"{name}_wrap")
        self.next_mrow = Signal(17, name=f"{name}_next_mrow")
        self.next_ncol = Signal(17, name=f"{name}_next_ncol")
        self.next_exists = Signal(name=f"{name}_next_exists")
        m.d.comb += [
            wrap.eq(self.ncol + self.C >= self.n),
            self.next_mrow.eq(Mux(wrap, self.mrow + self.R, self.mrow)),
            self.next_ncol.eq(Mux(wrap, 0, self.ncol + self.C)),
            self.next_exists.eq(self.next_mrow < self.m),
        ]

    def start(self, mm, nn) -> list:
        """Statements that load an ``mm`` x ``nn`` MATMUL and go to its first block."""
        return [self.m.eq(mm), self.n.eq(nn), self.gm.eq(0), self.gn.eq(0), self.mrow.eq(0),
                self.ncol.eq(0), self.t.eq(0), self.o.eq(0), self.active.eq(1)]

    def advance(self, m, on_outer, on_group):
        """Step to the next position; ``on_outer`` / ``on_group`` are added to ``m.d.sync`` when
        the step starts the next ``o`` of the group / the next group."""
        nm, nn, nexists = self.next_mrow, self.next_ncol, self.next_exists
        with m.If((self.t != self.T - 1) & nexists):
            m.d.sync += [self.mrow.eq(nm), self.ncol.eq(nn), self.t.eq(self.t + 1)]
        with m.Elif(self.o != self.outer_last):
            m.d.sync += [self.o.eq(self.o + 1), self.mrow.eq(self.gm), self.ncol.eq(self.gn),
                         self.t.eq(0)]
            m.d.sync += on_outer
        with m.Else():
            m.d.sync += [self.o.eq(0), self.t.eq(0)]
            with m.If(nexists):
                m.d.sync += [self.gm.eq(nm), self.gn.eq(nn), self.mrow.eq(nm), self.ncol.eq(nn)]
                m.d.sync += on_group
            with m.Else():
                m.d.sync += self.active.eq(0)


@dataclass(frozen=True)
class _Queues:
    """The descriptor queues and MATMUL bookkeeping shared by the sections of :class:`OperandFetch`."""

    take: Value                   # a descriptor is taken this cycle
    gen_active: Signal            # driven by the step generator: it is walking a MATMUL
    done_count: Signal            # MATMULs whose last D row is written, mod 4
    cq: SyncFIFO                  # C reader descriptors (accumulate mode)
    cq_layout: data.StructLayout
    dq: SyncFIFO                  # D writer descriptors
    dq_layout: data.StructLayout


class OperandFetch(wiring.Component):
    """Between the sequencer's MATMUL stream and the tensor core.

    Ports:

    * ``desc`` (in, :func:`tessera.rtl.tile.isa.matmul_desc_layout`): one MATMUL (already checked by the
      sequencer: sizes 1..max, aligned addresses, dtype 0/1).
    * ``op``, ``a``, ``b``, ``c`` (out) and ``d`` (in): the tensor core's streams.
    * ``rd_a``, ``rd_b``: scratchpad read ports (this unit requests); A^T rows and B rows.
    * ``acc_wr`` / ``acc_rd``: the accumulator's core row ports (D rows out, C rows in).
    * ``done``: one-cycle pulse, the cycle after the ``d.last`` row of a MATMUL was written.
    * ``busy``: a MATMUL is accepted and its last D row not yet written.

    Operation: a descriptor is accepted when the step generator of the previous one has issued
    its last request (and the small descriptor queues have room), i.e. while the core still
    computes the previous MATMUL. The step generator walks the core's step order (per group of
    T blocks: k, then slot) and issues one A and one B scratchpad read per step; the words go
    through ``FIFO_DEPTH``-entry FIFOs (credit-counted, so the scratchpad's responses are always
    taken) to ``a`` / ``b``. In accumulate mode a second generator walks the chain order and
    reads C rows into a FIFO feeding ``c``; it starts a MATMUL only after every earlier MATMUL's
    last D row is written (so an accumulate chain on one D sees the previous results). D rows
    are registered once (address = acc_addr + row * acc_pitch + 4 * col) and written; lanes with
    col + j >= n are not written.

    Latency: descriptor to first operand request 1 cycle; scratchpad response to ``a``/``b``
    valid 1 cycle. Throughput: one step per cycle when A and B come from different scratchpad
    banks (half that when they share a bank); one C row per cycle. Back-pressure: ``d`` is
    taken whenever the D register is empty or being written (``acc_wr`` is always ready in the
    tile, so ``d.ready`` stays high); the operand streams never wait for ``d``.
    """

    def __init__(self, cfg: FabricConfig | None = None):
        cfg = cfg or FabricConfig()
        if not isinstance(cfg, FabricConfig):
            raise ValueError("OperandFetch cfg must be a FabricConfig")
        self.cfg = cfg
        t = cfg.tensor
        super().__init__({
            "desc": In(stream.Signature(matmul_desc_layout(cfg))),
            "op": Out(stream.Signature(op_layout(t))),
            "a": Out(stream.Signature(a_layout(t))),
            "b": Out(stream.Signature(b_layout(t))),
            "c": Out(stream.Signature(c_layout(t))),
            "d": In(stream.Signature(d_layout(t))),
            "rd_a": Out(scratchpad_read_signature(cfg.tile)),
            "rd_b": Out(scratchpad_read_signature(cfg.tile)),
            "acc_wr": Out(stream.Signature(acc_core_write_layout(cfg))),
            "acc_rd": Out(acc_core_read_signature(cfg)),
            "done": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        q = self._desc_queues(m)
        self._step_generator(m, q)
        self._c_reader(m, q)
        wr = self._d_writer(m, q)
        m.d.comb += self.busy.eq(q.gen_active | q.dq.r_rdy | wr.valid | self.done)
        return m

    # ---- descriptor queues: core op, C reader, D writer ------------------------------
    def _desc_queues(self, m) -> _Queues:
        """Descriptor queues: a taken ``desc`` is split into an entry of ``opq`` (the core's op,
        offered on ``op``), of ``cq`` (C reader; accumulate mode only, tagged with a 2-bit MATMUL
        sequence id) and of ``dq`` (D writer), 2 entries each.

        Latency: a taken descriptor is offered on ``op`` the next cycle. Back-pressure:
        ``desc.ready`` is high while the step generator is idle and all three queues have room."""
        tc = self.cfg.tensor
        desc = self.desc.payload
        opl = op_layout(tc)
        cq_layout = data.StructLayout({"id": 2, "m": 16, "n": 16, "acc_addr": 24, "acc_pitch": 19})
        dq_layout = data.StructLayout({"n": 16, "acc_addr": 24, "acc_pitch": 19})
        m.submodules.opq = opq = SyncFIFO(width=opl.size, depth=2)
        m.submodules.cq = cq = SyncFIFO(width=cq_layout.size, depth=2)
        m.submodules.dq = dq = SyncFIFO(width=dq_layout.size, depth=2)

        gen_active = Signal()
        next_id = Signal(2)
        done_count = Signal(2)
        m.d.comb += self.desc.ready.eq(~gen_active & opq.w_rdy & cq.w_rdy & dq.w_rdy)
        take = self.desc.valid & self.desc.ready

        op_w = Signal(opl)
        cq_w = Signal(cq_layout)
        dq_w = Signal(dq_layout)
        m.d.comb += [
            op_w.m.eq(desc.m), op_w.n.eq(desc.n), op_w.k.eq(desc.k),
            op_w.dtype.eq(desc.dtype.as_value()), op_w.accumulate.eq(desc.accumulate),
            opq.w_data.eq(op_w), opq.w_en.eq(take),
            cq_w.id.eq(next_id), cq_w.m.eq(desc.m), cq_w.n.eq(desc.n),
            cq_w.acc_addr.eq(desc.acc_addr), cq_w.acc_pitch.eq(desc.acc_pitch),
            cq.w_data.eq(cq_w), cq.w_en.eq(take & desc.accumulate),
            dq_w.n.eq(desc.n), dq_w.acc_addr.eq(desc.acc_addr), dq_w.acc_pitch.eq(desc.acc_pitch),
            dq.w_data.eq(dq_w), dq.w_en.eq(take),
            self.op.payload.eq(opq.r_data), self.op.valid.eq(opq.r_rdy), opq.r_en.eq(self.op.ready),
        ]
        with m.If(take):
            m.d.sync += next_id.eq(next_id + 1)
        return _Queues(take=take, gen_active=gen_active, done_count=done_count, cq=cq, cq_layout=cq_layout,
                       dq=dq, dq_layout=dq_layout)

    # ---- A / B step generator --------------------------------------------------------
    def _step_generator(self, m, q: _Queues):
        """A / B step generator: from a taken descriptor, walks the core's step order (per group of
        T blocks: k, then slot) and per step requests one A word (A^T row k, at the block's row)
        and one B word (B row k, at the block's column) through :meth:`_operand_path`; the step
        advances once both requests have been issued (in the same cycle or not). Drives
        ``q.gen_active`` (low again once the last step's requests are issued).

        Latency: descriptor to first operand requests 1 cycle; one step per cycle when both read
        ports accept. Back-pressure: a request waits while its port is not
        ready or its operand FIFO has no room."""
        tc = self.cfg.tensor
        R, C = tc.rows, tc.cols
        desc = self.desc.payload
        k_last = Signal(16, name="step_k_last")
        int8 = Signal()
        a_addr = Signal(24)
        b_addr = Signal(24)
        a_pitch = Signal(19)
        b_pitch = Signal(19)
        a_row = Signal(24)      # a_addr + k * a_pitch
        b_row = Signal(24)
        g = _BlockWalk(m, "ab", k_last, tc)
        m.d.comb += q.gen_active.eq(g.active)
        with m.If(q.take):
            m.d.sync += g.start(desc.m, desc.n)
            m.d.sync += [
                k_last.eq(desc.k - 1), int8.eq(desc.dtype.as_value() == 1),
                a_addr.eq(desc.a_addr), b_addr.eq(desc.b_addr), a_row.eq(desc.a_addr),
                b_row.eq(desc.b_addr), a_pitch.eq(desc.a_pitch), b_pitch.eq(desc.b_pitch),
            ]

        a_sent, a_fire = self._operand_path(m, "a", self.rd_a, self.a, R, a_row, g.mrow, g.active, int8)
        b_sent, b_fire = self._operand_path(m, "b", self.rd_b, self.b, C, b_row, g.ncol, g.active, int8)
        a_ok = a_sent | a_fire
        b_ok = b_sent | b_fire
        with m.If(g.active):
            with m.If(a_ok & b_ok):
                m.d.sync += [a_sent.eq(0), b_sent.eq(0)]
                g.advance(
                    m,
                    [a_row.eq(a_row + a_pitch), b_row.eq(b_row + b_pitch)],
                    [a_row.eq(a_addr), b_row.eq(b_addr)],
                )
            with m.Else():
                m.d.sync += [a_sent.eq(a_ok), b_sent.eq(b_ok)]

    def _operand_path(self, m, name, port, out, lanes, row_addr, index, active, int8):
        """Request words of one operand, buffer them in a FIFO, format lanes for the core.

        While ``active``, requests the word holding element ``index`` of the row at byte
        ``row_addr`` on ``port`` (once per step; returns ``sent``, "this step's request was already
        issued", which the caller updates, and ``fire``, "it is issued this cycle"). The response
        is shifted to the element and, for int8, widened to 16-bit lanes on its way into a
        ``FIFO_DEPTH``-entry FIFO that feeds ``out``.

        Latency: response to ``out`` valid 1 cycle. Back-pressure: credit
        counted (FIFO level + the request in flight, answered the next cycle), so the response is
        always taken (``resp.ready`` is high); ``out`` waits only for its FIFO."""
        wlog = ceil_log2(self.cfg.tile.word_bytes)
        fifo = SyncFIFO(width=16 * lanes, depth=FIFO_DEPTH)
        m.submodules[f"{name}_fifo"] = fifo
        inflight = Signal(name=f"{name}_inflight")
        space = Signal(name=f"{name}_space")
        sent = Signal(name=f"{name}_sent")            # this step's request already issued
        byte_addr = Signal(24, name=f"{name}_byte_addr")
        m.d.comb += [
            byte_addr.eq(row_addr + Mux(int8, index, index << 1)),
            space.eq(fifo.level + inflight < FIFO_DEPTH),
            port.req.valid.eq(active & ~sent & space),
            port.req.payload.eq(byte_addr[wlog:]),
            port.resp.ready.eq(1),
        ]
        fire = port.req.valid & port.req.ready
        m.d.sync += inflight.eq(fire)
        off = Signal(max(1, wlog), name=f"{name}_off")   # byte offset of the step in the word
        off_int8 = Signal(name=f"{name}_off_int8")
        with m.If(fire):
            m.d.sync += [off.eq(byte_addr[:wlog] if wlog else 0), off_int8.eq(int8)]
        word = port.resp.payload
        shifted = Signal(16 * lanes, name=f"{name}_shifted")
        m.d.comb += shifted.eq(word >> (off * 8))
        formatted = Signal(16 * lanes, name=f"{name}_formatted")
        m.d.comb += formatted.eq(Mux(off_int8, Cat(*[Cat(shifted[8 * i:8 * i + 8], Const(0, 8))
                                                    for i in range(lanes)]), shifted))
        m.d.comb += [
            fifo.w_data.eq(formatted), fifo.w_en.eq(port.resp.valid),
            out.payload.eq(fifo.r_data), out.valid.eq(fifo.r_rdy), fifo.r_en.eq(out.ready),
        ]
        return sent, fire

    # ---- C row reader (accumulate mode) ---------------------------------------------
    def _c_reader(self, m, q: _Queues):
        """C row reader (accumulate mode): starts the MATMUL at the head of ``cq`` once every earlier
        MATMUL's last D row is written (its id equals ``q.done_count``), walks the core's chain
        order (per group of T blocks: row 0..R-1, then slot) and reads one C row of C lanes per
        position from ``acc_rd`` into a ``FIFO_DEPTH``-entry FIFO feeding ``c``; rows at or past
        ``m`` are skipped without a read.

        Latency: ``cq`` entry to first read request 1 cycle; response to ``c`` valid 1 cycle.
        Back-pressure: credit counted like the operand paths (the response is
        always taken); a read waits while ``acc_rd`` is not ready or the FIFO has no room."""
        tc = self.cfg.tensor
        R, C = tc.rows, tc.cols
        cq = q.cq
        cw = _BlockWalk(m, "c", R - 1, tc)
        c_base = Signal(24)
        c_pitch = Signal(19)
        cq_r = Signal(q.cq_layout)
        m.d.comb += cq_r.eq(cq.r_data)
        c_go = ~cw.active & cq.r_rdy & (cq_r.id == q.done_count)
        m.d.comb += cq.r_en.eq(c_go)
        with m.If(c_go):
            m.d.sync += cw.start(cq_r.m, cq_r.n)
            m.d.sync += [c_base.eq(cq_r.acc_addr), c_pitch.eq(cq_r.acc_pitch)]
        c_row = Signal(17)
        c_emit = Signal()
        m.d.comb += [c_row.eq(cw.mrow + cw.o), c_emit.eq(c_row < cw.m)]
        abits = len(self.acc_rd.req.payload)
        cfifo = SyncFIFO(width=32 * C, depth=FIFO_DEPTH)
        m.submodules.c_fifo = cfifo
        c_inflight = Signal()
        c_space = Signal()
        c_addr = Signal(abits)
        m.d.comb += [
            c_addr.eq(c_base + c_row * c_pitch + (cw.ncol << 2)),
            c_space.eq(cfifo.level + c_inflight < FIFO_DEPTH),
            self.acc_rd.req.valid.eq(cw.active & c_emit & c_space),
            self.acc_rd.req.payload.eq(c_addr),
            self.acc_rd.resp.ready.eq(1),
            cfifo.w_data.eq(self.acc_rd.resp.payload), cfifo.w_en.eq(self.acc_rd.resp.valid),
            self.c.payload.eq(cfifo.r_data), self.c.valid.eq(cfifo.r_rdy), cfifo.r_en.eq(self.c.ready),
        ]
        c_fire = self.acc_rd.req.valid & self.acc_rd.req.ready
        m.d.sync += c_inflight.eq(c_fire)
        with m.If(cw.active & (c_fire | ~c_emit)):
            cw.advance(m, [], [])

    # ---- D row writer ---------------------------------------------------------------
    def _d_writer(self, m, q: _Queues):
        """D row writer: registers each ``d`` row as an ``acc_wr`` write (address = acc_addr +
        row * acc_pitch + 4 * col from the head of ``dq``; lanes with col + j >= n masked off),
        pops ``dq`` on the MATMUL's ``d.last`` row, and pulses ``done`` (and counts
        ``q.done_count``) the cycle after that row's write is taken. Returns ``acc_wr``.

        Latency: a taken ``d`` row is offered on ``acc_wr`` the next cycle. Back-pressure:
        ``d.ready`` is high while the write register is empty or being written."""
        C = self.cfg.tensor.cols
        dq, done_count = q.dq, q.done_count
        dq_r = Signal(q.dq_layout)
        m.d.comb += dq_r.eq(dq.r_data)
        wr = self.acc_wr
        wr_last = Signal()
        d = self.d.payload
        m.d.comb += self.d.ready.eq(~wr.valid | wr.ready)
        d_take = self.d.valid & self.d.ready
        with m.If(wr.valid & wr.ready):
            m.d.sync += wr.valid.eq(0)
        with m.If(d_take):
            m.d.sync += [
                wr.valid.eq(1),
                wr.payload.addr.eq(dq_r.acc_addr + d.row * dq_r.acc_pitch + (d.col << 2)),
                wr.payload.data.eq(d.data),
                wr.payload.lanes.eq(Cat(*[(d.col + j < dq_r.n) for j in range(C)])),
                wr_last.eq(d.last),
            ]
        m.d.comb += dq.r_en.eq(d_take & d.last)
        wrote_last = wr.valid & wr.ready & wr_last
        m.d.sync += self.done.eq(wrote_last)
        with m.If(wrote_last):
            m.d.sync += done_count.eq(done_count + 1)
        return wr
