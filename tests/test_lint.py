"""Every registered block, exported on the tiny preset, passes `verilator --lint-only -Wall`
(with the commented waiver file sim/verilator_waivers.vlt)."""

import pytest

from tessera.rtl.blocks import export_verilog, registry
from tessera.rtl.config import preset
from tessera.tools.lint import lint_file


@pytest.mark.parametrize("block", sorted(registry()))
def test_block_lints_clean(block, tmp_path):
    cfg = preset("tiny")
    path = tmp_path / f"{block}_tiny.v"
    path.write_text(export_verilog(block, cfg, f"{block}_tiny"))
    diags = lint_file(path)
    assert not diags, "\n".join(diags[:30])


@pytest.mark.parametrize(
    "rule, body",
    [
        ("UNDRIVEN", "module bad(input a, output y, output z); assign y = a; endmodule"),
        ("LATCH", "module bad(input e, input d, output reg q); always @* if (e) q = d; endmodule"),
        ("MULTIDRIVEN", "module bad(input c, input d, output reg q);"
                        " always @(posedge c) q <= d; always @(negedge c) q <= ~d; endmodule"),
    ],
)
def test_lint_catches_real_warnings(rule, body, tmp_path):
    # The waivers must not hide design bugs.
    path = tmp_path / "bad.v"
    path.write_text(body + "\n")
    diags = lint_file(path)
    assert any(rule in d for d in diags), diags
