"""NoC regression: random traffic on small meshes under Verilator, plus parameter checks."""

import json

import pytest

from rtl.config import NocConfig
from tb.harness import run
from tb.noc.flat_mesh import FlatMesh, mesh_verilog


def run_mesh(name, *, width, height, vcs=2, depth=4, local_ports=1, flit_bits=32, testcase="traffic",
             **params):
    cfg = NocConfig(width=width, height=height, flit_bits=flit_bits, vcs=vcs, depth=depth,
                    local_ports=local_ports)
    params = dict(width=width, height=height, flit_bits=flit_bits, vcs=vcs, depth=depth,
                  local_ports=local_ports, **params)
    run_dir = run(lambda: FlatMesh(cfg), "tb.noc.test_mesh", name=name, params=params, testcase=testcase,
                  verilog_text=mesh_verilog(cfg, name))
    out = "broadcast.json" if testcase == "broadcast" else "result.json"
    return json.loads((run_dir / out).read_text())


def test_noc_1x1_mixed():
    r = run_mesh("noc_1x1", width=1, height=1, local_ports=2, pattern="uniform", rate=0.6, cycles=600,
                 flits_min=1, flits_max=4, mcast_prob=0.2, bad_prob=0.05, ready_prob=0.5)
    assert r["copies_delivered"] > 100


def test_noc_1x3_multiflit_backpressure():
    r = run_mesh("noc_1x3", width=1, height=3, pattern="uniform", rate=0.7, cycles=800,
                 flits_min=1, flits_max=5, mcast_prob=0.15, bad_prob=0.03, ready_prob=0.6)
    assert r["copies_delivered"] > 100


def test_noc_3x1_multiflit_backpressure():
    r = run_mesh("noc_3x1", width=3, height=1, vcs=1, depth=3, pattern="bitcomp", rate=0.9, cycles=800,
                 flits_min=1, flits_max=3, mcast_prob=0.15, bad_prob=0.03, ready_prob=0.7)
    assert r["copies_delivered"] > 100


def test_noc_2x2_two_endpoints_past_saturation():
    # Several load phases up to and past saturation, two endpoints per node, both classes.
    r = run_mesh("noc_2x2", width=2, height=2, local_ports=2, vcs=1, pattern="uniform", rates=[0.2, 1.0],
                 cycles=500, flits_min=1, flits_max=4, mcast_prob=0.2, bad_prob=0.03, ready_prob=0.8)
    assert all(pt["copies_delivered"] > 100 for pt in r["points"])


def test_noc_4x4_transpose_and_broadcast():
    r = run_mesh("noc_4x4", width=4, height=4, pattern="transpose", rates=[0.3, 1.0], cycles=400,
                 flits_min=1, flits_max=2, mcast_prob=0.05, bad_prob=0.02, ready_prob=0.8)
    assert all(pt["copies_delivered"] > 500 for pt in r["points"])
    # One source to all 16 nodes: exactly the 15 XY-tree links, last copy within 2 cycles of a
    # unicast to the farthest node (the testbench asserts the link counts).
    b = run_mesh("noc_4x4", width=4, height=4, testcase="broadcast", src=0, flits=1)
    assert b["multicast_links"] == b["tree_edges"] == 15
    assert b["multicast_latency"] <= b["unicast_latency"] + 2
    # Zero-load latency: at most 2 cycles per hop plus a constant.
    assert b["unicast_latency"] <= 2 * b["unicast_hops"] + 4


def test_noc_bad_parameters():
    from rtl.noc.ni import NetworkInterface
    from rtl.noc.router import Router

    cfg = NocConfig(width=2, height=2)
    with pytest.raises(ValueError, match="outside"):
        Router(cfg, 2, 0)
    with pytest.raises(ValueError, match="port"):
        NetworkInterface(cfg, 0, 2)
    with pytest.raises(ValueError, match="NocConfig.width"):
        NocConfig(width=9)
    with pytest.raises(ValueError, match="NocConfig.vcs"):
        NocConfig(vcs=0)


def test_noc_bench_arguments(capsys):
    from sim.bench_noc import parse_mesh
    from sim.cli import main

    assert parse_mesh("4x2") == (4, 2)
    for argv, flag in ((["--mesh", "4"], "--mesh"), (["--mesh", "9x1"], "--mesh"),
                       (["--pattern", "nope", "--rate", "0.1"], "--pattern"),
                       (["--rate", "1.5"], "--rate"), (["--vcs", "0", "--rate", "0.1"], "--vcs"),
                       (["--pattern", "multicast", "--packet-flits", "5"], "--packet-flits")):
        with pytest.raises(SystemExit) as e:
            main(["bench", "noc", "--json", "/dev/null", *argv])
        assert e.value.code == 2, (argv, flag)
        assert flag in capsys.readouterr().err, (argv, flag)


def test_noc_model_tree():
    from tb.models.noc import MeshModel, fit_line

    m = MeshModel(4, 4)
    assert len(m.xy_tree(0, range(16))) == 15
    assert len(m.xy_tree(5, range(16))) == 15
    assert len(m.xy_tree(0, [15])) == 6 == m.hops(0, 15)
    assert m.farthest(0) == 15
    assert fit_line([(1, 5), (2, 7), (3, 9)]) == (2.0, 3.0)
