"""The board's host link: serial line -> UART -> AXI4-Lite bridge -> port bank around a block."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.board.port_bank import PortBank
from tessera.rtl.board.uart import UartRx, UartTx, check_divisor
from tessera.rtl.board.uart_axil import UartAxiLiteBridge

__all__ = ["HostLink", "UartLink"]


class UartLink(wiring.Component):
    """The serial side shared by the board's links: :class:`UartRx` -> :class:`UartAxiLiteBridge`,
    replies back through :class:`UartTx`; a subclass puts its slaves behind the bridge's AXI4-Lite
    master (:meth:`elaborate_bridge` returns it: 32-bit addresses and data).

    Ports: ``rx`` in, ``tx`` out (8N1, ``divisor`` clock cycles per bit), and for LEDs ``rx_error``
    (sticky overrun or framing error) and ``busy`` (a command is in progress). Latency and
    throughput are those of the serial line: a write takes 9 + 1 bytes, a read 5 + 5 bytes.
    """

    def __init__(self, *, divisor: int, frame_timeout: int = 1 << 20):
        check_divisor(type(self).__name__, divisor)
        self.rx_unit = UartRx(divisor)
        self.tx_unit = UartTx(divisor)
        self.bridge = UartAxiLiteBridge(frame_timeout=frame_timeout)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "rx_error": Out(1), "busy": Out(1)})

    def elaborate_bridge(self, m):
        m.submodules.uart_rx = self.rx_unit
        m.submodules.uart_tx = self.tx_unit
        m.submodules.bridge = self.bridge
        wiring.connect(m, self.rx_unit.o, self.bridge.i)
        wiring.connect(m, self.bridge.o, self.tx_unit.i)
        m.d.comb += [
            self.rx_unit.rx.eq(self.rx),
            self.tx.eq(self.tx_unit.tx),
            self.rx_error.eq(self.rx_unit.overrun | self.rx_unit.frame_error),
            self.busy.eq(~self.bridge.i.ready),
        ]
        return self.bridge.m_axil


class HostLink(UartLink):
    """``block`` driven from a PC over an 8N1 serial line (:class:`UartLink`).

    The bridge's master goes to a :class:`PortBank` holding ``block``. The protocol and register
    map are in those classes' docstrings and docs/synthesis.md; ``sim/runtime/board_link.py`` is the PC side.
    """

    def __init__(self, block: wiring.Component, *, divisor: int, frame_timeout: int = 1 << 20):
        self.bank = PortBank(block)
        super().__init__(divisor=divisor, frame_timeout=frame_timeout)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = self.bank
        # The bank decodes the low 16 address bits (the connection truncates the addresses).
        master, slave = self.elaborate_bridge(m), self.bank.s_axil
        for name, member in master.signature.members.items():
            if member.flow == Out:
                m.d.comb += getattr(slave, name).eq(getattr(master, name))
            else:
                m.d.comb += getattr(master, name).eq(getattr(slave, name))
        return m
