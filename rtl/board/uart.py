"""8N1 UART receiver and transmitter with byte streams, for the board's host link."""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "check_divisor"]


def check_divisor(owner: str, divisor) -> None:
    if isinstance(divisor, bool) or not isinstance(divisor, int) or not 4 <= divisor <= 1 << 20:
        raise ValueError(f"{owner}.divisor = {divisor!r} is out of range; allowed: integer 4..{1 << 20} "
                         "(clock cycles per bit)")


class UartRx(wiring.Component):
    """8N1 receiver: the serial line ``rx`` in, one byte per frame on stream ``o``.

    ``divisor`` is the bit time in clock cycles (clock / baud rate). ``rx`` is synchronised
    (two flip-flops); a frame starts at a falling edge, each bit is sampled in its middle.

    Latency: ``o.valid`` rises in the middle of the stop bit. Throughput: one byte per frame
    (10 bit times). Back-pressure: one byte is held; if it has not been taken when the next
    frame completes, the new byte replaces it and ``overrun`` is set. A frame whose start bit
    is not low at mid-bit is ignored (glitch); one whose stop bit is low sets ``frame_error``
    and its byte is dropped. Both error flags are sticky until reset.
    """

    def __init__(self, divisor: int):
        check_divisor("UartRx", divisor)
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "overrun": Out(1),
            "frame_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self.divisor))
        bits = Signal(range(9))
        shreg = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("Idle"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "Start"
            with m.State("Start"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                    with m.If(rx):  # not a start bit: a glitch
                        m.next = "Idle"
                    with m.Else():
                        m.next = "Data"
            with m.State("Data"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self.divisor - 1), shreg.eq(Cat(shreg[1:], rx)), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "Stop"
            with m.State("Stop"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += self.frame_error.eq(1)
                    m.next = "Idle"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter: bytes from stream ``i`` out on the serial line ``tx`` (idle high).

    ``divisor`` is the bit time in clock cycles. Latency: the start bit begins the cycle after
    the byte is accepted. Throughput: one byte per 10 bit times; ``i.ready`` is high only while
    the line is idle. No error conditions.
    """

    def __init__(self, divisor: int):
        check_divisor("UartTx", divisor)
        self.divisor = divisor
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(10, init=0x3FF)  # stop bit, 8 data bits LSB first, start bit; shifted out LSB first
        left = Signal(range(11))

        m.d.comb += [self.i.ready.eq(left == 0), self.tx.eq(frame[0])]
        with m.If(left == 0):
            with m.If(self.i.valid):
                m.d.sync += [frame.eq(Cat(0, self.i.payload, 1)), left.eq(10), timer.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [frame.eq(Cat(frame[1:], 1)), left.eq(left - 1), timer.eq(self.divisor - 1)]
        return m
