"""tessera.rtl.tile: the compute tile (docs/isa.md, docs/fabric.md).

* :mod:`tessera.rtl.tile.isa` -- instruction formats, enums and the tile's descriptor layouts.
* :class:`Sequencer` (``tile_sequencer``): fetches, checks and issues tile instructions.
* :class:`Scratchpad` (``tile_scratchpad``): banked SRAM for A and B tiles.
* :mod:`.accumulator`, :mod:`.fetch`, :mod:`.matmul_engine`: accumulator memory,
  operand fetch, and the tensor core with its memories (``tile_accumulator``, ``tile_matmul``).
* ``tessera.rtl.tile.dma`` (``tile_dma``): the tensor DMA; ``tessera.rtl.tile.tile`` (``compute_tile``).
"""

from tessera.rtl.tile.scratchpad import Scratchpad
from tessera.rtl.tile.sequencer import Sequencer

__all__ = ["Scratchpad", "Sequencer", "BLOCKS", "EXPORTERS"]


def _lazy(module: str, cls: str, *args):
    def make(cfg, **kw):
        import importlib

        return getattr(importlib.import_module(module), cls)(cfg, *args, **kw)

    return make


def _tile_verilog(cfg, top: str) -> str:
    from tessera.rtl.tensor.export import verilog_with_pe

    make = _lazy("tessera.rtl.tile.tile", "ComputeTile", 0)
    return verilog_with_pe(lambda pe: make(cfg, pe_module=pe), cfg.tensor, top)


BLOCKS: dict = {
    "tile_scratchpad": lambda cfg: Scratchpad(cfg),
    "tile_sequencer": lambda cfg: Sequencer(cfg),
    "tile_accumulator": _lazy("tessera.rtl.tile.accumulator", "Accumulator"),
    "tile_matmul": _lazy("tessera.rtl.tile.matmul_engine", "MatmulEngine"),
    "tile_dma": _lazy("tessera.rtl.tile.dma", "TensorDma", 0),
    "compute_tile": _lazy("tessera.rtl.tile.tile", "ComputeTile", 0),
}
def _matmul_verilog(cfg, top: str) -> str:
    from tessera.rtl.tensor.export import verilog_with_pe

    make = _lazy("tessera.rtl.tile.matmul_engine", "MatmulEngine")
    return verilog_with_pe(lambda pe: make(cfg, pe_module=pe), cfg.tensor, top)


# Blocks holding a tensor core: the PE written once (the flat export is minutes and megabytes).
EXPORTERS: dict = {"compute_tile": _tile_verilog, "tile_matmul": _matmul_verilog}
