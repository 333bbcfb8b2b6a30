"""``VectorTop``: a vector engine with the tile's real accumulator memory and scratchpad, for benches.

The bench preloads the accumulator through ``acc_dma_wr``, runs VECTOR descriptors on ``desc``,
reads the memories back through ``acc_dma_rd`` and ``sp_rd`` (scratchpad read port 0), and may
write the scratchpad through ``sp_dma_wr`` (which has priority over the engine, as the DMA has in
a tile) to put back-pressure on the engine's writes; DMA traffic on the accumulator ports does
the same to its reads and writes.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.config import FabricConfig
from tessera.rtl.tile.accumulator import Accumulator, acc_read_signature, acc_write_layout
from tessera.rtl.tile.isa import scratchpad_read_signature, scratchpad_write_layout, vector_desc_layout
from tessera.rtl.tile.matmul_engine import MatmulEngine
from tessera.rtl.tile.scratchpad import Scratchpad
from tessera.rtl.vector.engine import VectorEngine

__all__ = ["VectorTop"]


class VectorTop(wiring.Component):
    def __init__(self, cfg: FabricConfig, sfu: bool = True):
        self.cfg, self.sfu = cfg, sfu
        super().__init__({
            "desc": In(stream.Signature(vector_desc_layout(cfg))),
            "done": Out(1),
            "busy": Out(1),
            "acc_dma_wr": In(stream.Signature(acc_write_layout(cfg))),
            "acc_dma_rd": In(acc_read_signature(cfg)),
            "sp_dma_wr": In(stream.Signature(scratchpad_write_layout(cfg.tile))),
            "sp_rd": In(scratchpad_read_signature(cfg.tile)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.acc = acc = Accumulator(self.cfg)
        m.submodules.sp = sp = Scratchpad(self.cfg)
        m.submodules.vec = vec = VectorEngine(self.cfg, sfu=self.sfu)
        wiring.connect(m, wiring.flipped(self.desc), vec.desc)
        m.d.comb += [self.done.eq(vec.done), self.busy.eq(vec.busy)]
        wiring.connect(m, wiring.flipped(self.acc_dma_wr), acc.dma_wr)
        wiring.connect(m, wiring.flipped(self.acc_dma_rd), acc.dma_rd)
        wiring.connect(m, vec.x_rd, acc.vec_x_rd)
        wiring.connect(m, vec.y_rd, acc.vec_y_rd)
        wiring.connect(m, vec.acc_wr, acc.vec_wr)
        MatmulEngine.share_scratchpad_write(m, sp, self.sp_dma_wr, vec.sp_wr)
        wiring.connect(m, wiring.flipped(self.sp_rd), sp.rd0)
        return m
