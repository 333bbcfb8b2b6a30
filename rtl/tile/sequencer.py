"""The compute tile's command sequencer."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.config import FabricConfig
from tessera.rtl.tile.isa import (
    ACC_BYTES,
    FORMATS,
    INSTRUCTION,
    LOCAL_ADDR_BITS,
    PITCH_BITS,
    SYNC_COUNT_BITS,
    Act,
    Dtype,
    ErrorCode,
    Mode,
    Opcode,
    Reduce,
    Space,
    State,
    VFmt,
    VOp,
    YMode,
    matmul_desc_layout,
    reserved_mask,
    status_layout,
    vector_desc_layout,
    xfer_desc_layout,
)

__all__ = ["Sequencer"]


class _Step(enum.Enum, shape=3):
    FETCH = 0   # waiting for an instruction word
    SIZE = 1    # multiplying out the extents of the word held in ``instr``
    CHECK = 2   # comparing them with the limits: the error code
    ISSUE = 3   # offering its descriptor / waiting for its BARRIER, SYNC or END condition
    STOP = 4    # DONE or ERROR, until ``clear``


@dataclass
class _Control:
    """The instruction register and the control registers, shared by the parts of the sequencer."""
    instr: Signal   # the word being checked / issued
    step: Signal    # _Step
    state: Signal   # State, as reported in ``status``
    error: Signal   # ErrorCode, as reported in ``status``
    pc: Signal      # index of the word in ``instr`` since the last clear


@dataclass
class _Pitches:
    """Row pitches in bytes of the word in ``instr`` (registered as it is taken from ``cmd``)."""
    x: Signal       # LOAD / STORE rows
    a: Signal       # MATMUL A rows
    b: Signal       # MATMUL B rows
    acc: Signal     # MATMUL accumulator rows
    vx: Signal      # VECTOR x rows, pitch(4 cols) (also a REGION y and an FP32 output)
    vd: Signal      # VECTOR output rows, the pitch of its ``fmt``


@dataclass
class _Sizes:
    """Products of the word in ``instr``, registered in SIZE. VECTOR shares the multipliers of
    LOAD / STORE and MATMUL (their operands are chosen by the opcode)."""
    x_span: Signal      # (rows - 1) * stride
    x_extent: Signal    # rows * pitch; VECTOR: rows * x pitch
    a: Signal           # k * A pitch
    b: Signal           # k * B pitch
    d: Signal           # m * accumulator pitch; VECTOR: output rows * output pitch


@dataclass
class _VectorChecks:
    """The conditions under which a VECTOR fails each of its checks (combinational)."""
    field: Signal       # BAD_FIELD (beyond the reserved bits)
    size: Signal        # BAD_SIZE
    align: Signal       # MISALIGNED
    sp: Signal          # SP_OVERFLOW
    acc: Signal         # ACC_OVERFLOW


@dataclass
class _Counts:
    """Outstanding descriptors per class."""
    load: Signal
    store: Signal
    matmul: Signal
    vector: Signal


class Sequencer(wiring.Component):
    """Fetches tile instructions (docs/isa.md), validates them and issues descriptors.

    Ports:

    * ``cmd`` (in, stream of :data:`tessera.rtl.tile.isa.INSTRUCTION`): the command queue.
    * ``load``, ``store`` (out, streams of :func:`tessera.rtl.tile.isa.xfer_desc_layout`): to the tensor DMA.
    * ``matmul`` (out, stream of :func:`tessera.rtl.tile.isa.matmul_desc_layout`): to the tensor-core side.
    * ``vector`` (out, stream of :func:`tessera.rtl.tile.isa.vector_desc_layout`): to the vector engine.
    * ``load_done``, ``store_done``, ``matmul_done``, ``vector_done`` (in): one-cycle pulses, one per
      completed descriptor of that class (a pulse with nothing outstanding is ignored).
    * ``fault`` (in): a downstream unit failed (e.g. an AXI error); stops the tile with FAULT.
    * ``clear`` (in): pulse; abandons whatever is in progress and returns to IDLE with pc 0 and
      no error. Outstanding counts are kept (those operations still complete).
    * ``status`` (out, :func:`tessera.rtl.tile.isa.status_layout`): state, error code, pc.
    * ``sync_count`` (out, 8): how many SYNCs this tile has executed since reset / ``clear``,
      modulo 256 (a register: incremented in the cycle a SYNC passes its check and enters ISSUE).
    * ``sync_counts`` (in, 8 per mesh node): tile t's ``sync_count`` at bits [8t+7:8t], own
      tile included (the fabric wires every tile's ``sync_count`` here).

    Behaviour: each instruction is taken from ``cmd`` (FETCH), checked in the next two cycles
    (SIZE multiplies out the extents of its regions, CHECK compares them with the limits; the
    first failing check of docs/isa.md gives the error code), then executed (ISSUE): LOAD,
    STORE, MATMUL and VECTOR offer their descriptor until it is taken, holding it back while
    ``max_outstanding`` of that class are outstanding; BARRIER waits until every selected class
    has nothing outstanding; END waits until nothing at all is outstanding, then reports DONE.
    SYNC increments ``sync_count`` as it enters ISSUE, then retires in the first ISSUE cycle in
    which every tile t of its rectangle has ``(sync_counts[t] - sync_count) mod 256 < 128``
    (t has executed at least as many SYNCs); the test is combinational on that cycle's
    ``sync_counts``, so a SYNC whose group has caught up costs 3 cycles like any instruction.
    SYNC waits for nothing local (no outstanding count).
    Instructions are issued strictly in program order; there is no address-based hazard
    detection (the program orders dependent work with BARRIERs; docs/isa.md lists the rules).

    Latency / throughput: the next word is accepted in the cycle the previous instruction retires,
    so an instruction takes 3 cycles when its descriptor is taken at once (SIZE, CHECK, ISSUE).
    The check is split in two registered steps so that no path has more than one multiplier or
    one long carry chain (``tessera synth --design tile_sequencer``).
    Back-pressure: ``cmd.ready`` is high only in FETCH and in a retiring cycle; each descriptor
    stream's ``valid`` depends only on state, never on ``ready``.
    Errors: a malformed word stops the sequencer (state ERROR, ``status.error`` set, ``status.pc``
    the index of the word since the last clear); nothing of it is issued, no further word is
    consumed. ERROR and DONE are final until ``clear`` (or reset). A ``fault`` pulse in any state
    but ERROR stops it the same way with FAULT (a descriptor on offer is withdrawn).
    """

    def __init__(self, cfg: FabricConfig | None = None):
        cfg = cfg or FabricConfig()
        if not isinstance(cfg, FabricConfig):
            raise ValueError("Sequencer cfg must be a FabricConfig")
        if cfg.cache.addr_bits > 32:
            raise ValueError(f"CacheConfig.addr_bits = {cfg.cache.addr_bits}: the tile ISA addresses"
                             " at most 32 bits of memory; allowed: 12..32")
        self.cfg = cfg
        super().__init__({
            "cmd": In(stream.Signature(INSTRUCTION)),
            "load": Out(stream.Signature(xfer_desc_layout(cfg))),
            "store": Out(stream.Signature(xfer_desc_layout(cfg))),
            "matmul": Out(stream.Signature(matmul_desc_layout(cfg))),
            "vector": Out(stream.Signature(vector_desc_layout(cfg))),
            "load_done": In(1),
            "store_done": In(1),
            "matmul_done": In(1),
            "vector_done": In(1),
            "fault": In(1),
            "clear": In(1),
            "status": Out(status_layout()),
            "sync_count": Out(SYNC_COUNT_BITS),
            "sync_counts": In(SYNC_COUNT_BITS * cfg.noc.nodes),
        })

    def elaborate(self, platform):
        m = Module()
        instr = Signal(INSTRUCTION)
        step = Signal(_Step)
        state = Signal(State)
        error = Signal(ErrorCode)
        pc = Signal(16)
        ctl = _Control(instr, step, state, error, pc)
        is_sync = instr.header.opcode == Opcode.SYNC

        known, reserved = self._decode(m, instr)
        pitches = self._pitches(m)
        sizes = self._sizes(m, ctl, pitches)
        code = self._error_code(m, instr, known, reserved, sizes, is_sync)
        in_rect = self._descriptors(m, instr, pitches)
        counts = _Counts(load=self._outstanding(m, "load", self.load, self.load_done),
                         store=self._outstanding(m, "store", self.store, self.store_done),
                         matmul=self._outstanding(m, "matmul", self.matmul, self.matmul_done),
                         vector=self._outstanding(m, "vector", self.vector, self.vector_done))
        sync_count, synced = self._sync_wait(m, in_rect)
        retire = self._issue(m, ctl, counts, synced)
        self._advance(m, ctl, retire, code, is_sync, sync_count)
        return m

    # ---- helpers on byte values -----------------------------------------------------------------
    def _roundup(self, x):
        """``x`` rounded up to a whole word (``x`` a value in bytes)."""
        wb = self.cfg.tile.word_bytes
        lsb = (wb - 1).bit_length()          # address bits below a word
        return ((x + (wb - 1)) >> lsb) << lsb

    def _misaligned(self, *values):
        """True if any of ``values`` (byte addresses or sizes) is not a whole number of words."""
        lsb = (self.cfg.tile.word_bytes - 1).bit_length()
        return Cat(*(v[:lsb] for v in values)).any()

    # ---- CHECK: the error code of the word in ``instr`` (docs/isa.md order) --------------------
    def _decode(self, m, instr):
        """Opcode decode of ``instr``: ``known`` (a defined opcode) and ``reserved`` (a reserved bit of
        its format is set). Combinational."""
        known = Signal()
        reserved = Signal()
        with m.Switch(instr.header.opcode):
            for opcode, layout in FORMATS.items():
                with m.Case(opcode):
                    m.d.comb += [known.eq(1), reserved.eq((instr.raw & reserved_mask(layout)).any())]
        return known, reserved

    def _pitches(self, m) -> _Pitches:
        """Row pitches (bytes, rounded up to a word) of the word on ``cmd``: registered in the cycle
        it is taken, so they are valid from SIZE on and kept beside ``instr`` until the next word."""
        word = self.cmd.payload
        x_pitch = Signal(PITCH_BITS)
        a_pitch, b_pitch, acc_pitch = Signal(PITCH_BITS), Signal(PITCH_BITS), Signal(PITCH_BITS)
        vx_pitch, vd_pitch = Signal(PITCH_BITS), Signal(PITCH_BITS)
        w_bf16 = word.matmul.dtype == Dtype.BF16
        v = word.vector
        out_row_bytes = Signal(14)      # the bytes of one output row for the word's ``fmt``
        with m.Switch(v.fmt):
            with m.Case(VFmt.BF16):
                m.d.comb += out_row_bytes.eq(v.cols << 1)
            with m.Case(VFmt.BF16_T):
                m.d.comb += out_row_bytes.eq(v.rows << 1)
            with m.Case(VFmt.INT8):
                m.d.comb += out_row_bytes.eq(v.cols)
            with m.Case(VFmt.INT8_T):
                m.d.comb += out_row_bytes.eq(v.rows)
            with m.Default():           # FP32 (and the reserved codes, refused in CHECK)
                m.d.comb += out_row_bytes.eq(v.cols * ACC_BYTES)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                x_pitch.eq(self._roundup(word.xfer.row_bytes)),
                a_pitch.eq(self._roundup(Mux(w_bf16, word.matmul.m << 1, word.matmul.m))),
                b_pitch.eq(self._roundup(Mux(w_bf16, word.matmul.n << 1, word.matmul.n))),
                acc_pitch.eq(self._roundup(word.matmul.n * ACC_BYTES)),
                vx_pitch.eq(self._roundup(v.cols * ACC_BYTES)),
                vd_pitch.eq(self._roundup(out_row_bytes)),
            ]
        return _Pitches(x=x_pitch, a=a_pitch, b=b_pitch, acc=acc_pitch, vx=vx_pitch, vd=vd_pitch)

    def _sizes(self, m, ctl: _Control, pitches: _Pitches) -> _Sizes:
        """SIZE: the extents of the regions of ``instr`` (one multiplier each), registered in the
        SIZE cycle and read by the checks in CHECK. A VECTOR uses the LOAD / STORE extent's
        multiplier for x and the MATMUL D's for its output (operands selected by the opcode)."""
        x, mm, v = ctl.instr.xfer, ctl.instr.matmul, ctl.instr.vector
        is_vec = ctl.instr.header.opcode == Opcode.VECTOR
        transposed = (v.fmt == VFmt.BF16_T) | (v.fmt == VFmt.INT8_T)
        x_span = Signal(36)     # (rows - 1) * stride
        x_extent = Signal(31)   # rows * pitch
        a_size, b_size, d_size = Signal(35), Signal(35), Signal(35)
        with m.If(ctl.step == _Step.SIZE):
            m.d.sync += [
                x_span.eq((x.rows - 1) * x.stride),
                x_extent.eq(Mux(is_vec, v.rows, x.rows) * Mux(is_vec, pitches.vx, pitches.x)),
                a_size.eq(mm.k * pitches.a), b_size.eq(mm.k * pitches.b),
                d_size.eq(Mux(is_vec, Mux(transposed, v.cols, v.rows), mm.m)
                          * Mux(is_vec, pitches.vd, pitches.acc)),
            ]
        return _Sizes(x_span=x_span, x_extent=x_extent, a=a_size, b=b_size, d=d_size)

    def _error_code(self, m, instr, known, reserved, sizes: _Sizes, is_sync):
        """``code``: the error code of ``instr`` (``ErrorCode.NONE`` if it passes), the first failing
        check in docs/isa.md order. Combinational from ``instr`` and ``sizes``; valid in CHECK."""
        cfg, tile = self.cfg, self.cfg.tile
        x, mm = instr.xfer, instr.matmul
        op = instr.header.opcode
        is_load, is_store = op == Opcode.LOAD, op == Opcode.STORE
        group = Cat(x.x0, x.y0, x.x1, x.y1)
        x_field = ((is_load & (x.mode.as_value() == 3))
                   | (is_store & ((x.mode != Mode.LOCAL) | (x.space != Space.ACC)))
                   | ((x.mode == Mode.LOCAL) & group.any()))
        bad_rect = (x.x0 > x.x1) | (x.y0 > x.y1) | (x.x1 >= cfg.noc.width) | (x.y1 >= cfg.noc.height)
        x_group = (x.mode != Mode.LOCAL) & bad_rect
        x_size = (x.rows == 0) | (x.row_bytes == 0)
        x_align = self._misaligned(x.local_addr, x.mem_addr, x.stride) | (
            (x.space == Space.ACC) & x.row_bytes[:2].any())
        x_mem_end = x.mem_addr + sizes.x_span + x.row_bytes
        x_range = x_mem_end > (1 << cfg.cache.addr_bits)
        x_top = x.local_addr + sizes.x_extent
        x_sp = (x.space == Space.SP) & (x_top > tile.scratchpad_bytes)
        x_acc = (x.space == Space.ACC) & (x_top > tile.accumulator_bytes)

        m_field = mm.dtype.as_value() > Dtype.INT8.value
        m_size = ((mm.m == 0) | (mm.n == 0) | (mm.k == 0) | (mm.m > cfg.tensor.max_m)
                  | (mm.n > cfg.tensor.max_n) | (mm.k > cfg.tensor.max_k))
        m_align = self._misaligned(mm.a_addr, mm.b_addr, mm.acc_addr)
        m_sp = (mm.a_addr + sizes.a > tile.scratchpad_bytes) | (mm.b_addr + sizes.b > tile.scratchpad_bytes)
        m_acc = mm.acc_addr + sizes.d > tile.accumulator_bytes

        v = self._vector_checks(instr, sizes)
        code = Signal(ErrorCode)
        is_xfer, is_mm, is_vec = is_load | is_store, op == Opcode.MATMUL, op == Opcode.VECTOR
        checks = [
            (~known, ErrorCode.ILLEGAL_OPCODE),
            (reserved | (is_xfer & x_field) | (is_mm & m_field) | (is_vec & v.field), ErrorCode.BAD_FIELD),
            ((is_xfer & x_group) | (is_sync & bad_rect), ErrorCode.BAD_GROUP),
            ((is_xfer & x_size) | (is_mm & m_size) | (is_vec & v.size), ErrorCode.BAD_SIZE),
            ((is_xfer & x_align) | (is_mm & m_align) | (is_vec & v.align), ErrorCode.MISALIGNED),
            (is_xfer & x_range, ErrorCode.ADDR_RANGE),
            ((is_xfer & x_sp) | (is_mm & m_sp) | (is_vec & v.sp), ErrorCode.SP_OVERFLOW),
            ((is_xfer & x_acc) | (is_mm & m_acc) | (is_vec & v.acc), ErrorCode.ACC_OVERFLOW),
        ]
        for cond, value in reversed(checks):     # the first failing check wins
            with m.If(cond):
                m.d.comb += code.eq(value)
        return code

    def _vector_checks(self, instr, sizes: _Sizes) -> _VectorChecks:
        """The VECTOR checks of docs/isa.md, one condition per error code (combinational from
        ``instr`` and ``sizes``; ``sizes.x_extent`` is x's extent, ``sizes.d`` the output's)."""
        tile = self.cfg.tile
        v = instr.vector
        is_pass, reduce = v.op == VOp.PASS, v.red != Reduce.NONE
        y_is_addr = ~is_pass & (v.ymode != YMode.IMM)       # y is the address of a second operand
        iadd_extras = (v.act != Act.NONE) | reduce | (v.fmt != VFmt.FP32) | v.itof
        field = ((v.op.as_value() >= 8) | (v.act.as_value() > Act.RSQRT.value)
                 | (v.red.as_value() > Reduce.MAX.value) | (v.fmt.as_value() > VFmt.INT8_T.value)
                 | (is_pass & ((v.ymode != YMode.REGION) | v.y.any()))
                 | (y_is_addr & v.y[LOCAL_ADDR_BITS:].any())
                 | ((v.op == VOp.IADD) & iadd_extras)
                 | (reduce & (v.fmt != VFmt.FP32)))
        size = (v.rows == 0) | (v.cols == 0)
        align = self._misaligned(v.x_addr, v.d_addr) | (y_is_addr & self._misaligned(v.y))
        # (past BAD_FIELD, y's bits 31:24 are 0 and fmt names a format)
        y = v.y[:LOCAL_ADDR_BITS]
        y_end = Mux(v.ymode == YMode.ROW, y + (v.cols << 2),
                    Mux(v.ymode == YMode.COL, y + (v.rows << 2), y + sizes.x_extent))
        d_end = Mux(reduce, v.d_addr + (v.rows << 2), v.d_addr + sizes.d)
        d_in_sp = ~reduce & (v.fmt != VFmt.FP32)
        sp = d_in_sp & (d_end > tile.scratchpad_bytes)
        acc = ((v.x_addr + sizes.x_extent > tile.accumulator_bytes)
               | (y_is_addr & (y_end > tile.accumulator_bytes))
               | (~d_in_sp & (d_end > tile.accumulator_bytes)))
        return _VectorChecks(field=field, size=size, align=align, sp=sp, acc=acc)

    # ---- descriptors (combinational from ``instr``; offered in ISSUE) ---------------------------
    def _descriptors(self, m, instr, pitches: _Pitches):
        """Drives the ``load``, ``store``, ``matmul`` and ``vector`` payloads from ``instr`` and ``pitches``
        (combinational; ``valid`` is driven by :meth:`_issue`). Returns ``in_rect``, the rectangle
        x0..x1 x y0..y1 as a node mask (SEND/RECV group, or SYNC group: same bits)."""
        cfg = self.cfg
        x, mm = instr.xfer, instr.matmul
        in_rect = Signal(cfg.noc.nodes)
        for node in range(cfg.noc.nodes):
            nx, ny = node % cfg.noc.width, node // cfg.noc.width
            m.d.comb += in_rect[node].eq((x.x0 <= nx) & (nx <= x.x1) & (x.y0 <= ny) & (ny <= x.y1))
        dest = Signal(cfg.noc.nodes)
        m.d.comb += dest.eq(Mux(x.mode != Mode.LOCAL, in_rect, 0))
        for port in (self.load, self.store):
            p = port.payload
            m.d.comb += [
                p.mode.eq(x.mode), p.space.eq(x.space), p.local_addr.eq(x.local_addr), p.pitch.eq(pitches.x),
                p.mem_addr.eq(x.mem_addr), p.stride.eq(x.stride), p.rows.eq(x.rows),
                p.row_bytes.eq(x.row_bytes), p.dest.eq(dest),
            ]
        q = self.matmul.payload
        m.d.comb += [
            q.dtype.eq(mm.dtype), q.accumulate.eq(mm.accumulate), q.m.eq(mm.m), q.n.eq(mm.n), q.k.eq(mm.k),
            q.a_addr.eq(mm.a_addr), q.b_addr.eq(mm.b_addr), q.acc_addr.eq(mm.acc_addr),
            q.a_pitch.eq(pitches.a), q.b_pitch.eq(pitches.b), q.acc_pitch.eq(pitches.acc),
        ]
        v, r = instr.vector, self.vector.payload
        m.d.comb += [
            r.op.eq(v.op), r.ymode.eq(v.ymode), r.act.eq(v.act), r.red.eq(v.red), r.fmt.eq(v.fmt),
            r.itof.eq(v.itof), r.x_addr.eq(v.x_addr), r.d_addr.eq(v.d_addr), r.y.eq(v.y),
            r.rows.eq(v.rows), r.cols.eq(v.cols), r.x_pitch.eq(pitches.vx), r.d_pitch.eq(pitches.vd),
        ]
        return in_rect

    # ---- outstanding counts, one per class ------------------------------------------------------
    def _outstanding(self, m, name, port, done):
        """``{name}_outstanding``: descriptors of one class taken by ``port`` and not yet completed
        (a ``done`` pulse). Registered: +1 in the cycle of the handshake, -1 in the cycle of the pulse
        (a pulse with the count at 0 is ignored); both in one cycle leave it unchanged."""
        count = Signal(range(self.cfg.tile.max_outstanding + 1), name=f"{name}_outstanding")
        issued = port.valid & port.ready
        retired = done & (count != 0)
        with m.If(issued & ~retired):
            m.d.sync += count.eq(count + 1)
        with m.Elif(retired & ~issued):
            m.d.sync += count.eq(count - 1)
        return count

    # ---- SYNC: own count, and whether every tile of the rectangle has caught up -----------------
    def _sync_wait(self, m, in_rect):
        """Own SYNC count (the register behind the ``sync_count`` port; updated by :meth:`_advance`)
        and ``synced``: no tile of ``in_rect`` has executed fewer SYNCs than this one, combinational
        on this cycle's ``sync_counts``."""
        cfg = self.cfg
        sync_count = Signal(SYNC_COUNT_BITS)
        behind = Signal(cfg.noc.nodes)          # tile t has executed fewer SYNCs than this one
        for node in range(cfg.noc.nodes):
            theirs = self.sync_counts[node * SYNC_COUNT_BITS:(node + 1) * SYNC_COUNT_BITS]
            diff = Signal(SYNC_COUNT_BITS, name=f"sync_diff{node}")
            m.d.comb += [diff.eq(theirs - sync_count), behind[node].eq(diff[-1])]
        synced = ~(behind & in_rect).any()
        m.d.comb += self.sync_count.eq(sync_count)
        return sync_count, synced

    # ---- the instruction loop -------------------------------------------------------------------
    def _issue(self, m, ctl: _Control, counts: _Counts, synced):
        """ISSUE: offers the descriptor of ``instr`` (``valid`` held back while ``max_outstanding``
        of its class are outstanding; it depends on state only, never on ``ready``) or waits for the
        BARRIER / SYNC / END condition. Returns ``retire``: the instruction completes in this cycle
        (a descriptor handshake, or the condition met; combinational). END does not retire: when
        nothing is outstanding it moves to STOP / DONE at the next edge."""
        room = self.cfg.tile.max_outstanding
        n_load, n_store, n_mm, n_vec = counts.load, counts.store, counts.matmul, counts.vector
        retire = Signal()      # the instruction in ISSUE completes in this cycle
        bar = ctl.instr.barrier
        with m.If(ctl.step == _Step.ISSUE):
            with m.Switch(ctl.instr.header.opcode):
                with m.Case(Opcode.LOAD):
                    m.d.comb += [self.load.valid.eq(n_load < room),
                                 retire.eq(self.load.valid & self.load.ready)]
                with m.Case(Opcode.STORE):
                    m.d.comb += [self.store.valid.eq(n_store < room),
                                 retire.eq(self.store.valid & self.store.ready)]
                with m.Case(Opcode.MATMUL):
                    m.d.comb += [self.matmul.valid.eq(n_mm < room),
                                 retire.eq(self.matmul.valid & self.matmul.ready)]
                with m.Case(Opcode.VECTOR):
                    m.d.comb += [self.vector.valid.eq(n_vec < room),
                                 retire.eq(self.vector.valid & self.vector.ready)]
                with m.Case(Opcode.BARRIER):
                    m.d.comb += retire.eq(~(bar.loads & (n_load != 0)) & ~(bar.stores & (n_store != 0))
                                          & ~(bar.matmuls & (n_mm != 0)) & ~(bar.vectors & (n_vec != 0)))
                with m.Case(Opcode.SYNC):
                    m.d.comb += retire.eq(synced)
                with m.Case(Opcode.END):
                    with m.If((n_load == 0) & (n_store == 0) & (n_mm == 0) & (n_vec == 0)):
                        m.d.sync += [ctl.step.eq(_Step.STOP), ctl.state.eq(State.DONE)]
        return retire

    def _advance(self, m, ctl: _Control, retire, code, is_sync, sync_count):
        """The step / state / pc registers: ``cmd.ready`` (high in FETCH and in a retiring cycle,
        unless stopping), FETCH -> SIZE -> CHECK -> ISSUE (or STOP with the error code), the SYNC
        count, ``clear`` and ``fault``, and the ``status`` port. One step per cycle. Priority (later
        wins): the step sequence, then ``clear``, then ``fault`` (a fault with ``clear`` in the same
        cycle still stops with FAULT; pc and ``sync_count`` are cleared)."""
        step, state, error, pc = ctl.step, ctl.state, ctl.error, ctl.pc
        stopping = self.clear | (self.fault & (state != State.ERROR))
        m.d.comb += self.cmd.ready.eq(((step == _Step.FETCH) | retire) & ~stopping)
        with m.If(retire):
            m.d.sync += [pc.eq(pc + 1), step.eq(_Step.FETCH)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [ctl.instr.eq(self.cmd.payload), step.eq(_Step.SIZE), state.eq(State.RUN)]
        with m.If(step == _Step.SIZE):
            m.d.sync += step.eq(_Step.CHECK)
        with m.If(step == _Step.CHECK):
            with m.If(code != ErrorCode.NONE):
                m.d.sync += [step.eq(_Step.STOP), state.eq(State.ERROR), error.eq(code)]
            with m.Else():
                m.d.sync += step.eq(_Step.ISSUE)
                with m.If(is_sync):
                    m.d.sync += sync_count.eq(sync_count + 1)

        with m.If(self.clear):
            m.d.sync += [step.eq(_Step.FETCH), state.eq(State.IDLE), error.eq(ErrorCode.NONE), pc.eq(0),
                         sync_count.eq(0)]
        with m.If(self.fault & (state != State.ERROR)):
            # a SYNC that a fault stops in CHECK never enters ISSUE: its count is not taken
            m.d.sync += [step.eq(_Step.STOP), state.eq(State.ERROR), error.eq(ErrorCode.FAULT)]
            with m.If((step == _Step.CHECK) & ~self.clear):
                m.d.sync += sync_count.eq(sync_count)

        m.d.comb += [self.status.state.eq(state), self.status.error.eq(error), self.status.pc.eq(pc)]
