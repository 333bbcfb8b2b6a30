"""tessera.rtl.tensor: the tensor core (R x C output-stationary systolic array, BF16 and INT8).

* :class:`ProcessingElement` (``tensor_pe``), :class:`SystolicArray` (``systolic_array``),
  :class:`TensorCore` (``tensor_core``); payload layouts and the Python API in
  :mod:`tessera.rtl.tensor.interface`. See docs/tensor.md.
"""

from tessera.rtl.tensor.export import verilog_hierarchical
from tessera.rtl.tensor.pe import ProcessingElement
from tessera.rtl.tensor.systolic_array import SystolicArray
from tessera.rtl.tensor.tensor_core import TensorCore

__all__ = ["ProcessingElement", "SystolicArray", "TensorCore", "BLOCKS"]

BLOCKS: dict = {
    "tensor_pe": lambda cfg: ProcessingElement(cfg.tensor.numeric),
    "systolic_array": lambda cfg: SystolicArray(cfg.tensor),
    "tensor_core": lambda cfg: TensorCore(cfg.tensor),
}

# The flat Amaranth export writes a copy of the PE per instance; export the arrays with one PE module.
EXPORTERS: dict = {
    name: (lambda block: lambda cfg, top: verilog_hierarchical(block, cfg.tensor, top))(name)
    for name in ("systolic_array", "tensor_core")
}
