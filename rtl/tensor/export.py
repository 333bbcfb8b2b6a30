"""Hierarchical Verilog export of the tensor blocks: one PE module, instantiated R x C times.

Amaranth's Verilog backend writes a copy of every sub-component, so a flat 16 x 16 array is
256 copies of the PE (with its numeric units) and takes minutes to export and build. The
hierarchical form is the same design with the PE written once: the array instantiates the
module ``<name>_pe`` and this module appends its definition.
"""

from __future__ import annotations

import re

from amaranth.back import verilog

from rtl.config import TensorConfig
from rtl.tensor.pe import ProcessingElement
from rtl.tensor.systolic_array import SystolicArray
from rtl.tensor.tensor_core import TensorCore

__all__ = ["verilog_hierarchical"]


def verilog_hierarchical(block: str, cfg: TensorConfig, name: str) -> str:
    """Verilog text of ``block`` ("tensor_core" or "systolic_array") with top module ``name``."""
    pe_name = f"{name}_pe"
    if block == "tensor_core":
        top = TensorCore(cfg, pe_module=pe_name)
    elif block == "systolic_array":
        top = SystolicArray(cfg, pe_module=pe_name)
    else:
        raise ValueError(f"block = {block!r} is not allowed; allowed: tensor_core, systolic_array")
    text = verilog.convert(top, name=name, emit_src=False)
    pe = verilog.convert(ProcessingElement(cfg.numeric, cfg.interleave), name=pe_name, emit_src=False)
    # Keep the PE a separate class in Verilator's C++ (one copy of the code, not R x C).
    header = re.search(rf"^module {re.escape(pe_name)}\(.*?\);\n", pe, re.M | re.S)
    if header is None:
        raise RuntimeError(f"module {pe_name} not found in the PE's Verilog")
    pe = pe[:header.end()] + "  /*verilator no_inline_module*/\n" + pe[header.end():]
    return text + "\n" + pe
