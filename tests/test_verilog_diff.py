"""tessera.tools.verilog_diff: the same netlist under other names is recognised, a changed one is not."""

from tessera.tools.verilog_diff import equivalent

A = """module top(clk, a, y);
  input clk; wire clk;
  input [3:0] a; wire [3:0] a;
  output y; reg y;
  wire \\u.tmp ;
  assign \\u.tmp = a[0] & a[1];
  always @(posedge clk) y <= \\u.tmp ;
endmodule
"""


def test_renamed_nets_are_the_same_netlist():
    b = A.replace("\\u.tmp ", "\\u.other ").replace("a[", "in_a[").replace(" a;", " in_a;")
    b = b.replace(", a,", ", in_a,")
    assert equivalent(A, b).startswith("same (up to 2 renamed")


def test_a_changed_operator_or_a_merged_net_differs():
    assert not equivalent(A, A.replace("&", "|")).startswith("same")
    # two nets renamed to one name: not one-to-one
    assert not equivalent(A, A.replace("\\u.tmp ", "a ")).startswith("same")
