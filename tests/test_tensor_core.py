"""TensorCore under Verilator: random shapes, both dtypes, accumulate, back-pressure, bad input."""

import dataclasses

from rtl.config import preset
from rtl.tensor.export import verilog_hierarchical
from rtl.tensor.tensor_core import TensorCore
from tb.harness import run


def run_core(cfg, name, **params):
    text = verilog_hierarchical("tensor_core", cfg, name)
    return run(TensorCore, "tb.tensor.test_core", name=name, verilog_text=text,
               params={"cfg": dataclasses.asdict(cfg), **params})


TINY = preset("tiny").tensor


def test_core_4x4_random_ops():
    ops = [
        {"m": 4, "n": 4, "k": 3, "dtype": "int8"},
        {"m": 9, "n": 7, "k": 13, "dtype": "bf16"},
        {"m": 6, "n": 5, "k": 1, "dtype": "int8", "acc": 1},
        {"m": 5, "n": 10, "k": 20, "dtype": "bf16", "acc": 1},
        {"m": 0, "n": 4, "k": 4, "dtype": "bf16", "bad": True},
        {"m": 13, "n": 3, "k": 7, "dtype": "bf16"},
        {"m": 4, "n": 4, "k": 4, "dtype": "bf16", "code": 3, "bad": True},
        {"m": 17, "n": 9, "k": 2, "dtype": "int8"},
        {"m": 1, "n": 1, "k": 1, "dtype": "bf16", "acc": 1},
    ]
    run_core(TINY, "tensor_core_4x4", ops=ops, special_prob=0.05, ab_idle=0.2, c_idle=0.2, d_ready=0.6)
