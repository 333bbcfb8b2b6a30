"""The tensor core: D = C + A x B on the systolic array, driven by operation descriptors."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from tessera.rtl.config import TensorConfig
from tessera.rtl.tensor.interface import (
    BUBBLE_A,
    BUBBLE_B,
    DTYPE_BF16,
    DTYPE_INT8,
    STEP_CONTROL,
    a_layout,
    b_layout,
    c_layout,
    check_op,
    d_layout,
    op_layout,
)
from tessera.rtl.tensor.systolic_array import SystolicArray

__all__ = ["TensorCore"]


class TensorCore(wiring.Component):
    """Tensor core: computes D = C + A x B (or A x B) for one operation descriptor at a time.

    Ports (streams; payload layouts in :mod:`tessera.rtl.tensor.interface`, beat order in docs/tensor.md):

    * ``op``: descriptor (m, n, k, dtype 0 = BF16 / 1 = INT8, accumulate). Accepted when idle.
    * ``a``, ``b``: one step per beat; ``rows`` lanes of A and ``cols`` lanes of B for the same k
      and the same output block. Both are consumed together, one step per cycle at most.
    * ``c``: one row of C (``cols`` lanes) per beat, only in accumulate mode.
    * ``d``: one row of D per beat, with its ``row`` and first column ``col``; ``last`` on the
      final beat of an operation.
    * ``error``: set when a descriptor is rejected (m, n or k zero or above the configured
      maximum, or an unknown dtype); the descriptor is consumed, no operand or result beat belongs
      to it, and the flag stays set until the next valid descriptor is accepted.
    * ``busy``: an accepted operation is not finished (its last result not yet handed to ``d``'s
      output buffer).

    Schedule: the output is cut into blocks of ``rows`` x ``cols`` (row-major over blocks), and
    the blocks into groups of ``T = interleave`` blocks; the T blocks of a group share the array,
    round-robin, one step (k, slot) per cycle: so one MAC per PE per cycle for any K and either
    dtype, while each FP32 accumulation loop waits the adder's latency. Consecutive groups flow
    through the array back to back; the results of group g leave through the column chains, and
    the C values of group g + 2 enter them, while group g + 1 computes. The chain needs
    ``rows * T`` cycles plus ``settle`` per group; when ``K * T`` is shorter the array idles with
    bubbles (so small K is slower, never wrong).

    Latency: from the last step of an operation to its last result about
    ``rows + cols + fmul_latency + T + rows * T`` cycles. Throughput: one step (R x C MACs) per
    cycle while operands are supplied. Back-pressure: a step waits for both ``a`` and ``b``
    (the slot then comes around again T cycles later); results wait for ``d.ready`` and the core
    never drops one (the array keeps computing until the next group boundary, then idles).
    ``pe_module``: see :class:`SystolicArray` (hierarchical Verilog export).
    The operand streams must not wait for results: the core emits the results of group g only
    after it has received the first steps of group g + 1 (or finished the operation).
    """

    def __init__(self, cfg: TensorConfig | None = None, pe_module: str | None = None):
        cfg = cfg or TensorConfig()
        if not isinstance(cfg, TensorConfig):
            raise ValueError("TensorCore cfg must be a TensorConfig")
        self.cfg = cfg
        self.pe_module = pe_module
        self.rows, self.cols, self.interleave = cfg.rows, cfg.cols, cfg.interleave
        super().__init__({
            "op": In(stream.Signature(op_layout(cfg))),
            "a": In(stream.Signature(a_layout(cfg))),
            "b": In(stream.Signature(b_layout(cfg))),
            "c": In(stream.Signature(c_layout(cfg))),
            "d": Out(stream.Signature(d_layout(cfg))),
            "error": Out(1),
            "busy": Out(1),
        })

    def check_op(self, m: int, n: int, k: int, dtype="bf16") -> int:
        """Python API: ``ValueError`` for a descriptor this core rejects; returns the dtype code."""
        return check_op(self.cfg, m, n, k, dtype)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, C, T = self.rows, self.cols, self.interleave

        m.submodules.array = array = SystolicArray(cfg, pe_module=self.pe_module)
        dl = d_layout(cfg)
        m.submodules.out = out = SyncFIFO(width=dl.size, depth=2)
        m.d.comb += [self.d.payload.eq(out.r_data), self.d.valid.eq(out.r_rdy), out.r_en.eq(self.d.ready)]

        # ---- the operation being executed
        op_m = Signal(range(cfg.max_m + 1))
        op_n = Signal(range(cfg.max_n + 1))
        op_k = Signal(range(cfg.max_k + 1))
        op_acc = Signal()

        # ---- output blocks: (row of its first element, column of its first element, exists)
        mrow_w = range(cfg.max_m + 2 * R + 1)
        ncol_w = range(cfg.max_n + 2 * C + 1)

        def entry(name):
            return (Signal(mrow_w, name=f"{name}_mrow"), Signal(ncol_w, name=f"{name}_ncol"),
                    Signal(name=f"{name}_valid"))

        def next_block(e):
            """The block after ``e`` in row-major order (combinational)."""
            mrow, ncol, valid = e
            wrap = ncol + C >= op_n
            n_mrow = Mux(wrap, mrow + R, mrow)
            n_ncol = Mux(wrap, 0, ncol + C)
            return (Mux(valid, n_mrow, mrow), Mux(valid, n_ncol, ncol), valid & (n_mrow < op_m))

        # The sliding window of groups: W[0] = group g-1, W[1] = group g, W[2] = group g+1, where
        # g is the group being issued. The chain unloads W[0]'s results and loads W[2]'s C values.
        W = [[entry(f"w{w}_{t}") for t in range(T)] for w in range(3)]

        def assign(dst, src):
            return [d.eq(s) for d, s in zip(dst, src, strict=True)]

        def group_after(first):
            blocks = [first]
            for _ in range(T - 1):
                blocks.append(next_block(blocks[-1]))
            return blocks

        def slide():
            stmts = []
            for t in range(T):
                stmts += assign(W[0][t], W[1][t]) + assign(W[1][t], W[2][t])
            for t, e in enumerate(group_after(next_block(W[2][T - 1]))):
                stmts += assign(W[2][t], e)
            return stmts

        def slot_valid(w, t):
            """Slot t of window entry w exists (multiplexed over t)."""
            return Cat(*[W[w][x][2] for x in range(T)]).bit_select(t, 1) if T > 1 else W[w][0][2]

        def slot_field(w, t, f):
            if T == 1:
                return W[w][0][f]
            sig = Signal.like(W[w][0][f], name=f"sel_w{w}_f{f}")
            with m.Switch(t):
                for x in range(T):
                    with m.Case(x) if x < T - 1 else m.Default():
                        m.d.comb += sig.eq(W[w][x][f])
            return sig

        # ---- issue: one step per cycle into the array
        phase = Signal(range(T))            # the slot at the loop input of PE (0, 0) (free-running)
        m.d.sync += phase.eq(Mux(phase == T - 1, 0, phase + 1))
        running = Signal()                  # an operation is executing
        in_group = Signal()                 # issuing the steps of a group
        flushing = Signal()                 # the final (empty) group is issued; waiting for the chain
        is_flush = Signal()                 # the group being issued has no blocks (it only swaps)
        k = Signal(range(cfg.max_k + 1))
        r = Signal(range(T))
        pending = Signal()                  # chain work armed or running; no new group may start
        settle = Signal(range(array.settle + 1))
        chain_run = Signal()
        dtype_now = Signal()                # dtype of bubbles (that of the current/last operation)

        start = Signal()
        in_step = Signal()
        slot_ok = Signal()
        issue_slot = Signal()
        issue_real = Signal()
        m.d.comb += [
            start.eq(running & ~in_group & ~flushing & ~pending & (phase == 0)),
            in_step.eq((in_group | start) & (phase == r)),
            slot_ok.eq(Mux(start, W[2][0][2], ~is_flush & slot_valid(1, r))),
            issue_real.eq(in_step & slot_ok & self.a.valid & self.b.valid),
            issue_slot.eq(in_step & (~slot_ok | (self.a.valid & self.b.valid))),
            self.a.ready.eq(issue_real),
            self.b.ready.eq(issue_real),
        ]

        ctl = Signal(STEP_CONTROL)
        m.d.comb += [
            ctl.first.eq(issue_slot & (k == 0)),
            ctl.zero.eq(~op_acc),
            ctl.int8.eq(dtype_now),
            array.ctl.eq(ctl),
        ]
        for i in range(R):
            m.d.comb += array.a[i].eq(Mux(issue_real, self.a.payload[i], BUBBLE_A))
        for j in range(C):
            m.d.comb += array.b[j].eq(Mux(issue_real, self.b.payload[j], BUBBLE_B))

        last_k = Signal(range(cfg.max_k + 1))
        m.d.comb += last_k.eq(Mux(Mux(start, ~W[2][0][2], is_flush), 0, op_k - 1))
        with m.If(start):
            m.d.sync += [in_group.eq(1), is_flush.eq(~W[2][0][2])]
            m.d.sync += slide()
        with m.If(issue_slot):
            with m.If(r == T - 1):
                m.d.sync += r.eq(0)
                with m.If(k == last_k):
                    m.d.sync += [k.eq(0), in_group.eq(0)]
                with m.Else():
                    m.d.sync += k.eq(k + 1)
            with m.Else():
                m.d.sync += r.eq(r + 1)
            # The last swap of the group is issued: arm the chain for this group boundary.
            with m.If((k == 0) & (r == T - 1)):
                m.d.sync += [pending.eq(1), settle.eq(array.settle)]
                with m.If(Mux(start, ~W[2][0][2], is_flush)):
                    m.d.sync += flushing.eq(1)

        # ---- the result/C chain: unload W[0], load W[2], one shift per cycle
        ci = Signal(range(R))
        cr = Signal(range(T))
        n_idx = Signal(range(R * T))
        w0_mrow, w0_ncol, w0_valid = (slot_field(0, cr, f) for f in range(3))
        w2_mrow, w2_valid = slot_field(2, cr, 0), slot_field(2, cr, 2)
        emit = Signal()
        load = Signal()
        m.d.comb += [
            emit.eq(w0_valid & (w0_mrow + ci < op_m)),
            load.eq(op_acc & w2_valid & (w2_mrow + ci < op_m)),
        ]
        # The position of the last result in this phase: max over slots of (rows - 1) * T + t.
        best, best_ok = Const(0, range(R * T)), Const(0)
        for t in range(T):
            mrow, _, valid = W[0][t]
            rows_left = Signal(range(cfg.max_m + 1), name=f"rows_left{t}")
            cand = Signal(range(R * T), name=f"last_pos{t}")
            m.d.comb += [
                rows_left.eq(op_m - mrow),
                cand.eq(Mux(rows_left >= R, R - 1, rows_left - 1) * T + t),
            ]
            take = valid & (~best_ok | (cand > best))
            n_t = Signal(range(R * T), name=f"n_last{t}")
            ok_t = Signal(name=f"any_emit{t}")
            m.d.comb += [n_t.eq(Mux(take, cand, best)), ok_t.eq(best_ok | valid)]
            best, best_ok = n_t, ok_t
        n_last, any_emit = best, best_ok
        no_load = Signal()
        m.d.comb += no_load.eq(~op_acc | ~W[2][0][2])
        final_phase = ~W[1][0][2]
        can = Signal()
        m.d.comb += can.eq((~emit | out.w_rdy) & (~load | self.c.valid))

        d_word = Signal(dl)
        m.d.comb += [
            d_word.row.eq(w0_mrow + ci),
            d_word.col.eq(w0_ncol),
            d_word.last.eq(final_phase & (n_idx == n_last)),
            out.w_data.eq(d_word),
        ]
        for j in range(C):
            m.d.comb += [
                d_word.data[j].eq(array.chain_out[j]),
                array.chain_in[j].eq(Mux(load, self.c.payload[j], 0)),
            ]

        def end_phase():
            m.d.sync += [chain_run.eq(0), pending.eq(0)]

        with m.If(pending & ~chain_run):
            with m.If(settle != 0):
                m.d.sync += settle.eq(settle - 1)
            with m.Else():
                m.d.sync += [chain_run.eq(1), ci.eq(0), cr.eq(0), n_idx.eq(0)]
        with m.If(chain_run):
            with m.If(no_load & ~any_emit):
                end_phase()
            with m.Elif(can):
                m.d.comb += [
                    array.shift.eq(1),
                    out.w_en.eq(emit),
                    self.c.ready.eq(load),
                ]
                m.d.sync += n_idx.eq(n_idx + 1)
                with m.If(cr == T - 1):
                    m.d.sync += [cr.eq(0), ci.eq(ci + 1)]
                with m.Else():
                    m.d.sync += cr.eq(cr + 1)
                with m.If(Mux(no_load, n_idx == n_last, n_idx == R * T - 1)):
                    end_phase()

        # ---- descriptor acceptance and the end of an operation
        init = Signal()      # one cycle after acceptance: fill W[2] with the first group
        desc = self.op.payload
        bad = Signal()
        m.d.comb += [
            bad.eq((desc.m == 0) | (desc.m > cfg.max_m) | (desc.n == 0) | (desc.n > cfg.max_n)
                   | (desc.k == 0) | (desc.k > cfg.max_k)
                   | ((desc.dtype != DTYPE_BF16) & (desc.dtype != DTYPE_INT8))),
            self.op.ready.eq(~running & ~init),
            self.busy.eq(running | init),
        ]
        with m.If(self.op.valid & self.op.ready):
            with m.If(bad):
                m.d.sync += self.error.eq(1)
            with m.Else():
                m.d.sync += [
                    self.error.eq(0), init.eq(1),
                    op_m.eq(desc.m), op_n.eq(desc.n), op_k.eq(desc.k),
                    dtype_now.eq(desc.dtype == DTYPE_INT8),
                    op_acc.eq(desc.accumulate),
                ]
        with m.If(init):
            m.d.sync += [init.eq(0), running.eq(1), in_group.eq(0), flushing.eq(0), k.eq(0), r.eq(0)]
            for t in range(T):
                m.d.sync += assign(W[0][t], (0, 0, 0)) + assign(W[1][t], (0, 0, 0))
            first = (Const(0, mrow_w), Const(0, ncol_w), Const(1))
            for t, e in enumerate(group_after(first)):
                m.d.sync += assign(W[2][t], e)
            with m.If(op_acc):
                # Preload: the C values of group 0 enter the chains before group 0 starts.
                m.d.sync += [pending.eq(1), settle.eq(0)]
        with m.If(running & flushing & ~pending):
            m.d.sync += [running.eq(0), flushing.eq(0)]
        return m
