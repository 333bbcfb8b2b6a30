"""tessera.rtl.vector: the vector engine's datapath units (docs/vector.md).

* :class:`ExpUnit`, :class:`RecipUnit`, :class:`RsqrtUnit`, :class:`GeluUnit`: FP32 special
  functions, bit-exact with ``tb/models/vector.py``, pipelined (one element per cycle);
* :class:`SpecialFunctions`: the four side by side, padded to one latency, chosen by ``act``;
* ``tessera.rtl.vector.engine`` (``vector_engine``): the engine of a compute tile (lanes, row
  reducer, writer), as the tile builds it: without the special functions for now.

They are built with :class:`tessera.rtl.vector.dataflow.Dataflow`, which schedules the model's
FP32 operations onto :class:`FP32Adder` / :class:`FP32Multiplier` instances.
"""

from tessera.rtl.vector.exp import ExpUnit
from tessera.rtl.vector.gelu import GeluUnit
from tessera.rtl.vector.recip import RecipUnit
from tessera.rtl.vector.rsqrt import RsqrtUnit
from tessera.rtl.vector.sfu import SpecialFunctions

__all__ = ["ExpUnit", "GeluUnit", "RecipUnit", "RsqrtUnit", "SpecialFunctions", "BLOCKS"]


def _engine(cfg):
    from tessera.rtl.vector.engine import VectorEngine

    return VectorEngine(cfg, sfu=cfg.tile.sfu)


BLOCKS: dict = {"vector_engine": _engine}
