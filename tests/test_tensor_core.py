"""TensorCore under Verilator: random shapes, both dtypes, accumulate, back-pressure, bad input.

Each test checks every result beat bit-exactly against tb/models/gemm.py, with its row/col/last
against the stream order of docs/tensor.md (see tb/tensor/test_core.py).

Shapes, dtypes, modes and the position of the fixed edge cases are drawn from the printed seed
(``tessera.tools.harness.resolve_seed``; replay with ``SEED=N``): M, N and K are mostly not multiples of R,
C or T, and one dimension of one operation per run reaches the configuration's maximum. The same
seed drives the data and the stream timing inside the simulation.
"""

import dataclasses
import math
import random

import pytest

from tessera.cli.bench_tensor import core_verilog
from tessera.rtl.config import TensorConfig, preset
from tessera.rtl.tensor.tensor_core import TensorCore
from tessera.tools.harness import resolve_seed, run


def run_core(cfg, seed=None, **params):
    # Same name and text as `tessera bench tensor` uses, so that they share the Verilator build
    # (and, in one pytest worker, the export: core_verilog caches it).
    name = f"tensor_core_{cfg.rows}x{cfg.cols}"
    text = core_verilog(cfg, name)
    return run(TensorCore, "tessera.tb.tensor.test_core", name=name, verilog_text=text, seed=seed,
               params={"cfg": dataclasses.asdict(cfg), **params})


