"""UART-to-AXI4-Lite bridge: a PC reads and writes 32-bit words of an AXI4-Lite slave over a serial line."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.bus.axi import AXI4LiteSignature

__all__ = ["UartAxiLiteBridge", "CMD_WRITE", "CMD_READ", "REPLY_BAD_COMMAND"]

CMD_WRITE = 0x57  # 'W', then address (4 bytes, little-endian), then data (4 bytes, little-endian)
CMD_READ = 0x52  # 'R', then address (4 bytes, little-endian)
REPLY_BAD_COMMAND = 0xFE


class UartAxiLiteBridge(wiring.Component):
    """Byte-stream protocol to AXI4-Lite master (``m_axil_*``, 32-bit address and data).

    Protocol (bytes on ``i`` from the host, on ``o`` to the host; multi-byte fields little-endian):

    * ``'W' a0 a1 a2 a3 d0 d1 d2 d3``: write word ``d`` at byte address ``a`` (all strobes set).
      Reply: one byte, the BRESP (0 OKAY, 2 SLVERR, 3 DECERR).
    * ``'R' a0 a1 a2 a3``: read the word at ``a``. Reply: five bytes, RRESP then ``d0..d3``.
    * any other command byte: reply ``0xFE`` and wait for the next command.

    One transaction at a time: the reply is sent before the next command byte is taken, so the
    host can pipeline commands and read the replies in order. If a command's argument bytes stop
    arriving for ``frame_timeout`` cycles, the partial command is dropped (so a host that lost
    a byte resynchronises by waiting, then sending a fresh command).

    Back-pressure: ``i`` is only taken while receiving a command; ``o`` is held until taken.
    Error behaviour: AXI error responses are passed to the host in the reply byte. A slave that
    never completes a handshake stalls the bridge until reset (AXI4-Lite has no abort).
    """

    def __init__(self, *, frame_timeout: int = 1 << 20):
        if isinstance(frame_timeout, bool) or not isinstance(frame_timeout, int) or frame_timeout < 16:
            raise ValueError(f"UartAxiLiteBridge.frame_timeout = {frame_timeout!r}; allowed: integer >= 16")
        self.frame_timeout = frame_timeout
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "m_axil": Out(AXI4LiteSignature(addr_bits=32, data_bits=32)),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.m_axil

        is_write = Signal()
        args = Signal(64)  # address in the low word, write data in the high word
        count = Signal(range(9))  # argument bytes still expected
        idle = Signal(range(self.frame_timeout + 1))
        reply = Signal(40)  # resp byte, then data bytes
        reply_left = Signal(range(6))
        aw_done = Signal()
        w_done = Signal()

        def send(nbytes, value):
            m.d.sync += [reply.eq(value), reply_left.eq(nbytes)]
            m.next = "Reply"

        m.d.comb += [
            # Bytes shift in from the top: a write's address ends in the low word and its data in
            # the high word; a read's 4 address bytes end in the high word.
            bus.awaddr.eq(args[:32]), bus.wdata.eq(args[32:]), bus.araddr.eq(args[32:]),
            bus.wstrb.eq(0b1111), bus.awprot.eq(0), bus.arprot.eq(0),
            self.o.payload.eq(reply[:8]),
        ]

        with m.FSM():
            with m.State("Command"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [is_write.eq(self.i.payload == CMD_WRITE), idle.eq(0)]
                    with m.If(self.i.payload == CMD_WRITE):
                        m.d.sync += count.eq(8)
                        m.next = "Arguments"
                    with m.Elif(self.i.payload == CMD_READ):
                        m.d.sync += count.eq(4)
                        m.next = "Arguments"
                    with m.Else():
                        send(1, REPLY_BAD_COMMAND)
            with m.State("Arguments"):
                m.d.comb += self.i.ready.eq(1)
                m.d.sync += idle.eq(idle + 1)
                with m.If(self.i.valid):
                    m.d.sync += [args.eq(Cat(args[8:], self.i.payload)), count.eq(count - 1), idle.eq(0)]
                    with m.If(count == 1):
                        m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                        with m.If(is_write):
                            m.next = "Write"
                        with m.Else():
                            m.next = "Read"
                with m.Elif(idle == self.frame_timeout):
                    m.next = "Command"
            with m.State("Write"):
                m.d.comb += [bus.awvalid.eq(~aw_done), bus.wvalid.eq(~w_done)]
                with m.If(bus.awvalid & bus.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(bus.wvalid & bus.wready):
                    m.d.sync += w_done.eq(1)
                with m.If((aw_done | bus.awready) & (w_done | bus.wready)):
                    m.next = "WriteResponse"
            with m.State("WriteResponse"):
                m.d.comb += bus.bready.eq(1)
                with m.If(bus.bvalid):
                    send(1, bus.bresp)
            with m.State("Read"):
                m.d.comb += bus.arvalid.eq(1)
                with m.If(bus.arready):
                    m.next = "ReadData"
            with m.State("ReadData"):
                m.d.comb += bus.rready.eq(1)
                with m.If(bus.rvalid):
                    send(5, Cat(bus.rresp, Const(0, 6), bus.rdata))
            with m.State("Reply"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += [reply.eq(reply[8:]), reply_left.eq(reply_left - 1)]
                    with m.If(reply_left == 1):
                        m.next = "Command"
        return m
