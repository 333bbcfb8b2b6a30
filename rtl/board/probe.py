"""A small synthesis probe: a pipelined INT16 multiply-accumulate feeding a block-RAM delay line."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


class SynthProbe(wiring.Component):
    """Stream of 16-bit operand pairs in, stream of 40-bit running sums out.

    Exists only so that the synthesis flow can be tested on a design of known shape while the
    real blocks land: it uses one 18x18 multiplier (DSP), one block RAM and a carry chain.

    Not a functional block of Tessera (it is not in the block registry and has no testbench):
    the output is the running sum read back from a ``depth``-entry circular buffer in block RAM.
    Latency 4 cycles, one transfer per cycle; the pipeline stalls as a whole when ``o`` is not
    ready (``i.ready`` = ``o.ready | ~o.valid``). No error conditions.
    """

    def __init__(self, depth: int = 512, acc_bits: int = 40):
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"SynthProbe.depth = {depth} must be a power of two >= 2")
        if not 32 <= acc_bits <= 64:
            raise ValueError(f"SynthProbe.acc_bits = {acc_bits} is out of range; allowed: 32..64")
        self.depth, self.acc_bits = depth, acc_bits
        super().__init__({
            "i": In(stream.Signature(32)),
            "o": Out(stream.Signature(acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += advance.eq(self.o.ready | ~self.o.valid)
        m.d.comb += self.i.ready.eq(advance)

        a = Signal(16)
        b = Signal(16)
        prod = Signal(32)
        acc = Signal(self.acc_bits)
        v = Signal(3)
        m.submodules.mem = mem = Memory(shape=self.acc_bits, depth=self.depth, init=[])
        wr, rd = mem.write_port(), mem.read_port()
        ptr = Signal(range(self.depth))

        with m.If(advance):
            m.d.sync += [
                a.eq(self.i.payload[:16]), b.eq(self.i.payload[16:]),
                prod.eq(a * b),
                v.eq(v.shift_left(1) | self.i.valid),
            ]
            with m.If(v[1]):
                m.d.sync += acc.eq(acc + prod)
            with m.If(v[2]):
                m.d.sync += ptr.eq(ptr + 1)
        m.d.comb += [
            wr.addr.eq(ptr), wr.data.eq(acc), wr.en.eq(advance & v[2]),
            rd.addr.eq(ptr + 1), rd.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(v[2])
        m.d.comb += self.o.payload.eq(rd.data)
        return m
