"""tessera.rtl.numeric: the arithmetic units replicated in every processing element.

* :class:`BF16Multiplier` (``bf16_mul``): bfloat16 x bfloat16 -> binary32, RNE.
* :class:`FP32Adder` (``fp32_add``): binary32 + binary32, RNE.
* :class:`Int8Mac` (``int8_mac``): int32 + int8 x int8, wrapping.
* :class:`FP32Multiplier` (``fp32_mul``): binary32 x binary32, RNE -- for the vector engine
  (docs/vector.md), not the PEs; latency 3 until the engine's configuration chooses it.

Each is pipelined with one result per cycle, a clock enable ``en`` and a ``latency``
parameter; the factories below take it from ``FabricConfig.tensor.numeric``.
See docs/numerics.md.
"""

from tessera.rtl.numeric.bf16_mul import BF16Multiplier
from tessera.rtl.numeric.fp32_add import FP32Adder
from tessera.rtl.numeric.fp32_mul import FP32Multiplier
from tessera.rtl.numeric.int8_mac import Int8Mac

__all__ = ["BF16Multiplier", "FP32Adder", "FP32Multiplier", "Int8Mac", "BLOCKS"]

BLOCKS: dict = {
    "bf16_mul": lambda cfg: BF16Multiplier(latency=cfg.tensor.numeric.fmul_latency),
    "fp32_add": lambda cfg: FP32Adder(latency=cfg.tensor.numeric.fadd_latency),
    "int8_mac": lambda cfg: Int8Mac(latency=cfg.tensor.numeric.mac8_latency),
    "fp32_mul": lambda cfg: FP32Multiplier(),
}
