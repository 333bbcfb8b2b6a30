"""The fabric's host port: an AXI4-Lite slave with the control and status registers (docs/csr.md).

Register map (byte addresses, 32-bit registers; ``T`` = ``cfg.tiles``, one L2 slice per tile):

* ``0x000``..``0x030`` global registers (ID, CONFIG, START, ACTIVE, CYCLES, FLUSH, counters);
* ``0x1000 + 0x40 * t`` the registers of tile ``t`` (command words, STATUS, CONTROL, QUEUE, counters);
* ``0x2000 + 0x40 * s`` the event counters of L2 slice ``s`` (``COUNTERS`` of
  :mod:`tessera.rtl.cache.layouts`, at ``+4 * i``).

The names and addresses are those of :mod:`tessera.rtl.fabric.csr_map`, declared there once.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import ResetInserter
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from tessera.rtl.bus.axi import (
    AXI_RESP_DECERR,
    AXI_RESP_OKAY,
    AXI_RESP_SLVERR,
    axil_fields,
    axil_members,
    bus_view,
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


class Csr(wiring.Component):
    """AXI4-Lite slave (16-bit byte address, 32-bit data) holding the fabric's CSRs (docs/csr.md).

    Ports: ``s_axil_*`` (flat AXI4-Lite slave, cocotbext-axi ``AxiLiteBus.from_prefix(dut,
    "s_axil")``); per tile ``t``: ``cmd_t`` (out, stream of ``INSTRUCTION``), ``status_t`` (in,
    ``status_layout()``), ``clear_t`` (out, one-cycle pulse), ``busy_cycles_t``, ``loads_t``,
    ``stores_t``, ``matmuls_t`` (in, 32); per slice ``s``: ``l2_counters_s`` (in,
    ``counters_layout()``); global: ``noc_link_flits``, ``noc_eject_flits``, ``noc_errors``,
    ``mcast_packets``, ``l2_resp_flits``, ``flush_errors`` (in, 32), ``flush_busy`` (in, T),
    ``flush`` (out, one-cycle pulse) and ``flush_op`` (out, held: 0 flush, 1 invalidate).

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
    kept after the push). ``cmd_t.valid`` is high while the FIFO has a word and the tile is started
    (START); it never depends on ``cmd_t.ready``. A word pushed into an empty queue is on offer two
    cycles after the push (when started). CONTROL bit0: ``clear_t`` pulses for one cycle (the cycle
    after the write takes effect); in that cycle the tile is un-started (``cmd_t.valid`` low) and the
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
        members = dict(axil_members("s_axil", addr_bits=ADDR_BITS, data_bits=DATA_BITS, master=False))
        for t in range(self.tiles):
            members[f"cmd_{t}"] = Out(stream.Signature(INSTRUCTION))
            members[f"status_{t}"] = In(status_layout())
            members[f"clear_{t}"] = Out(1)
            for name in TILE_COUNTERS:
                members[f"{name}_{t}"] = In(32)
        for s in range(self.slices):
            members[f"l2_counters_{s}"] = In(counters_layout())
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
        T = self.tiles
        bus = bus_view(self, "s_axil", axil_fields(ADDR_BITS, DATA_BITS))

        def word(addr: int) -> int:
            return addr >> 2

        # ---- tile state: started mask, command queues, holding registers ------------------------
        started = Signal(T)
        clear_q = Signal(T)          # registered clear pulse per tile (drives clear_t)
        hold = [[Signal(32, name=f"cmd{t}_w{i}") for i in range(3)] for t in range(T)]
        fifos = []
        for t in range(T):
            fifo = SyncFIFOBuffered(width=128, depth=self.depth)
            m.submodules[f"queue{t}"] = ResetInserter(clear_q[t])(fifo)
            fifos.append(fifo)
            cmd = getattr(self, f"cmd_{t}")
            m.d.comb += [
                cmd.valid.eq(fifo.r_rdy & started[t]),
                cmd.payload.eq(fifo.r_data),
                fifo.r_en.eq(cmd.ready & started[t]),
                getattr(self, f"clear_{t}").eq(clear_q[t]),
            ]

        active = Signal(T)
        for t in range(T):
            state = getattr(self, f"status_{t}").state
            m.d.comb += active[t].eq(started[t] & (state != State.DONE) & (state != State.ERROR))

        cycles = Signal(64)
        cycles_hi_snap = Signal(32)

        # ---- write channel -------------------------------------------------------------------
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

        wresp = Signal(2)
        flush_q = Signal()
        flush_op_q = Signal()
        clear_next = Signal(T)
        start_set = Signal(T)
        push = Signal(T)
        cycles_clear = Signal()
        m.d.comb += [self.flush.eq(flush_q), self.flush_op.eq(flush_op_q)]
        m.d.sync += [flush_q.eq(0), clear_q.eq(0)]    # pulses; set below for one cycle

        # Read-only addresses (write -> SLVERR): every mapped address not handled below.
        ro_words = [word(REG[r]) for r in ("ID", "CONFIG", "ACTIVE", "CYCLES_HI", "FLUSH_ERRORS",
                                           "NOC_LINK_FLITS", "NOC_EJECT_FLITS", "NOC_ERRORS", "MCAST_PACKETS",
                                           "L2_RESP_FLITS")]
        for t in range(T):
            ro_words += [word(tile_reg(t, r)) for r in ("STATUS", "QUEUE", "BUSY_CYCLES", "LOADS", "STORES",
                                                        "MATMULS")]
        for s in range(self.slices):
            ro_words += [word(slice_reg(s, i)) for i in range(len(L2_COUNTERS))]

        with m.Switch(aw_addr[2:]):
            with m.Case(word(REG["START"])):
                m.d.comb += [wresp.eq(AXI_RESP_OKAY), start_set.eq(wmasked[:T])]
            with m.Case(word(REG["CYCLES_LO"])):
                m.d.comb += [wresp.eq(AXI_RESP_OKAY), cycles_clear.eq(1)]
            with m.Case(word(REG["FLUSH"])):
                m.d.comb += wresp.eq(AXI_RESP_OKAY)
                with m.If(do_write & wmasked[0]):
                    m.d.sync += [flush_q.eq(1), flush_op_q.eq(wmasked[1])]
            for t in range(T):
                for i in range(3):
                    with m.Case(word(tile_reg(t, 4 * i))):
                        m.d.comb += wresp.eq(AXI_RESP_OKAY)
                        with m.If(do_write):
                            m.d.sync += hold[t][i].eq((hold[t][i] & ~bytemask) | wmasked)
                with m.Case(word(tile_reg(t, "CMD3"))):
                    m.d.comb += [
                        push[t].eq(1),
                        wresp.eq(Mux(fifos[t].w_rdy, AXI_RESP_OKAY, AXI_RESP_SLVERR)),
                    ]
                with m.Case(word(tile_reg(t, "CONTROL"))):
                    m.d.comb += [wresp.eq(AXI_RESP_OKAY), clear_next[t].eq(wmasked[0])]
            with m.Case(*ro_words):
                m.d.comb += wresp.eq(AXI_RESP_SLVERR)
            with m.Default():
                m.d.comb += wresp.eq(AXI_RESP_DECERR)

        for t in range(T):
            m.d.comb += [
                fifos[t].w_en.eq(do_write & push[t]),
                fifos[t].w_data.eq(Cat(hold[t][0], hold[t][1], hold[t][2], wmasked)),
            ]

        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), b_valid.eq(1), b_resp.eq(wresp), clear_q.eq(clear_next)]
        m.d.sync += started.eq(Mux(do_write, (started | start_set) & ~clear_next, started))
        with m.If(do_write & cycles_clear):
            m.d.sync += cycles.eq(0)
        with m.Elif(active.any()):
            m.d.sync += cycles.eq(cycles + 1)

        # ---- read channel --------------------------------------------------------------------
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

        rd_value = Signal(32)
        rd_resp = Signal(2)
        rd_cycles_lo = Signal()
        reads: list[tuple[int, object]] = [
            (REG["ID"], Const(ID_VALUE, 32)),
            (REG["CONFIG"], Const(self.config_word(), 32)),
            (REG["START"], started),
            (REG["ACTIVE"], active),
            (REG["CYCLES_LO"], cycles[:32]),
            (REG["CYCLES_HI"], cycles_hi_snap),
            (REG["FLUSH"], self.flush_busy),
            (REG["FLUSH_ERRORS"], self.flush_errors),
        ]
        reads += [(REG[n.upper()], getattr(self, n)) for n in GLOBAL_COUNTERS]
        wo_words = []
        free = [Signal(16, name=f"queue{t}_free") for t in range(T)]
        used = [Signal(16, name=f"queue{t}_used") for t in range(T)]
        for t in range(T):
            status = getattr(self, f"status_{t}")
            level = fifos[t].level
            m.d.comb += [free[t].eq(self.depth - level), used[t].eq(level)]
            reads += [
                (tile_reg(t, "STATUS"), Cat(status.state.as_value(), Const(0, 2), status.error.as_value(),
                                            Const(0, 8), status.pc)),
                (tile_reg(t, "QUEUE"), Cat(free[t], used[t])),
            ]
            reads += [(tile_reg(t, n.upper()), getattr(self, f"{n}_{t}")) for n in TILE_COUNTERS]
            wo_words += [word(tile_reg(t, r)) for r in ("CMD0", "CMD1", "CMD2", "CMD3", "CONTROL")]
        for s in range(self.slices):
            ctr = getattr(self, f"l2_counters_{s}")
            reads += [(slice_reg(s, i), getattr(ctr, n)) for i, n in enumerate(L2_COUNTERS)]

        with m.Switch(ar_addr[2:]):
            for addr, value in reads:
                with m.Case(word(addr)):
                    m.d.comb += [rd_value.eq(value), rd_resp.eq(AXI_RESP_OKAY)]
                    if addr == REG["CYCLES_LO"]:
                        m.d.comb += rd_cycles_lo.eq(1)
            with m.Case(*wo_words):
                m.d.comb += [rd_value.eq(0), rd_resp.eq(AXI_RESP_SLVERR)]
            with m.Default():
                m.d.comb += [rd_value.eq(0), rd_resp.eq(AXI_RESP_DECERR)]

        with m.If(ar_full):
            m.d.sync += [ar_full.eq(0), r_valid.eq(1), r_data.eq(rd_value), r_resp.eq(rd_resp)]
            with m.If(rd_cycles_lo):
                m.d.sync += cycles_hi_snap.eq(cycles[32:])
        return m