def est_cycles(cfg, m, n, k, d_ready=1.0, ab_idle=0.0):
    """Rough simulated cycles of one operation (docs/tensor.md: groups of T blocks, K x T steps
    each, at least the result chain's R x T rows + settle), padded for gaps and back-pressure."""
    r, c, t = cfg.rows, cfg.cols, cfg.interleave
    blocks = -(-m // r) * -(-n // c)
    groups = -(-blocks // t)
    chain = max(r * t / max(d_ready, 0.1), r * t + r + c + 8 + t)
    return int(groups * max(k * t / (1 - ab_idle), chain)) + r * t + r + c + 40


def _dim(r: random.Random, unit: int, cap: int) -> int:
    """One of M, N, K: mostly ragged (not a multiple of ``unit``), sometimes tiny, exact or large."""
    kind = r.random()
    if kind < 0.45 and unit > 1:
        v = unit * r.randint(0, 4) + r.randint(1, unit - 1)
    elif kind < 0.6:
        v = r.randint(1, unit)
    elif kind < 0.7:
        v = unit * r.randint(1, 4)
    else:  # log-uniform up to the maximum (the cycle budget of draw_ops cuts the largest)
        v = int(round(2 ** r.uniform(0, math.log2(cap))))
    return max(1, min(v, cap))


def draw_ops(r: random.Random, cfg: TensorConfig, count: int, budget: int, *, d_ready=1.0, ab_idle=0.0,
             fixed=(), at_max=True, p_acc=0.5):
    """``count`` random valid operations whose estimated cycles fit ``budget`` (each at most a third
    of it), plus the ``fixed`` operations (edge cases) at random positions. With ``at_max``, one
    operation has one dimension (drawn) at the configuration's maximum and the others small
    (at most one block row/column, K <= 3)."""
    ops, spent = [], 0
    if at_max:
        dim = r.choice("mnk")
        # the other two small: one block row or column, K <= 3 (the simulation stays short)
        shape = {"m": r.randint(1, cfg.rows), "n": r.randint(1, cfg.cols), "k": r.randint(1, 3),
                 dim: getattr(cfg, f"max_{dim}")}
        ops.append({**shape, "dtype": r.choice(["bf16", "int8"]), "acc": int(r.random() < p_acc)})
        spent += est_cycles(cfg, shape["m"], shape["n"], shape["k"], d_ready, ab_idle)
    tries = 0
    while len(ops) < count + at_max and tries < 1000:
        tries += 1
        m, n = _dim(r, cfg.rows, cfg.max_m), _dim(r, cfg.cols, cfg.max_n)
        k = _dim(r, cfg.interleave if r.random() < 0.3 else max(cfg.rows, cfg.cols), cfg.max_k)
        cost = est_cycles(cfg, m, n, k, d_ready, ab_idle)
        if cost > budget // 3 or spent + cost > budget:
            continue
        spent += cost
        ops.append({"m": m, "n": n, "k": k, "dtype": r.choice(["bf16", "int8"]),
                    "acc": int(r.random() < p_acc)})
    r.shuffle(ops)
    for op in fixed:
        ops.insert(r.randint(0, len(ops)), dict(op))
    return ops


def bad_ops(r: random.Random, cfg: TensorConfig):
    """Rejected descriptors: a zero dimension, one above its maximum, an unknown dtype code."""
    dim = r.choice("mn")
    zero = {"m": r.randint(1, 9), "n": r.randint(1, 9), "k": r.randint(1, 9), "dtype": "bf16", "bad": True}
    zero[r.choice("mnk")] = 0
    over = {"m": 3, "n": 4, "k": 2, "dtype": "int8", "bad": True}
    over[dim] = getattr(cfg, f"max_{dim}") + 1
    return [
        zero,
        over,
        {"m": 3, "n": 4, "k": cfg.max_k + 1, "dtype": "int8", "bad": True},
        {"m": r.randint(1, 9), "n": r.randint(1, 9), "k": r.randint(1, 9), "dtype": "bf16",
         "code": r.choice([2, 3]), "bad": True},
    ]


def replay_note(label, seed, ops):
    print(f"[tessera] {label} seed={seed} (replay with SEED={seed}): {len(ops)} ops")
    for op in ops:
        print(f"    {op}")


TINY = preset("tiny").tensor
DEFAULT = preset("default").tensor


@pytest.mark.randomized
@pytest.mark.xdist_group(name="tensor_4x4")
def test_core_4x4_random_ops():
    """Back-to-back random operations switching dtype and mode under gaps and back-pressure, with
    K = 1, 1 x 1 x 1 and rejected descriptors (incl. max_k + 1) in between."""
    seed = resolve_seed()
    r = random.Random(seed)
    fixed = [{"m": r.randint(1, 9), "n": r.randint(1, 9), "k": 1, "dtype": "int8", "acc": 1},
             {"m": 1, "n": 1, "k": 1, "dtype": "bf16", "acc": 1}, *bad_ops(r, TINY)]
    kw = {"ab_idle": 0.2, "c_idle": 0.2, "d_ready": 0.6}
    ops = draw_ops(r, TINY, 10, 12000, d_ready=kw["d_ready"], ab_idle=kw["ab_idle"], fixed=fixed,
                   at_max=False)
    replay_note("tensor 4x4 random ops", seed, ops)
    run_core(TINY, seed=seed, ops=ops, special_prob=0.05, **kw)


@pytest.mark.randomized
@pytest.mark.xdist_group(name="tensor_4x4")
def test_core_4x4_full_rate_specials():
    """Operands every cycle, results always accepted, many special values, longer K, and one
    operation with one dimension (drawn) at its configured maximum (4096)."""
    seed = resolve_seed()
    r = random.Random(seed)
    ops = [{"m": r.randint(5, 16), "n": r.randint(5, 16), "k": r.randint(40, 70), "dtype": d, "acc": a}
           for d, a in (("bf16", 1), ("bf16", 0), ("int8", 1))]
    ops.insert(r.randint(0, 3), draw_ops(r, TINY, 0, 0)[0])
    replay_note("tensor 4x4 full rate", seed, ops)
    run_core(TINY, seed=seed, ops=ops, special_prob=0.2)


@pytest.mark.randomized
def test_core_2x3_non_square():
    """Non-square 2 x 3 with small maxima (64): every dimension can reach its maximum."""
    cfg = TensorConfig(rows=2, cols=3, max_m=64, max_n=64, max_k=64)
    seed = resolve_seed()
    r = random.Random(seed)
    fixed = [{"m": r.randint(1, 7), "n": r.randint(1, 7), "k": 1, "dtype": "int8"},
             {"m": 1, "n": 1, "k": 1, "dtype": "int8", "acc": 1}, *bad_ops(r, cfg)]
    kw = {"ab_idle": 0.3, "c_idle": 0.3, "d_ready": 0.5}
    ops = draw_ops(r, cfg, 8, 14000, d_ready=kw["d_ready"], ab_idle=kw["ab_idle"], fixed=fixed)
    replay_note("tensor 2x3 random ops", seed, ops)
    run_core(cfg, seed=seed, ops=ops, special_prob=0.05, **kw)


@pytest.mark.randomized
@pytest.mark.xdist_group(name="tensor_8x8")
def test_core_8x8_default_one_run():
    """The default 8 x 8 core (shares its Verilator build with tests/test_tensor_bench.py: same
    name, text and group): back-pressure on d, gaps on a/b/c, accumulate, specials, back-to-back
    operations of both dtypes (a BF16 -> INT8 switch is forced), a rejected descriptor between two
    good ones, K = 1."""
    seed = resolve_seed()
    r = random.Random(seed)
    kw = {"ab_idle": 0.15, "c_idle": 0.15, "d_ready": 0.7}
    ops = draw_ops(r, DEFAULT, 4, 7000, d_ready=kw["d_ready"], ab_idle=kw["ab_idle"], at_max=False,
                   fixed=[{"m": r.randint(1, 20), "n": r.randint(1, 20), "k": 1, "dtype": "bf16", "acc": 1}])
    def shape(lo, hi, klo):
        return {"m": r.randint(lo, hi), "n": r.randint(lo, hi), "k": r.randint(klo, 30)}

    switch = [{**shape(9, 23, 9), "dtype": "bf16", "acc": 1}, {**shape(9, 23, 9), "dtype": "int8", "acc": 0},
              bad_ops(r, DEFAULT)[r.randrange(4)], {**shape(1, 23, 2), "dtype": "bf16", "acc": 1}]
    ops = ops[:2] + switch + ops[2:]
    replay_note("tensor 8x8 one run", seed, ops)
    run_core(DEFAULT, seed=seed, ops=ops, special_prob=0.08, **kw)


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group(name="tensor_16x16")
def test_core_16x16_short():
    """A 16 x 16 core in simulation: small shapes (ragged, K = 1, more than T blocks), both
    dtypes back to back, accumulate, specials, back-pressure and gaps, a rejected descriptor."""
    cfg = dataclasses.replace(DEFAULT, rows=16, cols=16)
    seed = resolve_seed()
    r = random.Random(seed)
    ops = [
        {"m": r.randint(17, 40), "n": r.randint(17, 40), "k": r.randint(5, 20), "dtype": "bf16", "acc": 1},
        {"m": r.randint(1, 15), "n": r.randint(1, 15), "k": 1, "dtype": "int8", "acc": r.randint(0, 1)},
        bad_ops(r, cfg)[r.randrange(4)],
        {"m": r.randint(33, 50), "n": r.randint(1, 30), "k": r.randint(2, 12), "dtype": "int8", "acc": 1},
        {"m": r.randint(1, 20), "n": r.randint(1, 20), "k": r.randint(1, 24), "dtype": "bf16", "acc": 0},
    ]
    replay_note("tensor 16x16 short", seed, ops)
    run_core(cfg, seed=seed, ops=ops, special_prob=0.08, ab_idle=0.1, c_idle=0.1, d_ready=0.7)
