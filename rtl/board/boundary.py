"""A timing harness: a register on every input and output port of a block."""

from __future__ import annotations

from amaranth import Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In

__all__ = ["BoundaryRegisters"]


class BoundaryRegisters(wiring.Component):
    """``block`` with one flip-flop stage on every port bit, for out-of-context timing.

    Out of context, nextpnr only times register-to-register paths; a block whose first (or last)
    pipeline stage is combinational logic from (to) its ports would report an optimistic, or no,
    Fmax. With this wrapper every path through the block starts and ends at a flip-flop, as it
    does when the block sits between registered neighbours.

    The wrapper has the block's signature and adds one cycle of latency to every input and output,
    so it is *not* functionally equivalent for handshakes (a ready arrives a cycle late): it exists
    for synthesis only. ``boundary_ff`` is the number of flip-flops it adds (the port bits, clock
    and reset excluded); Yosys may pull some of them into DSP or block-RAM input registers.
    """

    def __init__(self, block: wiring.Component):
        if not isinstance(block, wiring.Component):
            raise ValueError("BoundaryRegisters.block must be a wiring.Component, "
                             f"not {type(block).__name__}")
        self.block = block
        super().__init__(block.signature)
        self.boundary_ff = sum(len(Value.cast(v)) for _, _, v in block.signature.flatten(block))

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = self.block
        outer = {path: Value.cast(value) for path, _, value in self.signature.flatten(self)}
        for path, member, inner in self.block.signature.flatten(self.block):
            inner = Value.cast(inner)  # a port may be a data.View of a layout
            if member.flow == In:
                m.d.sync += inner.eq(outer[path])
            else:
                m.d.sync += outer[path].eq(inner)
        return m
