"""NoC regression: random traffic on small meshes under Verilator, plus parameter checks."""

import json

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
