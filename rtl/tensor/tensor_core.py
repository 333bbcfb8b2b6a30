"""The tensor core: D = C + A x B on the systolic array, driven by operation descriptors."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import NamedTuple

from amaranth import Cat, Const, Module, Mux, Signal, Value
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


class _Block(NamedTuple):
    """One output block of the window: the row and column of its first element, and whether it
    exists (the separate Signals keep their names, ``<entry>_mrow`` / ``_ncol`` / ``_valid``)."""

    mrow: Value
    ncol: Value
    valid: Value


class _Window:
    """The sliding window of groups: W[0] = ``win[0]`` = group g-1, W[1] = group g, W[2] =
    group g+1, where g is the group being issued; each is a list of T :class:`_Block` s (slot t =
    the t-th block of the group). The chain unloads W[0]'s results and loads W[2]'s C values.
    ``op_m``/``op_n`` (the operation's registers) bound the blocks.
    """

    def __init__(self, cfg: TensorConfig, op_m: Signal, op_n: Signal):
        self.R, self.C, self.T = cfg.rows, cfg.cols, cfg.interleave
        self.op_m, self.op_n = op_m, op_n
        self.mrow_w = range(cfg.max_m + 2 * self.R + 1)
        self.ncol_w = range(cfg.max_n + 2 * self.C + 1)
        self.entries = [[self._entry(f"w{w}_{t}") for t in range(self.T)] for w in range(3)]

    def __getitem__(self, w: int) -> list[_Block]:
        return self.entries[w]

    def _entry(self, name: str) -> _Block:
        return _Block(Signal(self.mrow_w, name=f"{name}_mrow"), Signal(self.ncol_w, name=f"{name}_ncol"),
                      Signal(name=f"{name}_valid"))

    def next_block(self, e: _Block) -> _Block:
        """The block after ``e`` in row-major order (combinational)."""
        wrap = e.ncol + self.C >= self.op_n
        n_mrow = Mux(wrap, e.mrow + self.R, e.mrow)
        n_ncol = Mux(wrap, 0, e.ncol + self.C)
        return _Block(Mux(e.valid, n_mrow, e.mrow), Mux(e.valid, n_ncol, e.ncol),
                      e.valid & (n_mrow < self.op_m))

    def group_after(self, first: _Block) -> list[_Block]:
        """The T blocks of the group starting at ``first`` (combinational)."""
        blocks = [first]
        for _ in range(self.T - 1):
            blocks.append(self.next_block(blocks[-1]))
        return blocks

    def slide(self) -> list:
        """Statements (``sync``) moving the window on by one group: W[2] gets the next group."""
        stmts = []
        for t in range(self.T):
            stmts += _assign(self[0][t], self[1][t]) + _assign(self[1][t], self[2][t])
        for t, e in enumerate(self.group_after(self.next_block(self[2][self.T - 1]))):
            stmts += _assign(self[2][t], e)
        return stmts

    def reset(self) -> list:
        """Statements (``sync``) starting an operation: W[0], W[1] empty, W[2] the first group."""
        stmts = []
        for t in range(self.T):
            stmts += _assign(self[0][t], _Block(0, 0, 0)) + _assign(self[1][t], _Block(0, 0, 0))
        first = _Block(Const(0, self.mrow_w), Const(0, self.ncol_w), Const(1))
        for t, e in enumerate(self.group_after(first)):
            stmts += _assign(self[2][t], e)
        return stmts

    def slot_valid(self, w: int, t: Value) -> Value:
        """Slot t of window entry w exists (multiplexed over t)."""
        T = self.T
        return Cat(*[self[w][x].valid for x in range(T)]).bit_select(t, 1) if T > 1 else self[w][0].valid

    def slot_field(self, m: Module, w: int, t: Value, field: str) -> Value:
        """Field ``field`` of slot t of window entry w (a ``comb`` multiplexer over t)."""
        if self.T == 1:
            return getattr(self[w][0], field)
        f = _Block._fields.index(field)
        sig = Signal.like(getattr(self[w][0], field), name=f"sel_w{w}_f{f}")
        with m.Switch(t):
            for x in range(self.T):
                with m.Case(x) if x < self.T - 1 else m.Default():
                    m.d.comb += sig.eq(getattr(self[w][x], field))
        return sig


def _assign(dst: _Block, src: _Block) -> list:
    """Statements setting the fields of window entry ``dst`` to ``src``."""
    return [d.eq(s) for d, s in zip(dst, src, strict=True)]


@dataclass
class _CoreState:
    """The sub-components and registers of one :class:`TensorCore` elaboration that its parts share."""

    array: SystolicArray
    out: SyncFIFO
    # ---- the operation being executed
    op_m: Signal
    op_n: Signal
    op_k: Signal
    op_acc: Signal
    win: _Window            # the sliding window of groups (output blocks)
    # ---- issue and chain control
    phase: Signal           # the slot at the loop input of PE (0, 0) (free-running)
    running: Signal         # an operation is executing
    in_group: Signal        # issuing the steps of a group
    flushing: Signal        # the final (empty) group is issued; waiting for the chain
    is_flush: Signal        # the group being issued has no blocks (it only swaps)
    k: Signal               # the step (round of T slots) of the group being issued
    r: Signal               # the slot of the next step to issue
    pending: Signal         # chain work armed or running; no new group may start
    settle: Signal          # cycles left before the armed chain may shift
    chain_run: Signal       # the chain is shifting
    dtype_now: Signal       # dtype of bubbles (that of the current/last operation)
    init: Signal            # one cycle after acceptance: fill W[2] with the first group

    @classmethod
    def create(cls, cfg: TensorConfig, array: SystolicArray, out: SyncFIFO) -> _CoreState:
        """New registers (named after the local variables, as in the Verilog)."""
        op_m = Signal(range(cfg.max_m + 1))
        op_n = Signal(range(cfg.max_n + 1))
        op_k = Signal(range(cfg.max_k + 1))
        op_acc = Signal()
        win = _Window(cfg, op_m, op_n)
        phase = Signal(range(cfg.interleave))
        running = Signal()
        in_group = Signal()
        flushing = Signal()
        is_flush = Signal()
        k = Signal(range(cfg.max_k + 1))
        r = Signal(range(cfg.interleave))
        pending = Signal()
        settle = Signal(range(array.settle + 1))
        chain_run = Signal()
        dtype_now = Signal()
        init = Signal()
        return cls(array=array, out=out, op_m=op_m, op_n=op_n, op_k=op_k, op_acc=op_acc, win=win,
                   phase=phase, running=running, in_group=in_group, flushing=flushing, is_flush=is_flush,
                   k=k, r=r, pending=pending, settle=settle, chain_run=chain_run, dtype_now=dtype_now,
                   init=init)


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

        m.submodules.array = array = SystolicArray(cfg, pe_module=self.pe_module)
        m.submodules.out = out = SyncFIFO(width=d_layout(cfg).size, depth=2)
        m.d.comb += [self.d.payload.eq(out.r_data), self.d.valid.eq(out.r_rdy), out.r_en.eq(self.d.ready)]

        s = _CoreState.create(cfg, array, out)
        start, issue_slot = self._issue_step(m, s)
        self._issue_count(m, s, start, issue_slot)
        chain = self._chain_datapath(m, s)
        self._chain_control(m, s, chain)
        self._descriptor(m, s)
        return m

    # ---- issue: one step per cycle into the array
    def _issue_step(self, m: Module, s: _CoreState) -> tuple[Signal, Signal]:
        """The free-running ``phase``, the ``a``/``b`` handshake and the step presented to the array.

        Combinational (the array registers the step at its edge). A group starts (``start``) at
        phase 0 when the core runs, no group is being issued and the chain is idle. A step slot
        comes when ``phase == r``; it takes an operand beat (``a`` and ``b`` together) if its
        block exists, else it is issued as a bubble at once. Back-pressure: a real slot waits for
        both ``a.valid`` and ``b.valid`` (the slot comes around again T cycles later); bubbles
        carry the dtype of the current (or last) operation. Returns ``(start, issue_slot)``.
        """
        R, C, T = self.rows, self.cols, self.interleave
        win, phase = s.win, s.phase
        m.d.sync += phase.eq(Mux(phase == T - 1, 0, phase + 1))

        start = Signal()
        in_step = Signal()
        slot_ok = Signal()
        issue_slot = Signal()
        issue_real = Signal()
        m.d.comb += [
            start.eq(s.running & ~s.in_group & ~s.flushing & ~s.pending & (phase == 0)),
            in_step.eq((s.in_group | start) & (phase == s.r)),
            slot_ok.eq(Mux(start, win[2][0].valid, ~s.is_flush & win.slot_valid(1, s.r))),
            issue_real.eq(in_step & slot_ok & self.a.valid & self.b.valid),
            issue_slot.eq(in_step & (~slot_ok | (self.a.valid & self.b.valid))),
            self.a.ready.eq(issue_real),
            self.b.ready.eq(issue_real),
        ]

        ctl = Signal(STEP_CONTROL)
        m.d.comb += [
            ctl.first.eq(issue_slot & (s.k == 0)),
            ctl.zero.eq(~s.op_acc),
            ctl.int8.eq(s.dtype_now),
            s.array.ctl.eq(ctl),
        ]
        for i in range(R):
            m.d.comb += s.array.a[i].eq(Mux(issue_real, self.a.payload[i], BUBBLE_A))
        for j in range(C):
            m.d.comb += s.array.b[j].eq(Mux(issue_real, self.b.payload[j], BUBBLE_B))
        return start, issue_slot

    def _issue_count(self, m: Module, s: _CoreState, start: Signal, issue_slot: Signal):
        """The step counters (k, slot r) of the group being issued; the window slide at ``start``.

        Registers, one count per issued slot (``issue_slot``). A group is ``op_k`` rounds of T slots
        (one round if it has no blocks: a flush, which only swaps). The first round (k = 0) swaps
        the slots; when its last slot (r = T - 1) is issued, the chain is armed (``pending``) to
        start ``settle`` cycles later; after the flush group the operation ends once the chain is
        done. No back-pressure of its own: it advances only when a slot is issued.
        """
        T = self.interleave
        win, k, r = s.win, s.k, s.r
        last_k = Signal(range(self.cfg.max_k + 1))
        m.d.comb += last_k.eq(Mux(Mux(start, ~win[2][0].valid, s.is_flush), 0, s.op_k - 1))
        with m.If(start):
            m.d.sync += [s.in_group.eq(1), s.is_flush.eq(~win[2][0].valid)]
            m.d.sync += win.slide()
        with m.If(issue_slot):
            with m.If(r == T - 1):
                m.d.sync += r.eq(0)
                with m.If(k == last_k):
                    m.d.sync += [k.eq(0), s.in_group.eq(0)]
                with m.Else():
                    m.d.sync += k.eq(k + 1)
            with m.Else():
                m.d.sync += r.eq(r + 1)
            # The last swap of the group is issued: arm the chain for this group boundary.
            with m.If((k == 0) & (r == T - 1)):
                m.d.sync += [s.pending.eq(1), s.settle.eq(s.array.settle)]
                with m.If(Mux(start, ~win[2][0].valid, s.is_flush)):
                    m.d.sync += s.flushing.eq(1)

    # ---- the result/C chain: unload W[0], load W[2], one shift per cycle
    def _chain_datapath(self, m: Module, s: _CoreState) -> SimpleNamespace:
        """The chain's data: the result row leaving it (to ``out``) and the C row entering it.

        Combinational. Chain position ``n_idx = ci * T + cr`` is row ``ci`` of slot ``cr``: it
        holds a result of window entry W[0] (``emit`` if that row exists) and takes a C value of
        W[2] (``load``, accumulate mode only). ``can``: the shift may happen this cycle (back-
        pressure: ``out`` has room for an emitted row and ``c`` has a beat for a loaded one).
        Returns the chain counters and these conditions for :meth:`_chain_control`.
        """
        R, C, T = self.rows, self.cols, self.interleave
        win, out = s.win, s.out
        ci = Signal(range(R))
        cr = Signal(range(T))
        n_idx = Signal(range(R * T))
        w0_mrow, w0_ncol, w0_valid = (win.slot_field(m, 0, cr, f) for f in _Block._fields)
        w2_mrow, w2_valid = win.slot_field(m, 2, cr, "mrow"), win.slot_field(m, 2, cr, "valid")
        emit = Signal()
        load = Signal()
        m.d.comb += [
            emit.eq(w0_valid & (w0_mrow + ci < s.op_m)),
            load.eq(s.op_acc & w2_valid & (w2_mrow + ci < s.op_m)),
        ]
        n_last, any_emit = self._last_result(m, s)
        no_load = Signal()
        m.d.comb += no_load.eq(~s.op_acc | ~win[2][0].valid)
        final_phase = ~win[1][0].valid
        can = Signal()
        m.d.comb += can.eq((~emit | out.w_rdy) & (~load | self.c.valid))

        d_word = Signal(d_layout(self.cfg))
        m.d.comb += [
            d_word.row.eq(w0_mrow + ci),
            d_word.col.eq(w0_ncol),
            d_word.last.eq(final_phase & (n_idx == n_last)),
            out.w_data.eq(d_word),
        ]
        for j in range(C):
            m.d.comb += [
                d_word.data[j].eq(s.array.chain_out[j]),
                s.array.chain_in[j].eq(Mux(load, self.c.payload[j], 0)),
            ]
        return SimpleNamespace(ci=ci, cr=cr, n_idx=n_idx, emit=emit, load=load, can=can,
                               no_load=no_load, n_last=n_last, any_emit=any_emit)

    def _last_result(self, m: Module, s: _CoreState) -> tuple[Signal, Signal]:
        """Combinational: ``(n_last, any_emit)``, the chain position of the last result of W[0]
        (the largest ``row * T + t`` over its existing result rows) and whether W[0] has any block."""
        R, T = self.rows, self.interleave
        # The position of the last result in this phase: max over slots of (rows - 1) * T + t.
        best, best_ok = Const(0, range(R * T)), Const(0)
        for t in range(T):
            mrow, valid = s.win[0][t].mrow, s.win[0][t].valid
            rows_left = Signal(range(self.cfg.max_m + 1), name=f"rows_left{t}")
            cand = Signal(range(R * T), name=f"last_pos{t}")
            m.d.comb += [
                rows_left.eq(s.op_m - mrow),
                cand.eq(Mux(rows_left >= R, R - 1, rows_left - 1) * T + t),
            ]
            take = valid & (~best_ok | (cand > best))
            n_t = Signal(range(R * T), name=f"n_last{t}")
            ok_t = Signal(name=f"any_emit{t}")
            m.d.comb += [n_t.eq(Mux(take, cand, best)), ok_t.eq(best_ok | valid)]
            best, best_ok = n_t, ok_t
        return best, best_ok

    def _chain_control(self, m: Module, s: _CoreState, ch: SimpleNamespace):
        """Runs the chain for one group boundary: ``settle`` cycles after it is armed, one shift
        per cycle that ``ch.can`` allows (back-pressure from ``d`` and ``c`` only pauses it), until
        the last result is out (no C to load) or all ``rows * T`` positions have shifted; then
        ``pending`` drops and the next group may start. Nothing to unload or load: ends at once."""
        R, T = self.rows, self.interleave
        ci, cr, n_idx = ch.ci, ch.cr, ch.n_idx

        def end_phase():
            m.d.sync += [s.chain_run.eq(0), s.pending.eq(0)]

        with m.If(s.pending & ~s.chain_run):
            with m.If(s.settle != 0):
                m.d.sync += s.settle.eq(s.settle - 1)
            with m.Else():
                m.d.sync += [s.chain_run.eq(1), ci.eq(0), cr.eq(0), n_idx.eq(0)]
        with m.If(s.chain_run):
            with m.If(ch.no_load & ~ch.any_emit):
                end_phase()
            with m.Elif(ch.can):
                m.d.comb += [
                    s.array.shift.eq(1),
                    s.out.w_en.eq(ch.emit),
                    self.c.ready.eq(ch.load),
                ]
                m.d.sync += n_idx.eq(n_idx + 1)
                with m.If(cr == T - 1):
                    m.d.sync += [cr.eq(0), ci.eq(ci + 1)]
                with m.Else():
                    m.d.sync += cr.eq(cr + 1)
                with m.If(Mux(ch.no_load, n_idx == ch.n_last, n_idx == R * T - 1)):
                    end_phase()

    # ---- descriptor acceptance and the end of an operation
    def _descriptor(self, m: Module, s: _CoreState):
        """Accepts ``op`` when idle; checks it (``error``), latches it, and one cycle later
        (``init``) fills the window with the first group and, in accumulate mode, arms the chain
        to preload group 0's C values. The operation ends once the flush group's chain is done.
        Back-pressure: ``op.ready`` is low while an operation runs (``busy``)."""
        cfg = self.cfg
        init = s.init
        desc = self.op.payload
        bad = Signal()
        m.d.comb += [
            bad.eq((desc.m == 0) | (desc.m > cfg.max_m) | (desc.n == 0) | (desc.n > cfg.max_n)
                   | (desc.k == 0) | (desc.k > cfg.max_k)
                   | ((desc.dtype != DTYPE_BF16) & (desc.dtype != DTYPE_INT8))),
            self.op.ready.eq(~s.running & ~init),
            self.busy.eq(s.running | init),
        ]
        with m.If(self.op.valid & self.op.ready):
            with m.If(bad):
                m.d.sync += self.error.eq(1)
            with m.Else():
                m.d.sync += [
                    self.error.eq(0), init.eq(1),
                    s.op_m.eq(desc.m), s.op_n.eq(desc.n), s.op_k.eq(desc.k),
                    s.dtype_now.eq(desc.dtype == DTYPE_INT8),
                    s.op_acc.eq(desc.accumulate),
                ]
        with m.If(init):
            m.d.sync += [init.eq(0), s.running.eq(1), s.in_group.eq(0), s.flushing.eq(0), s.k.eq(0),
                         s.r.eq(0)]
            m.d.sync += s.win.reset()
            with m.If(s.op_acc):
                # Preload: the C values of group 0 enter the chains before group 0 starts.
                m.d.sync += [s.pending.eq(1), s.settle.eq(0)]
        with m.If(s.running & s.flushing & ~s.pending):
            m.d.sync += [s.running.eq(0), s.flushing.eq(0)]
