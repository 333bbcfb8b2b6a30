"""TensorCore under Verilator: random shapes, both dtypes, accumulate, back-pressure, bad input."""

import dataclasses

from rtl.config import TensorConfig
from rtl.tensor.export import verilog_hierarchical
from rtl.tensor.tensor_core import TensorCore
from tb.harness import run


def cfg_params(cfg: TensorConfig) -> dict:
    d = dataclasses.asdict(cfg)
    return d


def run_core(cfg, name, **params):
    text = verilog_hierarchical("tensor_core", cfg, name)
    return run(TensorCore, "tb.tensor.test_core", name=name, verilog_text=text,
               params={"cfg": cfg_params(cfg), **params})


def test_core_smoke_int8_4x4():
    cfg = TensorConfig(rows=4, cols=4, max_k=64, max_m=64, max_n=64)
    run_core(cfg, "tensor_core_4x4", ops=[{"m": 4, "n": 4, "k": 3, "dtype": "int8"}])
