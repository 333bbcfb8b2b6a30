"""The board's host link (UART -> AXI4-Lite bridge -> port bank) under Verilator, and its bitstream path."""

import gc
import warnings

import pytest
from amaranth import Module, Signal
from amaranth.hdl import UnusedElaboratable
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.board.host_link import HostLink
from tessera.rtl.board.port_bank import PortBank, port_map
from tessera.rtl.board.uart import UartRx
from tessera.rtl.board.uart_axil import UartAxiLiteBridge
from tessera.tools.harness import run


class _Accumulator(wiring.Component):
    """s = a + b (registered); acc = load ? a[:32] : acc + b; count = cycles run (16 bits)."""

    a: In(40)
    b: In(20)
    load: In(1)
    s: Out(41)
    acc: Out(32)
    count: Out(16)

    def elaborate(self, platform):
        m = Module()
        acc = Signal(32)
        m.d.sync += [self.s.eq(self.a + self.b), self.count.eq(self.count + 1)]
        with m.If(self.load):
            m.d.sync += acc.eq(self.a[:32])
        with m.Else():
            m.d.sync += acc.eq(acc + self.b)
        m.d.comb += self.acc.eq(acc)
        return m


@pytest.mark.randomized
def test_host_link_drives_block_over_uart():
    block = _Accumulator()
    fields = [[f.name, f.output, f.offset, f.width] for f in port_map(block)]
    run(HostLink(block, divisor=8, frame_timeout=400), "tessera.tb.synth.test_host_link",
        name="synth_host_link",
        params={"fields": fields, "divisor": 8, "frame_timeout": 400, "rounds": 24})


def test_bad_parameters_raise():
    # The half-built components are never elaborated; keep Amaranth's UnusedElaboratable quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="divisor"):
            UartRx(3)
        with pytest.raises(ValueError, match="frame_timeout"):
            UartAxiLiteBridge(frame_timeout=2)
        with pytest.raises(ValueError, match="block"):
            PortBank(object())
        gc.collect()


@pytest.mark.randomized(cost="heavy")
def test_fabric_link_runs_gemm_over_uart():
    """The board's fabric (ulx3s preset) behind the UART bridge with block-RAM memory: the PC-side
    GEMM sequence of sim/runtime/board_gemm.py over a simulated serial line, checked bit-exactly."""
    import dataclasses

    from tessera.rtl.board.fabric_link import FabricLink
    from tessera.rtl.config import preset
    from tessera.rtl.fabric import fabric_verilog

    cfg = preset("ulx3s")
    divisor, memory_bytes = 4, 4096
    text = fabric_verilog(cfg, "fabric_link_ulx3s", wrap=lambda fabric: FabricLink(
        cfg, divisor=divisor, memory_bytes=memory_bytes, frame_timeout=4000, fabric=fabric))
    jobs = [(5, 7, 9, "int8", False), (6, 3, 11, "bf16", True)]
    run(None, "tessera.tb.synth.test_fabric_link", name="fabric_link_ulx3s", verilog_text=text,
        params={"cfg": dataclasses.asdict(cfg), "divisor": divisor, "memory_bytes": memory_bytes,
                "jobs": jobs})
