"""The fabric's host port: an AXI4-Lite slave with the control and status registers (docs/csr.md).

Register map (byte addresses, 32-bit registers; ``T`` = ``cfg.tiles``, one L2 slice per tile):

* ``0x000``..``0x030`` global registers (ID, CONFIG, START, ACTIVE, CYCLES, FLUSH, counters);
* ``0x1000 + 0x40 * t`` the registers of tile ``t`` (command words, STATUS, CONTROL, QUEUE, counters);
* ``0x2000 + 0x40 * s`` the event counters of L2 slice ``s`` (``COUNTERS`` of
  :mod:`tessera.rtl.cache.layouts`, at ``+4 * i``).

The names and addresses are those of :mod:`tessera.rtl.fabric.csr_map`, declared there once.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import ResetInserter
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from tessera.rtl.bus.axi import (
    AXI_RESP_DECERR,
    AXI_RESP_OKAY,
    AXI_RESP_SLVERR,
    AXI4LiteSignature,
)
from tessera.rtl.cache.layouts import counters_layout
from tessera.rtl.config import FabricConfig
from tessera.rtl.fabric.csr_map import (
    ADDR_BITS,
    BLOCK_STRIDE,
    DATA_BITS,
    GLOBAL_COUNTERS,
    ID_VALUE,
    L2_COUNTERS,
    REG,
    SLICE_BASE,
    TILE_BASE,
    TILE_COUNTERS,
    slice_reg,
    tile_reg,
)
from tessera.rtl.tile.isa import INSTRUCTION, State, status_layout

__all__ = ["Csr"]


def _word(addr: int) -> int:
    """The word address (``addr[:2]`` dropped) of byte address ``addr``."""
    return addr >> 2


@dataclass
class _Regs:
    """Register-file state shared by the parts of :class:`Csr` (see :meth:`Csr._tile_state`)."""
    started: Signal         # START, per tile
    clear_q: Signal         # registered clear pulse per tile (drives clear[t])
    hold: list              # [tile][i]: the CMD<i> holding registers
    fifos: list             # the command queues, one per tile
    active: Signal          # ACTIVE, per tile
    cycles: Signal          # CYCLES (64 bits)
    cycles_hi_snap: Signal  # CYCLES high word, snapshotted by a CYCLES_LO read


@dataclass
class _WriteChannel:
    """The host write channel's registers and the write that is taking effect."""
    aw_full: Signal
    aw_addr: Signal
    w_full: Signal
    b_valid: Signal
    b_resp: Signal
    do_write: Signal        # the held write takes effect in this cycle
    bytemask: Signal        # wstrb as a 32-bit byte mask
    wmasked: Signal         # held write data, unstrobed bytes 0


@dataclass
class _WriteDecode:
    """The held write's address decoded (combinational; acted on when ``do_write``)."""
    wresp: Signal
    clear_next: Signal      # CONTROL bit0, per tile
    start_set: Signal       # START bits, per tile
    push: Signal            # CMD3, per tile
    cycles_clear: Signal    # CYCLES_LO


@dataclass
class _ReadChannel:
    """The host read channel's registers."""
    ar_full: Signal
    ar_addr: Signal
    r_valid: Signal
    r_data: Signal
    r_resp: Signal



