"""The tensor blocks elaborate and lint at every size, 16 x 16 included (its simulation is in
tests/test_tensor_core.py)."""

import re

import pytest

from tessera.rtl.blocks import registry
from tessera.rtl.config import TensorConfig
from tessera.rtl.tensor.export import verilog_hierarchical
from tessera.tools.lint import lint_file

# Modules of other subsystems inside the PE (their lint is theirs): rtl/numeric's units.
FOREIGN = re.compile(r"\.(fadd|fmul|mac)$")


def module_spans(text):
    spans, name, start = [], None, 0
    for no, line in enumerate(text.splitlines(), 1):
        m = re.match(r"module\s+\\?([^\s(]+)\s*\(", line)
        if m:
            name, start = m.group(1).lstrip("\\"), no
        elif line.startswith("endmodule"):
            spans.append((name, start, no))
    return spans


# Verilator's width warnings on Amaranth's Verilog: Yosys writes an addition as `a + 2'h3` into a
# wider result, so every arithmetic expression with a constant warns; not a design issue.
GENERATOR = re.compile(r"^%Warning-WIDTH(EXPAND|TRUNC):|^%Error: Exiting due to")


def own_diagnostics(path, text):
    spans = module_spans(text)
    own = []
    for diag in lint_file(path):
        m = re.search(rf"{re.escape(str(path))}:(\d+):", diag)
        module = next((n for n, a, b in spans if m and a <= int(m.group(1)) <= b), None)
        if GENERATOR.search(diag):
            continue
        if module is None or not FOREIGN.search(module):
            own.append(diag)
    return own


def test_registered():
    assert {"tensor_pe", "systolic_array", "tensor_core"} <= set(registry())


@pytest.mark.parametrize("rows,cols", [(16, 16), (8, 8), (3, 5)])
def test_hierarchical_export_elaborates(rows, cols):
    name = f"tensor_core_{rows}x{cols}"
    text = verilog_hierarchical("tensor_core", TensorConfig(rows=rows, cols=cols), name, optimize=False)
    assert text.count(f"{name}_pe ") >= rows * cols  # one instance per PE


# Per-module lint (Amaranth's own Verilog, sub-modules kept so that rtl/numeric's diagnostics can be
# told apart). On 16 x 16 that text makes Verilator's -Wall lint exceed 11 GB of memory (measured,
# stopped after 2 CPU-minutes): 16 x 16 is linted below on the Yosys-optimised text instead.
@pytest.mark.parametrize("rows,cols", [(4, 4), (2, 3)])
def test_hierarchical_export_lints_clean(tmp_path, rows, cols):
    name = f"tensor_core_{rows}x{cols}"
    text = verilog_hierarchical("tensor_core", TensorConfig(rows=rows, cols=cols), name, optimize=False)
    path = tmp_path / f"{name}.v"
    path.write_text(text)
    assert own_diagnostics(path, text) == []


@pytest.mark.xdist_group(name="tensor_16x16")
def test_16x16_simulated_text_lints_clean(tmp_path):
    """``verilator --lint-only -Wall`` with sim/verilator_waivers.vlt on exactly the 16 x 16 Verilog
    that is simulated (tessera.rtl.tensor.export.verilog_hierarchical, Yosys-optimised; the numeric units are
    flattened into the PE): no diagnostic at all. About 15 s of CPU and 0.4 GB."""
    name = "tensor_core_16x16"
    path = tmp_path / f"{name}.v"  # lint_file takes the top module from the file name
    path.write_text(verilog_hierarchical("tensor_core", TensorConfig(rows=16, cols=16), name))
    assert lint_file(path) == []
