"""``PortHarness``: a block with port-level formal properties around it (not a block).

The harness has the block's own ports, passed straight through, so that the solver drives every
input and sees every output; a subclass adds ``Assert`` / ``Assume`` statements on them in
:meth:`properties`.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

__all__ = ["PortHarness"]


class PortHarness(wiring.Component):
    def __init__(self, block: wiring.Component):
        self.block = block
        super().__init__(dict(block.signature.members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = block = self.block
        ours = self.signature.flatten(self)
        theirs = block.signature.flatten(block)
        for (_, member, mine), (_, _, its) in zip(ours, theirs, strict=True):
            m.d.comb += (its.eq(mine) if member.flow == wiring.In else mine.eq(its))
        self.properties(m)
        return m

    def properties(self, m: Module):
        raise NotImplementedError
