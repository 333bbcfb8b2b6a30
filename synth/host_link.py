"""The board's host link: serial line -> UART -> AXI4-Lite bridge -> port bank around a block."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.bus.axi import axil_fields, bus_view
from synth.port_bank import PortBank
from synth.uart import UartRx, UartTx, check_divisor
from synth.uart_axil import UartAxiLiteBridge

__all__ = ["HostLink"]


class HostLink(wiring.Component):
    """``block`` driven from a PC over an 8N1 serial line (``rx`` in, ``tx`` out).

    :class:`UartRx` -> :class:`UartAxiLiteBridge` -> :class:`PortBank` (which holds ``block``),
    replies back through :class:`UartTx`. ``divisor`` is the bit time in clock cycles. The protocol
    and register map are in those classes' docstrings and docs/synthesis.md; ``synth/host.py`` is
    the PC side.

    Status outputs for LEDs: ``rx_error`` (sticky overrun or framing error), ``busy`` (a command is
    in progress). Latency and throughput are those of the serial line: a write takes 9 + 1 bytes,
    a read 5 + 5 bytes.
    """

    def __init__(self, block: wiring.Component, *, divisor: int, frame_timeout: int = 1 << 20):
        check_divisor("HostLink", divisor)
        self.rx_unit = UartRx(divisor)
        self.tx_unit = UartTx(divisor)
        self.bridge = UartAxiLiteBridge(frame_timeout=frame_timeout)
        self.bank = PortBank(block)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "rx_error": Out(1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = self.rx_unit
        m.submodules.uart_tx = self.tx_unit
        m.submodules.bridge = self.bridge
        m.submodules.bank = self.bank
        wiring.connect(m, self.rx_unit.o, self.bridge.i)
        wiring.connect(m, self.bridge.o, self.tx_unit.i)
        fields = axil_fields(32, 32)
        master = bus_view(self.bridge, "m_axil", fields)
        slave = bus_view(self.bank, "s_axil", axil_fields(16, 32))
        for name, _, direction in fields:
            a, b = getattr(master, name), getattr(slave, name)
            if direction == "out":
                m.d.comb += b.eq(a)  # the bank decodes the low 16 address bits
            else:
                m.d.comb += a.eq(b)
        m.d.comb += [
            self.rx_unit.rx.eq(self.rx),
            self.tx.eq(self.tx_unit.tx),
            self.rx_error.eq(self.rx_unit.overrun | self.rx_unit.frame_error),
            self.busy.eq(~self.bridge.i.ready),
        ]
        return m
