"""rtl.tile: the compute tile (docs/isa.md).

* :mod:`rtl.tile.isa` -- instruction formats, enums and the tile's descriptor layouts.
* :class:`Sequencer` (``tile_sequencer``): fetches, checks and issues tile instructions.
* :class:`Scratchpad` (``tile_scratchpad``): banked SRAM for A and B tiles.
"""

from rtl.tile.scratchpad import Scratchpad
from rtl.tile.sequencer import Sequencer

__all__ = ["Scratchpad", "Sequencer", "BLOCKS"]

BLOCKS: dict = {
    "tile_scratchpad": lambda cfg: Scratchpad(cfg),
    "tile_sequencer": lambda cfg: Sequencer(cfg),
}
