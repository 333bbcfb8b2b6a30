"""The native simulation engine (tessera.tools.native) against the cocotb path, bit for bit.

The same GEMM jobs run on ``tiny`` and ``ulx3s`` through both engines: the cocotb testbench
(tb/fabric/run_gemm.py: the memory model of tb/common/axi_memory.py and cocotbext-axi's AXI4-Lite
master, in Python) and the native one (both in C++, docs/simulation.md). D, the cycle counts, the
flush, the memory's byte counters, every CSR counter, the tiles' statuses and the cycles simulated
per job must be identical: the native models follow the cocotb models' timing edge for edge. The
jobs include, on ``ulx3s`` (32-entry command queues), programs several times longer than the queue
(pushed while the tiles run, so the host's access timing shows in the cycle counts), a fractional
memory bandwidth, and a memory error range (the tiles that touch it stop with the documented error
code).
"""

import json
import random

import numpy as np
import pytest

from tessera.rtl.config import preset
from tessera.rtl.fabric.csr_map import REG
from tessera.runtime.gemm_map import plan_gemm
from tessera.runtime.random_data import random_bf16, random_int8
from tessera.tools.fabric_run import native_library, run_jobs, save_job
from tessera.tools.harness import resolve_seed
from tessera.tools.native import NativeError, NativeFabric

SHAPES = [  # (m, n, k, dtype, with C, multicast)
    (37, 97, 41, "bf16", True, True),     # 3 rounds, 2 K chunks: its programs overflow the queue
    (23, 9, 30, "int8", False, False),
    (1, 1, 1, "bf16", False, True),
]


def _jobs(tmp_path, engine, data):
    jobs = []
    for i, (shape, (a, b, c)) in enumerate(zip(SHAPES, data, strict=True)):
        work = tmp_path / engine / f"job{i}"
        save_job(work, a, b, c)
        jobs.append({"dir": str(work), "dtype": shape[3], "multicast": shape[5]})
    return jobs


def _data(rng):
    out = []
    for m, n, k, dtype, with_c, _ in SHAPES:
        if dtype == "bf16":
            a, b = random_bf16(rng, (m, k), finite=True), random_bf16(rng, (k, n), finite=True)
            c = rng.integers(0, 1 << 30, (m, n), dtype=np.uint32) if with_c else None
        else:
            a, b = random_int8(rng, (m, k)), random_int8(rng, (k, n))
            c = rng.integers(-1 << 20, 1 << 20, (m, n), dtype=np.int32) if with_c else None
        out.append((a, b, c))
    return out


def _compare(native, cocotb):
    for i, (x, y) in enumerate(zip(native, cocotb, strict=True)):
        assert np.array_equal(x.pop("d"), y.pop("d")), f"job {i}: D differs"
        for wall in ("sim_seconds", "sim_eval_seconds"):    # wall-clock figures, engine-specific
            x.pop(wall, None), y.pop(wall, None)
        diff = {k: (x[k], y.get(k)) for k in x if x[k] != y.get(k)}
        assert not diff and x.keys() == y.keys(), f"job {i}: native vs cocotb differ in {diff}"


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny")
@pytest.mark.parametrize("name", ["tiny", "ulx3s"])
def test_native_and_cocotb_agree(tmp_path, name):
    seed = resolve_seed(None)
    r = random.Random(seed)
    cfg = preset(name)
    data = _data(np.random.default_rng(seed))
    bw = cfg.mem_ports * cfg.cache.data_bytes
    kw = {"mem_latency": r.randint(1, 120), "mem_bytes_per_cycle": r.choice([None, bw, 0.625 * bw, 0.4 * bw])}
    print(f"seed {seed}: {kw}")
    if name == "ulx3s":  # a 32-word command queue: the first job's programs are pushed while it runs
        plan = plan_gemm(cfg, *SHAPES[0][:3], "bf16", has_c=True)
        assert max(len(p.words) for p in plan.programs.values()) > 4 * cfg.tile.cmd_queue_depth
    native = run_jobs(cfg, _jobs(tmp_path, "native", data), engine="native", **kw)
    cocotb = run_jobs(cfg, _jobs(tmp_path, "cocotb", data), engine="cocotb", seed=seed, **kw)
    for res in native:
        assert all(s["state"] == "DONE" for s in res["statuses"].values()), res["statuses"]
    print("cycles", [res["cycles"] for res in native], "simulated cycles/s, native vs cocotb:",
          [(round(x["sim_cycles"] / x["sim_seconds"]), round(y["sim_cycles"] / y["sim_seconds"]))
           for x, y in zip(native, cocotb, strict=True)])
    _compare(native, cocotb)


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny")
def test_native_and_cocotb_agree_on_memory_errors(tmp_path):
    """A memory error range over a line of B that every tile loads: the tiles stop with the same
    error code and pc in both engines, with the same counters. (Tiles that wait on a SYNC with an
    errored tile keep waiting, so a run with some tiles in error ends by the host's watchdog;
    tests/test_fabric.py::test_fabric_errors_are_contained covers errors confined to one tile.)"""
    seed = resolve_seed(None)
    cfg = preset("tiny")
    data = _data(np.random.default_rng(seed))[:1]
    m, n, k, dtype, with_c, mc = SHAPES[0]
    plan = plan_gemm(cfg, m, n, k, dtype, has_c=with_c, multicast=mc)
    extra = {"error_ranges": [[plan.b_addr + 64, plan.b_addr + 128]]}
    out = []
    for engine in ("native", "cocotb"):
        work = tmp_path / engine / "job0"
        save_job(work, *data[0])
        jobs = [{"dir": str(work), "dtype": dtype, "multicast": mc}]
        out.append(run_jobs(cfg, jobs, engine=engine, seed=seed, mem_latency=40, extra=extra))
    states = {t: s["state"] for t, s in out[0][0]["statuses"].items()}
    assert set(states.values()) == {"ERROR"}, out[0][0]["statuses"]
    _compare(out[0], out[1])


