"""The whole fabric under Verilator, end to end (tb/fabric/run_gemm.py, test_fabric_errors.py).

GEMMs of random shapes (not multiples of anything), both dtypes, with and without C, special
FP values, multicast on and off, back to back in one simulation, checked bit-exactly against the
golden model; the same GEMM on a second preset with another mesh, word width and numeric
latencies gives bit-identical results; malformed commands and memory errors stay on their tile.
"""

import dataclasses
import random

import numpy as np
import pytest

from rtl.config import preset
from sim.fabric_run import fabric_verilog_cached, run_jobs, save_job
from tb.harness import resolve_seed, run
from tb.models.gemm import gemm
from tb.tensor.feed import random_bf16, random_f32, random_i32, random_int8


def _inputs(rng, m, n, k, dtype, with_c, special):
    if dtype == "bf16":
        a, b = random_bf16(rng, (m, k), special), random_bf16(rng, (k, n), special)
        c = random_f32(rng, (m, n), special) if with_c else None
    else:
        a, b = random_int8(rng, (m, k)), random_int8(rng, (k, n))
        c = random_i32(rng, (m, n)) if with_c else None
    return a, b, c


def _run_and_check(cfg, tmp_path, shapes, seed, **kw):
    rng = np.random.default_rng(seed)
    jobs, data = [], []
    for i, (m, n, k, dtype, with_c, special, mc) in enumerate(shapes):
        a, b, c = _inputs(rng, m, n, k, dtype, with_c, special)
        work = tmp_path / f"job{i}"
        save_job(work, a, b, c)
        jobs.append({"dir": str(work), "dtype": dtype, "multicast": mc})
        data.append((a, b, c, dtype))
    results = run_jobs(cfg, jobs, seed=seed, **kw)
    outs = []
    for (a, b, c, dtype), res, shape in zip(data, results, shapes, strict=True):
        states = {t: s["state"] for t, s in res["statuses"].items()}
        assert all(s == "DONE" for s in states.values()), f"{shape}: tiles {res['statuses']}"
        golden = gemm(a, b, c, dtype)
        d = res["d"].view(golden.dtype)
        bad = np.argwhere(d != golden)
        assert not len(bad), (f"{shape}: {len(bad)} elements differ, first {tuple(bad[0])}: "
                              f"{d[tuple(bad[0])]:#x} vs {golden[tuple(bad[0])]:#x} (seed {seed})")
        outs.append(d)
    return outs, results


@pytest.mark.xdist_group("fabric_tiny")
def test_fabric_gemms_back_to_back(tmp_path):
    seed = resolve_seed(None)
    r = random.Random(seed)
    shapes = [
        (r.randint(9, 40), r.randint(9, 40), r.randint(20, 70), "bf16", True, 0.05, True),
        (r.randint(2, 20), r.randint(30, 50), r.randint(1, 9), "int8", False, 0.0, True),
        (r.randint(30, 45), r.randint(2, 7), r.randint(40, 90), "bf16", False, 0.0, False),
        (1, 1, 1, "int8", True, 0.0, True),
        (r.randint(17, 33), r.randint(17, 33), r.randint(17, 33), "int8", True, 0.0, False),
        (r.randint(40, 60), r.randint(40, 60), r.randint(50, 80), "bf16", False, 0.1, True),
    ]
    print(f"shapes {shapes} seed {seed}")
    _run_and_check(preset("tiny"), tmp_path, shapes, seed, mem_latency=r.randint(5, 60))


@pytest.mark.xdist_group("fabric_tiny")
def test_fabric_same_result_on_another_preset(tmp_path):
    seed = resolve_seed(None)
    r = random.Random(seed)
    shape = (r.randint(20, 40), r.randint(20, 40), r.randint(30, 60), "bf16", True, 0.05, True)
    tiny, _ = _run_and_check(preset("tiny"), tmp_path / "tiny", [shape], seed, mem_latency=30)
    other, _ = _run_and_check(preset("ulx3s"), tmp_path / "ulx3s", [shape], seed, mem_latency=30,
                              mem_bytes_per_cycle=4)
    assert np.array_equal(tiny[0], other[0])


@pytest.mark.xdist_group("fabric_tiny")
def test_fabric_errors_are_contained():
    from rtl.fabric.fabric import Fabric

    cfg = preset("tiny")
    run(Fabric, "tb.fabric.test_fabric_errors", name=f"fabric_{cfg.name}",
        verilog_text=fabric_verilog_cached(cfg),
        params={"cfg": dataclasses.asdict(cfg), "mem_latency": 20})
