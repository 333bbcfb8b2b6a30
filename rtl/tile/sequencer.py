"""The compute tile's command sequencer."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out
from tessera.rtl.config import FabricConfig
from tessera.rtl.tile.isa import (
    ACC_BYTES,
    FORMATS,
    INSTRUCTION,
    PITCH_BITS,
    SYNC_COUNT_BITS,
    Dtype,
    ErrorCode,
    Mode,
    Opcode,
    Space,
    State,
    matmul_desc_layout,
    reserved_mask,
    status_layout,
    xfer_desc_layout,
)

__all__ = ["Sequencer"]


class _Step(enum.Enum, shape=3):
    FETCH = 0   # waiting for an instruction word
    SIZE = 1    # multiplying out the extents of the word held in ``instr``
    CHECK = 2   # comparing them with the limits: the error code
    ISSUE = 3   # offering its descriptor / waiting for its BARRIER, SYNC or END condition
    STOP = 4    # DONE or ERROR, until ``clear``


class Sequencer(wiring.Component):
    """Fetches tile instructions (docs/isa.md), validates them and issues descriptors.

    Ports:

    * ``cmd`` (in, stream of :data:`tessera.rtl.tile.isa.INSTRUCTION`): the command queue.
    * ``load``, ``store`` (out, streams of :func:`tessera.rtl.tile.isa.xfer_desc_layout`): to the tensor DMA.
    * ``matmul`` (out, stream of :func:`tessera.rtl.tile.isa.matmul_desc_layout`): to the tensor-core side.
    * ``load_done``, ``store_done``, ``matmul_done`` (in): one-cycle pulses, one per completed
      descriptor of that class (a pulse with nothing outstanding is ignored).
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
    STORE and MATMUL offer their descriptor until it is taken, holding it back while
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
            "load_done": In(1),
            "store_done": In(1),
            "matmul_done": In(1),
            "fault": In(1),
            "clear": In(1),
            "status": Out(status_layout()),
            "sync_count": Out(SYNC_COUNT_BITS),
            "sync_counts": In(SYNC_COUNT_BITS * cfg.noc.nodes),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, tile = self.cfg, self.cfg.tile
        wb = tile.word_bytes
        lsb = (wb - 1).bit_length()          # address bits below a word

        instr = Signal(INSTRUCTION)
        step = Signal(_Step)
        state = Signal(State)
        error = Signal(ErrorCode)
        pc = Signal(16)
        op = instr.header.opcode

        def roundup(x):
            """``x`` rounded up to a whole word (``x`` a value in bytes)."""
            return ((x + (wb - 1)) >> lsb) << lsb

        def misaligned(*values):
            return Cat(*(v[:lsb] for v in values)).any()

        # ---- CHECK: the error code of the word in ``instr`` (docs/isa.md order) ----------------
        x, mm = instr.xfer, instr.matmul
        is_load, is_store = op == Opcode.LOAD, op == Opcode.STORE
        known = Signal()
        reserved = Signal()
        with m.Switch(op):
            for opcode, layout in FORMATS.items():
                with m.Case(opcode):
                    m.d.comb += [known.eq(1), reserved.eq((instr.raw & reserved_mask(layout)).any())]

        # Row pitches: computed from the word as it is taken, kept beside it.
        word = self.cmd.payload
        x_pitch = Signal(PITCH_BITS)
        a_pitch, b_pitch, acc_pitch = Signal(PITCH_BITS), Signal(PITCH_BITS), Signal(PITCH_BITS)
        w_bf16 = word.matmul.dtype == Dtype.BF16
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                x_pitch.eq(roundup(word.xfer.row_bytes)),
                a_pitch.eq(roundup(Mux(w_bf16, word.matmul.m << 1, word.matmul.m))),
                b_pitch.eq(roundup(Mux(w_bf16, word.matmul.n << 1, word.matmul.n))),
                acc_pitch.eq(roundup(word.matmul.n * ACC_BYTES)),
            ]
        # SIZE: the products, registered.
        x_span = Signal(36)     # (rows - 1) * stride
        x_extent = Signal(31)   # rows * pitch
        a_size, b_size, d_size = Signal(35), Signal(35), Signal(35)
        with m.If(step == _Step.SIZE):
            m.d.sync += [
                x_span.eq((x.rows - 1) * x.stride), x_extent.eq(x.rows * x_pitch),
                a_size.eq(mm.k * a_pitch), b_size.eq(mm.k * b_pitch), d_size.eq(mm.m * acc_pitch),
            ]
        group = Cat(x.x0, x.y0, x.x1, x.y1)
        x_field = ((is_load & (x.mode.as_value() == 3))
                   | (is_store & ((x.mode != Mode.LOCAL) | (x.space != Space.ACC)))
                   | ((x.mode == Mode.LOCAL) & group.any()))
        bad_rect = (x.x0 > x.x1) | (x.y0 > x.y1) | (x.x1 >= cfg.noc.width) | (x.y1 >= cfg.noc.height)
        x_group = (x.mode != Mode.LOCAL) & bad_rect
        x_size = (x.rows == 0) | (x.row_bytes == 0)
        x_align = misaligned(x.local_addr, x.mem_addr, x.stride) | (
            (x.space == Space.ACC) & x.row_bytes[:2].any())
        x_mem_end = x.mem_addr + x_span + x.row_bytes
        x_range = x_mem_end > (1 << cfg.cache.addr_bits)
        x_top = x.local_addr + x_extent
        x_sp = (x.space == Space.SP) & (x_top > tile.scratchpad_bytes)
        x_acc = (x.space == Space.ACC) & (x_top > tile.accumulator_bytes)

        m_field = mm.dtype.as_value() > Dtype.INT8.value
        m_size = ((mm.m == 0) | (mm.n == 0) | (mm.k == 0) | (mm.m > cfg.tensor.max_m)
                  | (mm.n > cfg.tensor.max_n) | (mm.k > cfg.tensor.max_k))
        m_align = misaligned(mm.a_addr, mm.b_addr, mm.acc_addr)
        m_sp = (mm.a_addr + a_size > tile.scratchpad_bytes) | (mm.b_addr + b_size > tile.scratchpad_bytes)
        m_acc = mm.acc_addr + d_size > tile.accumulator_bytes

        code = Signal(ErrorCode)
        is_xfer, is_mm, is_sync = is_load | is_store, op == Opcode.MATMUL, op == Opcode.SYNC
        checks = [
            (~known, ErrorCode.ILLEGAL_OPCODE),
            (reserved | (is_xfer & x_field) | (is_mm & m_field), ErrorCode.BAD_FIELD),
            ((is_xfer & x_group) | (is_sync & bad_rect), ErrorCode.BAD_GROUP),
            ((is_xfer & x_size) | (is_mm & m_size), ErrorCode.BAD_SIZE),
            ((is_xfer & x_align) | (is_mm & m_align), ErrorCode.MISALIGNED),
            (is_xfer & x_range, ErrorCode.ADDR_RANGE),
            ((is_xfer & x_sp) | (is_mm & m_sp), ErrorCode.SP_OVERFLOW),
            ((is_xfer & x_acc) | (is_mm & m_acc), ErrorCode.ACC_OVERFLOW),
        ]
        for cond, value in reversed(checks):     # the first failing check wins
            with m.If(cond):
                m.d.comb += code.eq(value)

        # ---- descriptors (combinational from ``instr``; offered in ISSUE) -----------------------
        # The rectangle x0..x1 x y0..y1 as a node mask (SEND/RECV group, or SYNC group: same bits).
        in_rect = Signal(cfg.noc.nodes)
        for node in range(cfg.noc.nodes):
            nx, ny = node % cfg.noc.width, node // cfg.noc.width
            m.d.comb += in_rect[node].eq((x.x0 <= nx) & (nx <= x.x1) & (x.y0 <= ny) & (ny <= x.y1))
        dest = Signal(cfg.noc.nodes)
        m.d.comb += dest.eq(Mux(x.mode != Mode.LOCAL, in_rect, 0))
        for port in (self.load, self.store):
            p = port.payload
            m.d.comb += [
                p.mode.eq(x.mode), p.space.eq(x.space), p.local_addr.eq(x.local_addr), p.pitch.eq(x_pitch),
                p.mem_addr.eq(x.mem_addr), p.stride.eq(x.stride), p.rows.eq(x.rows),
                p.row_bytes.eq(x.row_bytes), p.dest.eq(dest),
            ]
        q = self.matmul.payload
        m.d.comb += [
            q.dtype.eq(mm.dtype), q.accumulate.eq(mm.accumulate), q.m.eq(mm.m), q.n.eq(mm.n), q.k.eq(mm.k),
            q.a_addr.eq(mm.a_addr), q.b_addr.eq(mm.b_addr), q.acc_addr.eq(mm.acc_addr),
            q.a_pitch.eq(a_pitch), q.b_pitch.eq(b_pitch), q.acc_pitch.eq(acc_pitch),
        ]

        # ---- outstanding counts, one per class --------------------------------------------------
        def outstanding(name, port, done):
            count = Signal(range(tile.max_outstanding + 1), name=f"{name}_outstanding")
            issued = port.valid & port.ready
            retired = done & (count != 0)
            with m.If(issued & ~retired):
                m.d.sync += count.eq(count + 1)
            with m.Elif(retired & ~issued):
                m.d.sync += count.eq(count - 1)
            return count

        n_load = outstanding("load", self.load, self.load_done)
        n_store = outstanding("store", self.store, self.store_done)
        n_mm = outstanding("matmul", self.matmul, self.matmul_done)
        room = tile.max_outstanding

        # ---- SYNC: own count, and whether every tile of the rectangle has caught up -------------
        sync_count = Signal(SYNC_COUNT_BITS)
        behind = Signal(cfg.noc.nodes)          # tile t has executed fewer SYNCs than this one
        for node in range(cfg.noc.nodes):
            theirs = self.sync_counts[node * SYNC_COUNT_BITS:(node + 1) * SYNC_COUNT_BITS]
            diff = Signal(SYNC_COUNT_BITS, name=f"sync_diff{node}")
            m.d.comb += [diff.eq(theirs - sync_count), behind[node].eq(diff[-1])]
        synced = ~(behind & in_rect).any()
        m.d.comb += self.sync_count.eq(sync_count)

        # ---- the instruction loop --------------------------------------------------------------
        retire = Signal()      # the instruction in ISSUE completes in this cycle
        bar = instr.barrier
        with m.If(step == _Step.ISSUE):
            with m.Switch(op):
                with m.Case(Opcode.LOAD):
                    m.d.comb += [self.load.valid.eq(n_load < room),
                                 retire.eq(self.load.valid & self.load.ready)]
                with m.Case(Opcode.STORE):
                    m.d.comb += [self.store.valid.eq(n_store < room),
                                 retire.eq(self.store.valid & self.store.ready)]
                with m.Case(Opcode.MATMUL):
                    m.d.comb += [self.matmul.valid.eq(n_mm < room),
                                 retire.eq(self.matmul.valid & self.matmul.ready)]
                with m.Case(Opcode.BARRIER):
                    m.d.comb += retire.eq(~(bar.loads & (n_load != 0)) & ~(bar.stores & (n_store != 0))
                                          & ~(bar.matmuls & (n_mm != 0)))
                with m.Case(Opcode.SYNC):
                    m.d.comb += retire.eq(synced)
                with m.Case(Opcode.END):
                    with m.If((n_load == 0) & (n_store == 0) & (n_mm == 0)):
                        m.d.sync += [step.eq(_Step.STOP), state.eq(State.DONE)]

        stopping = self.clear | (self.fault & (state != State.ERROR))
        m.d.comb += self.cmd.ready.eq(((step == _Step.FETCH) | retire) & ~stopping)
        with m.If(retire):
            m.d.sync += [pc.eq(pc + 1), step.eq(_Step.FETCH)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [instr.eq(self.cmd.payload), step.eq(_Step.SIZE), state.eq(State.RUN)]
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
        return m