def test_native_host_reports_bad_accesses():
    """An access the fabric answers with an error response (DECERR: unmapped CSR) is an error
    naming the address, not a silent 0; the model keeps running. A closed simulation and a
    bandwidth of 0 are errors too."""
    cfg = preset("tiny")
    with NativeFabric(native_library(cfg), latency=10) as sim:
        with pytest.raises(NativeError, match="0x0ffc"):
            sim.read(0x0FFC)
        assert sim.read(REG["ID"]) == 0x54455353
        c0 = sim.cycle
        sim.wait(100)
        assert sim.cycle == c0 + 100
    with pytest.raises(NativeError, match="closed"):          # after close: an error, not a crash
        sim.read(REG["ID"])
    with pytest.raises(ValueError, match="rate"):
        NativeFabric(native_library(cfg), rate=0)
    for engine in ("native", "cocotb"):                       # refused before any simulation
        with pytest.raises(ValueError, match="mem_bytes_per_cycle"):
            run_jobs(cfg, [], engine=engine, mem_bytes_per_cycle=0)


@pytest.mark.xdist_group("fabric_tiny")
def test_bench_sim_reports_speed_and_split(tmp_path, capsys):
    """``tessera bench sim`` end to end on ``tiny``: a bit-exact GEMM, its cycles and simulated
    cycles, the share of time inside the model's eval, the model-alone speed and the build record;
    a bad build option is refused by name before anything is built."""
    from tessera.cli.main import main

    out = tmp_path / "sim.json"
    assert main(["bench", "sim", "--preset", "tiny", "--m", "20", "--n", "12", "--k", "16",
                 "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["bit_exact"] and rep["preset"] == "tiny"
    assert 0 < rep["cycles"] < rep["sim_cycles"] == rep["model_alone_cycles"]
    assert 0 < rep["eval_share"] <= 1 and rep["sim_cycles_per_second"] > 0
    assert rep["model_alone_cycles_per_second"] > 0 and rep["eval_cycles_per_second"] > 0
    assert rep["build"]["cxx_opt"] == "-O1" and "--hierarchical" in rep["build"]["args"]
    assert "--threads" not in rep["build"]["args"]          # 64 PEs: one thread
    assert "bit-exact" in capsys.readouterr().out
    for bad, name in ((["--threads", "0"], "--threads"), (["--seed", "-1"], "--seed"),
                      (["--verilator-args", '"x'], "--verilator-args")):
        with pytest.raises(SystemExit) as e:
            main(["bench", "sim", "--preset", "tiny", *bad])
        assert e.value.code == 2 and name in capsys.readouterr().err