class Csr(wiring.Component):
    """AXI4-Lite slave (16-bit byte address, 32-bit data) holding the fabric's CSRs (docs/csr.md).

    Ports: ``s_axil`` (AXI4-Lite slave, :class:`AXI4LiteSignature`; exported as ``s_axil_*`` for
    cocotbext-axi's ``AxiLiteBus.from_prefix(dut, "s_axil")``); arrays indexed by tile ``t``:
    ``cmd[t]`` (out, stream of ``INSTRUCTION``), ``status[t]`` (in, ``status_layout()``),
    ``clear[t]`` (out, one-cycle pulse), ``busy_cycles[t]``, ``loads[t]``, ``stores[t]``,
    ``matmuls[t]`` (in, 32); by slice ``s``: ``l2_counters[s]`` (in, ``counters_layout()``);
    exported as ``cmd__0__valid``, ``status__0`` ...; global: ``noc_link_flits``,
    ``noc_eject_flits``, ``noc_errors``, ``mcast_packets``, ``l2_resp_flits``, ``flush_errors``
    (in, 32), ``flush_busy`` (in, T), ``flush`` (out, one-cycle pulse) and ``flush_op`` (out, held:
    0 flush, 1 invalidate).

    Host port timing. Reads: ``arready`` is high when no read is in progress; ``rvalid`` rises two
    cycles after the AR handshake (address registered, then the register value) and stays until
    ``rready``; so one read per 3 cycles at best. Values are sampled in the cycle before ``rvalid``
    rises. Writes: AW and W are accepted independently (each ``*ready`` high while its holding
    register is empty); the write takes effect in the cycle after both are held and no B response is
    pending, and ``bvalid`` rises the cycle after that; one write per 2 cycles at best (with
    ``bready`` high). ``wstrb`` masks the written bytes (CMD0..2 keep the bytes not strobed; CMD3, START,
    FLUSH and CONTROL see them as 0; any write to CYCLES_LO clears).
    Responses: OKAY; SLVERR for a write to a read-only register, a read of a write-only register,
    or a CMD3 push into a full queue; DECERR (read data 0) for an unmapped address. ``addr[1:0]``
    is ignored.

    Command queues: one ``SyncFIFOBuffered`` of ``cmd_queue_depth`` 128-bit words per tile. A write
    to CMD3 pushes ``{CMD3, CMD2, CMD1, CMD0}`` (the CMD0..2 words are per-tile holding registers,
    kept after the push). ``cmd[t].valid`` is high while the FIFO has a word and the tile is started
    (START); it never depends on ``cmd[t].ready``. A word pushed into an empty queue is on offer two
    cycles after the push (when started). CONTROL bit0: ``clear[t]`` pulses for one cycle (the cycle
    after the write takes effect); in that cycle the tile is un-started (``cmd[t].valid`` low) and the
    queue is emptied at its end.

    CYCLES (64 bits) counts cycles in which ACTIVE != 0 (ACTIVE: started tiles whose state is
    neither DONE nor ERROR). A read of CYCLES_LO snapshots the high word, which a later read of
    CYCLES_HI returns, so LO-then-HI reads are consistent. Any write to CYCLES_LO clears it.
    FLUSH: a write with bit0 set pulses ``flush`` (the cycle after the write takes effect) and sets
    ``flush_op`` to bit1 (held until the next flush). Reads return ``flush_busy``.
    """

    def __init__(self, cfg: FabricConfig | None = None):
        cfg = cfg if cfg is not None else FabricConfig()
        if not isinstance(cfg, FabricConfig):
            raise ValueError(f"Csr cfg must be a FabricConfig, not {type(cfg).__name__}")
        if cfg.tiles > (SLICE_BASE - TILE_BASE) // BLOCK_STRIDE:
            raise ValueError(f"Csr: cfg.tiles = {cfg.tiles} does not fit the register map; allowed: 1..64")
        if cfg.tile.cmd_queue_depth > 0xFFFF:
            raise ValueError(f"Csr: cfg.tile.cmd_queue_depth = {cfg.tile.cmd_queue_depth} does not fit"
                             " QUEUE's 16-bit fields; allowed: 2..65535")
        self.cfg = cfg
        self.tiles = cfg.tiles
        self.slices = cfg.noc.nodes
        self.depth = cfg.tile.cmd_queue_depth
        T = self.tiles
        members = {
            "s_axil": In(AXI4LiteSignature(addr_bits=ADDR_BITS, data_bits=DATA_BITS)),
            "cmd": Out(stream.Signature(INSTRUCTION)).array(T),
            "status": In(status_layout()).array(T),
            "clear": Out(1).array(T),
            **{name: In(32).array(T) for name in TILE_COUNTERS},
            "l2_counters": In(counters_layout()).array(self.slices),
        }
        for name in GLOBAL_COUNTERS:
            members[name] = In(32)
        members["flush"] = Out(1)
        members["flush_op"] = Out(1)
        members["flush_busy"] = In(self.tiles)
        members["flush_errors"] = In(32)
        super().__init__(members)

    def config_word(self) -> int:
        cfg = self.cfg
        return (cfg.noc.width | cfg.noc.height << 4 | cfg.tensor.rows << 8 | cfg.tensor.cols << 16
                | cfg.mem_ports << 24)

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axil
        regs = self._tile_state(m)
        wc = self._write_channel(m, bus)
        dec = self._write_decode(m, wc, regs)
        self._write_commit(m, wc, dec, regs)
        rc = self._read_channel(m, bus)
        self._read_decode(m, rc, regs)
        return m

    # ---- tile state: started mask, command queues, holding registers ----------------------------
    def _tile_state(self, m) -> _Regs:
        """The per-tile state and the tile ports: ``started``, the registered ``clear[t]`` pulses, the
        CMD0..2 holding registers, one command queue per tile (emptied by its clear pulse) drained by
        ``cmd[t]`` (``valid`` = queue not empty and started, never dependent on ``ready``), and
        ``active``. Also creates the CYCLES counter and its high-word snapshot (driven elsewhere)."""
        T = self.tiles
        started = Signal(T)
        clear_q = Signal(T)          # registered clear pulse per tile (drives clear[t])
        hold = [[Signal(32, name=f"cmd{t}_w{i}") for i in range(3)] for t in range(T)]
        fifos = []
        for t in range(T):
            fifo = SyncFIFOBuffered(width=128, depth=self.depth)
            m.submodules[f"queue{t}"] = ResetInserter(clear_q[t])(fifo)
            fifos.append(fifo)
            cmd = self.cmd[t]
            m.d.comb += [
                cmd.valid.eq(fifo.r_rdy & started[t]),
                cmd.payload.eq(fifo.r_data),
                fifo.r_en.eq(cmd.ready & started[t]),
                self.clear[t].eq(clear_q[t]),
            ]

        active = Signal(T)
        for t in range(T):
            state = self.status[t].state
            m.d.comb += active[t].eq(started[t] & (state != State.DONE) & (state != State.ERROR))

        cycles = Signal(64)
        cycles_hi_snap = Signal(32)
        return _Regs(started=started, clear_q=clear_q, hold=hold, fifos=fifos, active=active,
                     cycles=cycles, cycles_hi_snap=cycles_hi_snap)

    # ---- write channel -----------------------------------------------------------------------
    def _write_channel(self, m, bus) -> _WriteChannel:
        """AW / W holding registers and the B response register. ``awready`` / ``wready`` are high
        while the respective holding register is empty; ``do_write`` (combinational) is high when
        both are held and no B response is pending; ``bvalid`` stays until ``bready``. Also the
        strobe as a byte mask and the masked write data."""
        aw_full = Signal()
        aw_addr = Signal(ADDR_BITS)
        w_full = Signal()
        w_data = Signal(32)
        w_strb = Signal(4)
        b_valid = Signal()
        b_resp = Signal(2)
        m.d.comb += [
            bus.awready.eq(~aw_full),
            bus.wready.eq(~w_full),
            bus.bvalid.eq(b_valid),
            bus.bresp.eq(b_resp),
        ]
        with m.If(bus.awvalid & ~aw_full):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr)]
        with m.If(bus.wvalid & ~w_full):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(b_valid & bus.bready):
            m.d.sync += b_valid.eq(0)

        do_write = Signal()
        m.d.comb += do_write.eq(aw_full & w_full & ~b_valid)
        bytemask = Signal(32)
        m.d.comb += bytemask.eq(Cat(*[w_strb[i].replicate(8) for i in range(4)]))
        wmasked = Signal(32)
        m.d.comb += wmasked.eq(w_data & bytemask)
        return _WriteChannel(aw_full=aw_full, aw_addr=aw_addr, w_full=w_full, b_valid=b_valid,
                             b_resp=b_resp, do_write=do_write, bytemask=bytemask, wmasked=wmasked)

    def _ro_words(self) -> list[int]:
        """Word addresses of the read-only registers (write -> SLVERR): every mapped address that
        :meth:`_write_decode` does not handle."""
        ro_words = [_word(REG[r]) for r in ("ID", "CONFIG", "ACTIVE", "CYCLES_HI", "FLUSH_ERRORS",
                                            "NOC_LINK_FLITS", "NOC_EJECT_FLITS", "NOC_ERRORS",
                                            "MCAST_PACKETS", "L2_RESP_FLITS")]
        for t in range(self.tiles):
            ro_words += [_word(tile_reg(t, r)) for r in ("STATUS", "QUEUE", "BUSY_CYCLES", "LOADS", "STORES",
                                                         "MATMULS")]
        for s in range(self.slices):
            ro_words += [_word(slice_reg(s, i)) for i in range(len(L2_COUNTERS))]
        return ro_words

    def _write_decode(self, m, wc: _WriteChannel, regs: _Regs) -> _WriteDecode:
        """Decodes the held AW address (combinational): the response and the per-register strobes
        taken by :meth:`_write_commit`. Writes the CMD0..2 holding registers and FLUSH directly (at
        the ``do_write`` edge), and drives ``flush`` / ``flush_op``: ``flush`` and the ``clear[t]``
        pulses are one-cycle pulses, cleared every cycle unless set here or by the commit."""
        T = self.tiles
        do_write, wmasked = wc.do_write, wc.wmasked
        wresp = Signal(2)
        flush_q = Signal()
        flush_op_q = Signal()
        clear_next = Signal(T)
        start_set = Signal(T)
        push = Signal(T)
        cycles_clear = Signal()
        m.d.comb += [self.flush.eq(flush_q), self.flush_op.eq(flush_op_q)]
        m.d.sync += [flush_q.eq(0), regs.clear_q.eq(0)]    # pulses; set below for one cycle

        ro_words = self._ro_words()
        with m.Switch(wc.aw_addr[2:]):
            with m.Case(_word(REG["START"])):
                m.d.comb += [wresp.eq(AXI_RESP_OKAY), start_set.eq(wmasked[:T])]
            with m.Case(_word(REG["CYCLES_LO"])):
                m.d.comb += [wresp.eq(AXI_RESP_OKAY), cycles_clear.eq(1)]
            with m.Case(_word(REG["FLUSH"])):
                m.d.comb += wresp.eq(AXI_RESP_OKAY)
                with m.If(do_write & wmasked[0]):
                    m.d.sync += [flush_q.eq(1), flush_op_q.eq(wmasked[1])]
            for t in range(T):
                hold = regs.hold[t]
                for i in range(3):
                    with m.Case(_word(tile_reg(t, 4 * i))):
                        m.d.comb += wresp.eq(AXI_RESP_OKAY)
                        with m.If(do_write):
                            m.d.sync += hold[i].eq((hold[i] & ~wc.bytemask) | wmasked)
                with m.Case(_word(tile_reg(t, "CMD3"))):
                    m.d.comb += [
                        push[t].eq(1),
                        wresp.eq(Mux(regs.fifos[t].w_rdy, AXI_RESP_OKAY, AXI_RESP_SLVERR)),
                    ]
                with m.Case(_word(tile_reg(t, "CONTROL"))):
                    m.d.comb += [wresp.eq(AXI_RESP_OKAY), clear_next[t].eq(wmasked[0])]
            with m.Case(*ro_words):
                m.d.comb += wresp.eq(AXI_RESP_SLVERR)
            with m.Default():
                m.d.comb += wresp.eq(AXI_RESP_DECERR)
        return _WriteDecode(wresp=wresp, clear_next=clear_next, start_set=start_set, push=push,
                            cycles_clear=cycles_clear)

    def _write_commit(self, m, wc: _WriteChannel, dec: _WriteDecode, regs: _Regs):
        """The cycle a write takes effect (``do_write``): CMD3 pushes ``{CMD3, CMD2, CMD1, CMD0}``
        into the tile's queue, the AW / W registers empty, the B response is registered (``bvalid``
        the next cycle), START / CONTROL update ``started`` and the ``clear[t]`` pulses (next cycle).
        Also the CYCLES counter: cleared by a CYCLES_LO write, else +1 per cycle with ACTIVE != 0."""
        started, cycles, do_write = regs.started, regs.cycles, wc.do_write
        for t in range(self.tiles):
            hold = regs.hold[t]
            m.d.comb += [
                regs.fifos[t].w_en.eq(do_write & dec.push[t]),
                regs.fifos[t].w_data.eq(Cat(hold[0], hold[1], hold[2], wc.wmasked)),
            ]

        with m.If(do_write):
            m.d.sync += [wc.aw_full.eq(0), wc.w_full.eq(0), wc.b_valid.eq(1), wc.b_resp.eq(dec.wresp),
                         regs.clear_q.eq(dec.clear_next)]
        m.d.sync += started.eq(Mux(do_write, (started | dec.start_set) & ~dec.clear_next, started))
        with m.If(do_write & dec.cycles_clear):
            m.d.sync += cycles.eq(0)
        with m.Elif(regs.active.any()):
            m.d.sync += cycles.eq(cycles + 1)

    # ---- read channel ------------------------------------------------------------------------
    def _read_channel(self, m, bus) -> _ReadChannel:
        """AR holding register and the R response registers: ``arready`` is high while no read is in
        progress (AR empty and no R pending); ``rvalid`` stays until ``rready``."""
        ar_full = Signal()
        ar_addr = Signal(ADDR_BITS)
        r_valid = Signal()
        r_data = Signal(32)
        r_resp = Signal(2)
        m.d.comb += [
            bus.arready.eq(~ar_full & ~r_valid),
            bus.rvalid.eq(r_valid),
            bus.rdata.eq(r_data),
            bus.rresp.eq(r_resp),
        ]
        with m.If(bus.arvalid & ~ar_full & ~r_valid):
            m.d.sync += [ar_full.eq(1), ar_addr.eq(bus.araddr)]
        with m.If(r_valid & bus.rready):
            m.d.sync += r_valid.eq(0)
        return _ReadChannel(ar_full=ar_full, ar_addr=ar_addr, r_valid=r_valid, r_data=r_data, r_resp=r_resp)

    def _read_map(self, m, regs: _Regs):
        """The readable registers as ``(byte address, value)`` pairs and the word addresses of the
        write-only ones (read -> SLVERR). Drives the per-queue free / used levels (combinational)."""
        T = self.tiles
        reads: list[tuple[int, object]] = [
            (REG["ID"], Const(ID_VALUE, 32)),
            (REG["CONFIG"], Const(self.config_word(), 32)),
            (REG["START"], regs.started),
            (REG["ACTIVE"], regs.active),
            (REG["CYCLES_LO"], regs.cycles[:32]),
            (REG["CYCLES_HI"], regs.cycles_hi_snap),
            (REG["FLUSH"], self.flush_busy),
            (REG["FLUSH_ERRORS"], self.flush_errors),
        ]
        reads += [(REG[n.upper()], getattr(self, n)) for n in GLOBAL_COUNTERS]
        wo_words = []
        free = [Signal(16, name=f"queue{t}_free") for t in range(T)]
        used = [Signal(16, name=f"queue{t}_used") for t in range(T)]
        for t in range(T):
            status = self.status[t]
            level = regs.fifos[t].level
            m.d.comb += [free[t].eq(self.depth - level), used[t].eq(level)]
            reads += [
                (tile_reg(t, "STATUS"), Cat(status.state.as_value(), Const(0, 2), status.error.as_value(),
                                            Const(0, 8), status.pc)),
                (tile_reg(t, "QUEUE"), Cat(free[t], used[t])),
            ]
            reads += [(tile_reg(t, n.upper()), getattr(self, n)[t]) for n in TILE_COUNTERS]
            wo_words += [_word(tile_reg(t, r)) for r in ("CMD0", "CMD1", "CMD2", "CMD3", "CONTROL")]
        for s in range(self.slices):
            ctr = self.l2_counters[s]
            reads += [(slice_reg(s, i), getattr(ctr, n)) for i, n in enumerate(L2_COUNTERS)]
        return reads, wo_words

    def _read_decode(self, m, rc: _ReadChannel, regs: _Regs):
        """Decodes the held AR address (combinational) and registers value and response into R in the
        cycle after the AR handshake (so ``rvalid`` rises two cycles after it). A read of CYCLES_LO
        snapshots the high word of CYCLES in the same edge."""
        rd_value = Signal(32)
        rd_resp = Signal(2)
        rd_cycles_lo = Signal()
        reads, wo_words = self._read_map(m, regs)

        with m.Switch(rc.ar_addr[2:]):
            for addr, value in reads:
                with m.Case(_word(addr)):
                    m.d.comb += [rd_value.eq(value), rd_resp.eq(AXI_RESP_OKAY)]
                    if addr == REG["CYCLES_LO"]:
                        m.d.comb += rd_cycles_lo.eq(1)
            with m.Case(*wo_words):
                m.d.comb += [rd_value.eq(0), rd_resp.eq(AXI_RESP_SLVERR)]
            with m.Default():
                m.d.comb += [rd_value.eq(0), rd_resp.eq(AXI_RESP_DECERR)]

        with m.If(rc.ar_full):
            m.d.sync += [rc.ar_full.eq(0), rc.r_valid.eq(1), rc.r_data.eq(rd_value), rc.r_resp.eq(rd_resp)]
            with m.If(rd_cycles_lo):
                m.d.sync += regs.cycles_hi_snap.eq(regs.cycles[32:])
