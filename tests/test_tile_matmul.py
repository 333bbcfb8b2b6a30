# amaranth: UnusedElaboratable=no
# (the parameter checks build components that are never elaborated)
"""MATMUL path of the compute tile (scratchpad + accumulator + operand fetch + tensor core) under
Verilator against tb/models/gemm.py (tb/tile/test_matmul_engine.py)."""

import json
from dataclasses import replace

import pytest

from tessera.rtl.config import preset
from tessera.rtl.tensor.export import verilog_with_pe
from tessera.rtl.tile.matmul_engine import MatmulEngine
from tessera.tools.harness import run

# (id, params): tiny with a 16 KiB accumulator (room for the 64 x 64 FP32 D of the performance
# case; accumulator in 1 bank, a core row = one word), tiny 2 x 2 (a core row = half a word),
# ulx3s (W = 8: a core row spans 2 banks; T = 4).
CONFIGS = [
    ("tiny", {"preset": "tiny", "acc_bytes": 16384, "rounds": 12, "max_ops": 4, "max_mn": 13,
              "max_k": 24, "perf": 64}),
    ("tiny2x2", {"preset": "tiny", "rows": 2, "cols": 2, "rounds": 10, "max_ops": 4, "max_mn": 9,
                 "max_k": 20}),
    ("ulx3s", {"preset": "ulx3s", "rounds": 10, "max_ops": 3, "max_mn": 9, "max_k": 16}),
]


def engine_cfg(p):
    cfg = preset(p["preset"])
    tensor = replace(cfg.tensor, rows=p["rows"], cols=p["cols"]) if p.get("rows") else cfg.tensor
    tile = replace(cfg.tile, accumulator_bytes=p.get("acc_bytes", cfg.tile.accumulator_bytes))
    return replace(cfg, tensor=tensor, tile=tile)


@pytest.mark.randomized(cost="heavy")
@pytest.mark.parametrize("label,params", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_tile_matmul(label, params):
    cfg = engine_cfg(params)
    name = f"tile_matmul_{label}"
    text = verilog_with_pe(lambda pe: MatmulEngine(cfg, pe_module=pe), cfg.tensor, name)
    run_dir = run(None, "tessera.tb.tile.test_matmul_engine", name=name, params=params, verilog_text=text)
    if params.get("perf"):
        result = json.loads((run_dir / "matmul_perf.json").read_text())
        print(f"[tessera] {label} matmul performance: {result}")
        assert result["ratio"] <= 1.05


def test_engine_rejects_one_read_port():
    cfg = preset("tiny")
    cfg = replace(cfg, tile=replace(cfg.tile, scratchpad_read_ports=1))
    with pytest.raises(ValueError, match="scratchpad_read_ports"):
        MatmulEngine(cfg)
