"""TensorCore under Verilator: random shapes, both dtypes, accumulate, back-pressure, bad input.

Each test checks every result beat bit-exactly against tb/models/gemm.py, with its row/col/last
against the stream order of docs/tensor.md (see tb/tensor/test_core.py).
"""

import dataclasses

import pytest

from rtl.config import TensorConfig, preset
from rtl.tensor.export import verilog_hierarchical
from rtl.tensor.tensor_core import TensorCore
from tb.harness import run


def run_core(cfg, **params):
    # Same name and text as `tessera bench tensor` uses, so that they share the Verilator build.
    name = f"tensor_core_{cfg.rows}x{cfg.cols}"
    text = verilog_hierarchical("tensor_core", cfg, name)
    return run(TensorCore, "tb.tensor.test_core", name=name, verilog_text=text,
               params={"cfg": dataclasses.asdict(cfg), **params})


TINY = preset("tiny").tensor


@pytest.mark.xdist_group(name="tensor_4x4")
def test_core_4x4_random_ops():
    """Back-to-back operations switching dtype and mode, K = 1, ragged M/N, rejected descriptors."""
    ops = [
        {"m": 4, "n": 4, "k": 3, "dtype": "int8"},
        {"m": 9, "n": 7, "k": 13, "dtype": "bf16"},
        {"m": 6, "n": 5, "k": 1, "dtype": "int8", "acc": 1},
        {"m": 5, "n": 10, "k": 20, "dtype": "bf16", "acc": 1},
        {"m": 0, "n": 4, "k": 4, "dtype": "bf16", "bad": True},
        {"m": 13, "n": 3, "k": 7, "dtype": "bf16"},
        {"m": 4, "n": 4, "k": 4, "dtype": "bf16", "code": 3, "bad": True},
        {"m": 17, "n": 9, "k": 2, "dtype": "int8"},
        {"m": 3, "n": 4, "k": TINY.max_k + 1, "dtype": "int8", "bad": True},
        {"m": 1, "n": 1, "k": 1, "dtype": "bf16", "acc": 1},
        {"m": 8, "n": 12, "k": 40, "dtype": "bf16", "acc": 1},
        {"m": 11, "n": 6, "k": 33, "dtype": "int8", "acc": 1},
    ]
    run_core(TINY, ops=ops, special_prob=0.05, ab_idle=0.2, c_idle=0.2, d_ready=0.6)


@pytest.mark.xdist_group(name="tensor_4x4")
def test_core_4x4_full_rate_specials():
    """Operands every cycle, results always accepted, many special values, long K."""
    ops = [
        {"m": 16, "n": 16, "k": 64, "dtype": "bf16", "acc": 1},
        {"m": 7, "n": 13, "k": 50, "dtype": "bf16"},
        {"m": 12, "n": 8, "k": 70, "dtype": "int8", "acc": 1},
    ]
    run_core(TINY, ops=ops, special_prob=0.2)


def test_core_2x3_non_square():
    cfg = TensorConfig(rows=2, cols=3, max_m=64, max_n=64, max_k=64)
    ops = [
        {"m": 5, "n": 7, "k": 9, "dtype": "bf16", "acc": 1},
        {"m": 3, "n": 2, "k": 1, "dtype": "int8"},
        {"m": 0, "n": 3, "k": 3, "dtype": "int8", "bad": True},
        {"m": 7, "n": 8, "k": 21, "dtype": "int8", "acc": 1},
        {"m": 2, "n": 3, "k": 64, "dtype": "bf16"},
        {"m": 6, "n": 65, "k": 4, "dtype": "bf16", "bad": True},
        {"m": 4, "n": 9, "k": 5, "dtype": "bf16"},
    ]
    run_core(cfg, ops=ops, special_prob=0.05, ab_idle=0.3, c_idle=0.3, d_ready=0.5)
