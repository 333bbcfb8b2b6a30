"""An AXI4-Lite register window onto every port of a block, which the host single-steps."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Signal, Value
from amaranth.hdl import EnableInserter, ResetInserter
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from tessera.rtl.bus.axi import AXI_RESP_DECERR, AXI_RESP_OKAY, AXI4LiteSignature
from tessera.rtl.export import port_name
from tessera.rtl.fabric.csr_map import ID_VALUE  # the same ID as the fabric's CSRs (docs/csr.md)

__all__ = ["PortBank", "PortField", "port_map", "REG_ID", "REG_SHAPE", "REG_STEP", "REG_CYCLES",
           "REG_RESET", "IN_BASE", "OUT_BASE", "ID_VALUE"]

REG_ID, REG_SHAPE, REG_STEP, REG_CYCLES, REG_RESET = 0x00, 0x04, 0x08, 0x0C, 0x10
IN_BASE, OUT_BASE = 0x1000, 0x2000
MAX_WORDS = 0x1000 // 4


@dataclass(frozen=True)
class PortField:
    """Where one port of the block sits in the input or output word array (bit offset, width)."""

    name: str
    output: bool
    offset: int
    width: int


def port_map(block: wiring.Component) -> list[PortField]:
    """The block's ports in signature order: inputs packed from bit 0 of the input words, outputs
    from bit 0 of the output words, each port at the bit following the previous one."""
    fields, offsets = [], {False: 0, True: 0}
    for path, member, value in block.signature.flatten(block):
        out = member.flow != In
        name = port_name(block.signature, path)     # the names of its exported Verilog
        width = len(Value.cast(value))  # a port may be a data.View of a layout
        fields.append(PortField(name, out, offsets[out], width))
        offsets[out] += width
    return fields


class PortBank(wiring.Component):
    """AXI4-Lite slave (``s_axil_*``, 16-bit address, 32-bit data) exposing ``block``'s ports.

    Register map (byte addresses):

    * ``0x0000`` ID (read ``0x54455353``, "TESS"); ``0x0004`` SHAPE: input words | output words << 16;
    * ``0x0008`` STEP: a write of N lets the block run for N clock cycles (it is clock-enabled only
      then: Amaranth's ``EnableInserter``, so its registers and memories hold otherwise); a read
      returns the cycles still to run. ``0x000C`` CYCLES: total cycles run since reset (32 bits);
    * ``0x0010`` RESET: writing 1 holds the block in reset, 0 releases it;
    * ``0x1000 + 4 i``: input word i (read/write), ``0x2000 + 4 i``: output word i (read only):
      all input (output) ports concatenated in signature order, first port in bit 0 (``port_map``).

    So a host drives any block cycle by cycle: write the inputs, STEP 1, read the outputs.
    Latency: a write answers the cycle after both AW and W arrive, a read the cycle after AR.
    Errors: an access outside the map answers DECERR (writes to it are ignored).
    """

    def __init__(self, block: wiring.Component):
        if not isinstance(block, wiring.Component):
            raise ValueError(f"PortBank.block must be a wiring.Component, not {type(block).__name__}")
        self.block = block
        self.fields = port_map(block)
        self.in_bits = sum(f.width for f in self.fields if not f.output)
        self.out_bits = sum(f.width for f in self.fields if f.output)
        self.in_words = max(1, (self.in_bits + 31) // 32)
        self.out_words = max(1, (self.out_bits + 31) // 32)
        if max(self.in_words, self.out_words) > MAX_WORDS:
            raise ValueError(f"PortBank.block has {max(self.in_bits, self.out_bits)} port bits one way; "
                             f"allowed: at most {MAX_WORDS * 32}")
        super().__init__({"s_axil": In(AXI4LiteSignature(addr_bits=16, data_bits=32))})

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axil

        run = Signal()
        hold_reset = Signal()
        left = Signal(32)
        cycles = Signal(32)
        m.d.comb += run.eq(left != 0)
        with m.If(run):
            m.d.sync += [left.eq(left - 1), cycles.eq(cycles + 1)]
        m.submodules.block = ResetInserter(hold_reset)(EnableInserter(run)(self.block))

        inputs = [Signal(32, name=f"in{i}") for i in range(self.in_words)]
        in_vec = Cat(*inputs)
        out_vec = Signal(self.out_words * 32)
        ports = [(mb.flow, Value.cast(v)) for _, mb, v in self.block.signature.flatten(self.block)]
        ins = [v for flow, v in ports if flow == In]
        outs = [v for flow, v in ports if flow != In]
        if ins:
            m.d.comb += Cat(*ins).eq(in_vec)
        if outs:
            m.d.comb += out_vec.eq(Cat(*outs))

        # Writes: take AW and W together, answer with B.
        waddr = bus.awaddr[2:]
        take_w = Signal()
        m.d.comb += [take_w.eq(bus.awvalid & bus.wvalid & ~bus.bvalid),
                     bus.awready.eq(take_w), bus.wready.eq(take_w)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        with m.If(take_w):
            m.d.sync += [bus.bvalid.eq(1), bus.bresp.eq(AXI_RESP_OKAY)]
            with m.Switch(waddr):
                with m.Case(REG_STEP >> 2):
                    m.d.sync += left.eq(bus.wdata)
                with m.Case(REG_RESET >> 2):
                    m.d.sync += hold_reset.eq(bus.wdata[0])
                for i, word in enumerate(inputs):
                    with m.Case((IN_BASE >> 2) + i):
                        m.d.sync += word.eq(bus.wdata)
                with m.Case(REG_ID >> 2, REG_SHAPE >> 2, REG_CYCLES >> 2):
                    pass  # read-only: ignored, OKAY
                with m.Case(*[(OUT_BASE >> 2) + i for i in range(self.out_words)]):
                    pass
                with m.Default():
                    m.d.sync += bus.bresp.eq(AXI_RESP_DECERR)

        # Reads: one outstanding, answered the next cycle.
        raddr = bus.araddr[2:]
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [bus.rvalid.eq(1), bus.rresp.eq(AXI_RESP_OKAY), bus.rdata.eq(0)]
            with m.Switch(raddr):
                with m.Case(REG_ID >> 2):
                    m.d.sync += bus.rdata.eq(ID_VALUE)
                with m.Case(REG_SHAPE >> 2):
                    m.d.sync += bus.rdata.eq(self.in_words | (self.out_words << 16))
                with m.Case(REG_STEP >> 2):
                    m.d.sync += bus.rdata.eq(left)
                with m.Case(REG_CYCLES >> 2):
                    m.d.sync += bus.rdata.eq(cycles)
                with m.Case(REG_RESET >> 2):
                    m.d.sync += bus.rdata.eq(hold_reset)
                for i, word in enumerate(inputs):
                    with m.Case((IN_BASE >> 2) + i):
                        m.d.sync += bus.rdata.eq(word)
                for i in range(self.out_words):
                    with m.Case((OUT_BASE >> 2) + i):
                        m.d.sync += bus.rdata.eq(out_vec[32 * i:32 * (i + 1)])
                with m.Default():
                    m.d.sync += bus.rresp.eq(AXI_RESP_DECERR)
        return m
