"""The compute tile's command sequencer."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed
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
    SIZE = 1    # multiplying out the extents of the word in ``instr``; the checks without products
    CHECK = 2   # comparing the extents with the room above their addresses: the error code
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
    """Row pitches in bytes of the word in ``instr``, and the operands of the multipliers that
    LOAD / STORE, MATMUL and VECTOR share (registered as the word is taken from ``cmd``)."""
    x: Signal       # LOAD / STORE rows
    a: Signal       # MATMUL A rows
    b: Signal       # MATMUL B rows
    acc: Signal     # MATMUL accumulator rows
    vx: Signal      # VECTOR x rows, pitch(4 cols) (also a REGION y and an FP32 output)
    vd: Signal      # VECTOR output rows, the pitch of its ``fmt``
    # the operands of the multipliers, chosen by the opcode (SIZE multiplies them at once)
    span_rows: Signal   # x_span's rows: LOAD / STORE rows - 1
    ext_rows: Signal    # x_extent's rows: LOAD / STORE rows, VECTOR rows
    ext_pitch: Signal   # x_extent's pitch: ``x``, VECTOR ``vx``
    d_rows: Signal      # d's rows: MATMUL m, VECTOR output rows (cols if transposed)
    d_pitch: Signal     # d's pitch: ``acc``, VECTOR ``vd``


@dataclass
class _Sizes:
    """Products of the word in ``instr``, registered in SIZE. VECTOR shares the multipliers of
    LOAD / STORE and MATMUL (their operands were chosen by the opcode as the word was taken)."""
    x_span: Signal      # (rows - 1) * stride
    x_extent: Signal    # rows * pitch; VECTOR: rows * x pitch
    a: Signal           # k * A pitch
    b: Signal           # k * B pitch
    d: Signal           # m * accumulator pitch; VECTOR: output rows * output pitch


@dataclass
class _Early:
    """The conditions under which the word in ``instr`` fails each check that needs no product
    (combinational from ``instr``; registered in SIZE as one error code)."""
    field: Signal       # BAD_FIELD (beyond the reserved bits)
    size: Signal        # BAD_SIZE
    align: Signal       # MISALIGNED


@dataclass
class _Rooms:
    """Registered in SIZE from ``instr`` alone (no product on their paths) and read in CHECK: the
    code of the first failing check up to MISALIGNED, and per region the room left above its
    address (``limit - addr``, signed: negative when the address itself is past the limit) with
    the enables that say which memory's error code an extent beyond its room gives."""
    early: Signal       # ErrorCode: ILLEGAL_OPCODE .. MISALIGNED, or NONE
    early_fail: Signal  # early is not NONE
    mem: Signal         # LOAD / STORE: 2^addr_bits - mem_addr - row_bytes, against x_span
    x: Signal           # LOAD / STORE local_addr, VECTOR x_addr: against x_extent
    a: Signal           # MATMUL a_addr: against the A size
    b: Signal           # MATMUL b_addr: against the B size
    d: Signal           # MATMUL acc_addr, VECTOR d_addr (not reducing): against d
    y: Signal           # VECTOR y, a REGION: against x_extent
    range_x: Signal     # LOAD / STORE: mem gives ADDR_RANGE
    sp_x: Signal        # x gives SP_OVERFLOW (LOAD / STORE in the scratchpad)
    sp_ab: Signal       # a and b give SP_OVERFLOW (MATMUL)
    sp_d: Signal        # d gives SP_OVERFLOW (VECTOR to the scratchpad)
    acc_x: Signal       # x gives ACC_OVERFLOW (LOAD / STORE in the accumulator, VECTOR)
    acc_d: Signal       # d gives ACC_OVERFLOW (MATMUL, VECTOR FP32 rows)
    acc_y: Signal       # y gives ACC_OVERFLOW (VECTOR, y a REGION)
    acc_fixed: Signal   # ACC_OVERFLOW without a product (VECTOR: y a ROW / COL, a reduction's output)


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

    Behaviour: each instruction is taken from ``cmd`` (FETCH; the multipliers' operands and the
    row pitches are registered with it), checked in the next two cycles (SIZE multiplies out the
    extents of its regions and, from the word alone, makes the checks that need no product and
    the room left above each region's address; CHECK compares each extent with its room; the
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
    one long carry chain, and CHECK only one comparison per region and the error-code priority
    (``tessera synth --design tile_sequencer``).
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
        rooms = self._rooms(m, ctl, self._early_code(instr, known, reserved, is_sync))
        code, fail = self._error_code(m, sizes, rooms)
        in_rect = self._descriptors(m, instr, pitches)
        counts = _Counts(load=self._outstanding(m, "load", self.load, self.load_done),
                         store=self._outstanding(m, "store", self.store, self.store_done),
                         matmul=self._outstanding(m, "matmul", self.matmul, self.matmul_done),
                         vector=self._outstanding(m, "vector", self.vector, self.vector_done))
        sync_count, synced = self._sync_wait(m, in_rect)
        retire = self._issue(m, ctl, counts, synced)
        self._advance(m, ctl, retire, code, fail, is_sync, sync_count)
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
        """Row pitches (bytes, rounded up to a word) of the word on ``cmd`` and the operands of the
        shared multipliers (chosen by its opcode): registered in the cycle it is taken, so they are
        valid from SIZE on and kept beside ``instr`` until the next word."""
        word = self.cmd.payload
        x_pitch = Signal(PITCH_BITS)
        a_pitch, b_pitch, acc_pitch = Signal(PITCH_BITS), Signal(PITCH_BITS), Signal(PITCH_BITS)
        vx_pitch, vd_pitch = Signal(PITCH_BITS), Signal(PITCH_BITS)
        span_rows, ext_rows, d_rows = Signal(12), Signal(12), Signal(16)
        ext_pitch, d_pitch = Signal(PITCH_BITS), Signal(PITCH_BITS)
        w_bf16 = word.matmul.dtype == Dtype.BF16
        v = word.vector
        is_vec = word.header.opcode == Opcode.VECTOR
        transposed = (v.fmt == VFmt.BF16_T) | (v.fmt == VFmt.INT8_T)
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
        x_next, acc_next = self._roundup(word.xfer.row_bytes), self._roundup(word.matmul.n * ACC_BYTES)
        vx_next, vd_next = self._roundup(v.cols * ACC_BYTES), self._roundup(out_row_bytes)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                x_pitch.eq(x_next),
                a_pitch.eq(self._roundup(Mux(w_bf16, word.matmul.m << 1, word.matmul.m))),
                b_pitch.eq(self._roundup(Mux(w_bf16, word.matmul.n << 1, word.matmul.n))),
                acc_pitch.eq(acc_next), vx_pitch.eq(vx_next), vd_pitch.eq(vd_next),
                span_rows.eq(word.xfer.rows - 1),
                ext_rows.eq(Mux(is_vec, v.rows, word.xfer.rows)), ext_pitch.eq(Mux(is_vec, vx_next, x_next)),
                d_rows.eq(Mux(is_vec, Mux(transposed, v.cols, v.rows), word.matmul.m)),
                d_pitch.eq(Mux(is_vec, vd_next, acc_next)),
            ]
        return _Pitches(x=x_pitch, a=a_pitch, b=b_pitch, acc=acc_pitch, vx=vx_pitch, vd=vd_pitch,
                        span_rows=span_rows, ext_rows=ext_rows, ext_pitch=ext_pitch, d_rows=d_rows,
                        d_pitch=d_pitch)

    def _sizes(self, m, ctl: _Control, pitches: _Pitches) -> _Sizes:
        """SIZE: the extents of the regions of ``instr`` (one multiplier each), registered in the
        SIZE cycle and read by the checks in CHECK. A VECTOR uses the LOAD / STORE extent's
        multiplier for x and the MATMUL D's for its output (operands selected by the opcode as the
        word was taken, :meth:`_pitches`: no logic in front of the multipliers)."""
        x, mm = ctl.instr.xfer, ctl.instr.matmul
        x_span = Signal(36)     # (rows - 1) * stride
        x_extent = Signal(31)   # rows * pitch
        a_size, b_size, d_size = Signal(35), Signal(35), Signal(35)
        with m.If(ctl.step == _Step.SIZE):
            m.d.sync += [
                x_span.eq(pitches.span_rows * x.stride),
                x_extent.eq(pitches.ext_rows * pitches.ext_pitch),
                a_size.eq(mm.k * pitches.a), b_size.eq(mm.k * pitches.b),
                d_size.eq(pitches.d_rows * pitches.d_pitch),
            ]
        return _Sizes(x_span=x_span, x_extent=x_extent, a=a_size, b=b_size, d=d_size)

    def _early_code(self, instr, known, reserved, is_sync):
        """The first failing check of ``instr`` among those that need no product, ILLEGAL_OPCODE to
        MISALIGNED in docs/isa.md order (``ErrorCode.NONE`` if it passes them); combinational from
        ``instr``, registered in SIZE by :meth:`_rooms`."""
        cfg = self.cfg
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

        m_field = mm.dtype.as_value() > Dtype.INT8.value
        m_size = ((mm.m == 0) | (mm.n == 0) | (mm.k == 0) | (mm.m > cfg.tensor.max_m)
                  | (mm.n > cfg.tensor.max_n) | (mm.k > cfg.tensor.max_k))
        m_align = self._misaligned(mm.a_addr, mm.b_addr, mm.acc_addr)

        v = self._vector_early(instr)
        is_xfer, is_mm, is_vec = is_load | is_store, op == Opcode.MATMUL, op == Opcode.VECTOR
        checks = [
            (~known, ErrorCode.ILLEGAL_OPCODE),
            (reserved | (is_xfer & x_field) | (is_mm & m_field) | (is_vec & v.field), ErrorCode.BAD_FIELD),
            ((is_xfer & x_group) | (is_sync & bad_rect), ErrorCode.BAD_GROUP),
            ((is_xfer & x_size) | (is_mm & m_size) | (is_vec & v.size), ErrorCode.BAD_SIZE),
            ((is_xfer & x_align) | (is_mm & m_align) | (is_vec & v.align), ErrorCode.MISALIGNED),
        ]
        code = Const(ErrorCode.NONE.value, ErrorCode)
        for cond, value in reversed(checks):     # the first failing check wins
            code = Mux(cond, value, code)
        return code

    def _vector_early(self, instr) -> _Early:
        """The VECTOR checks of docs/isa.md that need no product: BAD_FIELD, BAD_SIZE, MISALIGNED
        (combinational from ``instr``)."""
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
        return _Early(field=field, size=size, align=align)

    def _rooms(self, m, ctl: _Control, early) -> _Rooms:
        """SIZE: registers ``early`` (:meth:`_early_code`) and, per region of ``instr``, the room
        left above its address in its memory, with the enables of the range checks (docs/isa.md:
        ADDR_RANGE, SP_OVERFLOW, ACC_OVERFLOW); the VECTOR ranges that need no product (y a ROW or
        COL, a reduction's output column) are decided here. Beside :meth:`_sizes`, so CHECK compares
        each registered extent with a registered room."""
        tile, instr = self.cfg.tile, ctl.instr
        sp_bytes, acc_bytes = tile.scratchpad_bytes, tile.accumulator_bytes
        x, mm, v = instr.xfer, instr.matmul, instr.vector
        op = instr.header.opcode
        is_xfer = (op == Opcode.LOAD) | (op == Opcode.STORE)
        is_mm, is_vec = op == Opcode.MATMUL, op == Opcode.VECTOR
        x_in_sp = x.space == Space.SP
        reduce = v.red != Reduce.NONE
        y_is_addr = (v.op != VOp.PASS) & (v.ymode != YMode.IMM)
        d_in_sp = ~reduce & (v.fmt != VFmt.FP32)
        # (past BAD_FIELD, y's bits 31:24 are 0 and fmt names a format)
        y = v.y[:LOCAL_ADDR_BITS]
        acc_fixed = ((y_is_addr & (v.ymode == YMode.ROW) & (y + (v.cols << 2) > acc_bytes))
                     | (y_is_addr & (v.ymode == YMode.COL) & (y + (v.rows << 2) > acc_bytes))
                     | (reduce & (v.d_addr + (v.rows << 2) > acc_bytes)))

        local, mem = LOCAL_ADDR_BITS + 2, 34     # signed widths: limit - addr, +-2^24 / +-2^33

        def room(limit, addr, width=local):
            return (Const(0, signed(width)) + limit - addr)[:width].as_signed()

        r = _Rooms(early=Signal(ErrorCode, name="early_code"), early_fail=Signal(),
                   mem=Signal(signed(mem), name="mem_room"),
                   **{f: Signal(signed(local), name=f"{f}_room") for f in ("x", "a", "b", "d", "y")},
                   **{f: Signal(name=f) for f in ("range_x", "sp_x", "sp_ab", "sp_d", "acc_x", "acc_d",
                                                  "acc_y", "acc_fixed")})
        with m.If(ctl.step == _Step.SIZE):
            m.d.sync += [
                r.early.eq(early), r.early_fail.eq(early != ErrorCode.NONE),
                r.mem.eq(room(1 << self.cfg.cache.addr_bits, x.mem_addr + x.row_bytes, width=mem)),
                r.x.eq(Mux(is_vec, room(acc_bytes, v.x_addr),
                           room(Mux(x_in_sp, sp_bytes, acc_bytes), x.local_addr))),
                r.a.eq(room(sp_bytes, mm.a_addr)), r.b.eq(room(sp_bytes, mm.b_addr)),
                r.d.eq(Mux(is_vec, room(Mux(d_in_sp, sp_bytes, acc_bytes), v.d_addr),
                           room(acc_bytes, mm.acc_addr))),
                r.y.eq(room(acc_bytes, y)),
                r.range_x.eq(is_xfer), r.sp_x.eq(is_xfer & x_in_sp), r.sp_ab.eq(is_mm),
                r.sp_d.eq(is_vec & d_in_sp),
                r.acc_x.eq((is_xfer & ~x_in_sp) | is_vec), r.acc_d.eq(is_mm | (is_vec & ~reduce & ~d_in_sp)),
                r.acc_y.eq(is_vec & y_is_addr & (v.ymode == YMode.REGION)),
                r.acc_fixed.eq(is_vec & acc_fixed),
            ]
        return r

    @staticmethod
    def _exceeds(size, room):
        """``size > room``: ``size`` unsigned, ``room`` a signed register (negative: always). One
        comparison as wide as ``room``, the bits of ``size`` above it ORed beside it."""
        w = len(room) - 1
        above = size[w:].any() if len(size) > w else 0
        return room[-1] | above | (size[:w] > room[:w])

    def _error_code(self, m, sizes: _Sizes, rooms: _Rooms):
        """CHECK: ``code``, the error code of ``instr`` (``ErrorCode.NONE`` if it passes), the first
        failing check in docs/isa.md order: the registered code of the checks without products, else
        each extent of ``sizes`` against its room of ``rooms`` (one comparison per region; both
        registered in SIZE); and ``fail``, ``code`` is not NONE. Combinational; valid in CHECK."""
        r = rooms
        over_x = self._exceeds(sizes.x_extent, r.x)
        over_d = self._exceeds(sizes.d, r.d)
        addr_range = r.range_x & self._exceeds(sizes.x_span, r.mem)
        over_ab = self._exceeds(sizes.a, r.a) | self._exceeds(sizes.b, r.b)
        sp = (r.sp_x & over_x) | (r.sp_ab & over_ab) | (r.sp_d & over_d)
        acc = ((r.acc_x & over_x) | (r.acc_d & over_d) | (r.acc_y & self._exceeds(sizes.x_extent, r.y))
               | r.acc_fixed)
        code = Signal(ErrorCode)
        m.d.comb += code.eq(r.early)
        with m.If(r.early == ErrorCode.NONE):
            with m.If(addr_range):
                m.d.comb += code.eq(ErrorCode.ADDR_RANGE)
            with m.Elif(sp):
                m.d.comb += code.eq(ErrorCode.SP_OVERFLOW)
            with m.Elif(acc):
                m.d.comb += code.eq(ErrorCode.ACC_OVERFLOW)
        return code, r.early_fail | addr_range | sp | acc

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

    def _advance(self, m, ctl: _Control, retire, code, fail, is_sync, sync_count):
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
            m.d.sync += [ctl.instr.eq(self.cmd.payload), step.eq(_Step.SIZE)]
            # (a word taken in a retiring cycle finds the state RUN already: ``retire`` stays off
            # the state register's path)
            with m.If(step == _Step.FETCH):
                m.d.sync += state.eq(State.RUN)
        with m.If(step == _Step.SIZE):
            m.d.sync += step.eq(_Step.CHECK)
        with m.If(step == _Step.CHECK):
            with m.If(fail):
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
