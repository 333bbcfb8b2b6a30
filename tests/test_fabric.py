"""The whole fabric under Verilator, end to end (tb/fabric/run_gemm.py, test_fabric_errors.py).

GEMMs of random shapes (not multiples of anything), both dtypes, with and without C, multicast on
and off, back to back in one simulation, checked bit-exactly against the golden model; the same
GEMM on a second preset with another mesh, word width and numeric latencies gives bit-identical
results; malformed commands and memory errors stay on their tile.

Special FP values: one job scatters every special (NaN and infinity propagation), two scatter
only the finite ones (zeros, subnormals, smallest normal, largest finite, 1.0), so that most
outputs stay finite and products overflow on the way; one job has operands so small that its
products and results are subnormal. From the golden output each asserts that it really produced
what it is for (a share of finite results, some inf/NaN, subnormal results) and prints the shares.

A fixed prime shape forces several rounds of output tiles, several K chunks and the double-buffered
accumulators (asserted from the plan). Every job's counters are asserted against the plan and
the data: multicast packets (exactly the words of the SEND loads; none without multicast), DRAM
read bytes against the compulsory ones, the L2's hits + misses against its requests and those
against the plan's reads, writes and line ALLOCs, L2 response flits, per-tile LOAD / STORE / MATMUL
counts and busy cycles, no flush error.
"""

import dataclasses
import random
from typing import NamedTuple

import numpy as np
import pytest

from tessera.api import store_acks
from tessera.rtl.config import preset
from tessera.runtime.gemm_map import plan_gemm
from tessera.tb.models import tile_isa
from tessera.tb.models.gemm import gemm
from tessera.tb.tensor.feed import BF16_FINITE_SPECIALS, random_bf16, random_f32, random_i32, random_int8
from tessera.tools.fabric_run import fabric_verilog_cached, run_jobs, save_job
from tessera.tools.harness import resolve_seed, run

MULTI_ROUND = (37, 97, 41)        # bf16 with C on tiny: 3 rounds of 2 K chunks, 2 accumulator buffers


class Job(NamedTuple):
    m: int
    n: int
    k: int
    dtype: str
    with_c: bool
    special: float = 0.0          # share of special values in A, B, C (bf16)
    mc: bool = True
    kind: str = "normal"          # "finite": finite specials only; "small": subnormal-range data


def _small_bf16(rng, shape, special):
    """bf16 around 2^-66 (exponent fields 56..64): products of two are FP32-subnormal or tiny."""
    bits = ((rng.integers(0, 2, shape, dtype=np.uint16) << 15)
            | (rng.integers(56, 65, shape).astype(np.uint16) << 7)
            | rng.integers(0, 128, shape, dtype=np.uint16))
    mask = rng.random(shape) < special
    bits[mask] = rng.choice(np.array(BF16_FINITE_SPECIALS, np.uint16), int(mask.sum()))
    return bits


def _small_f32(rng, shape):
    """FP32 subnormals and the smallest normals (exponent fields 0..2)."""
    return ((rng.integers(0, 2, shape, dtype=np.uint32) << 31)
            | (rng.integers(0, 3, shape).astype(np.uint32) << 23)
            | rng.integers(0, 1 << 23, shape, dtype=np.uint32))


def _inputs(rng, job: Job):
    m, n, k = job.m, job.n, job.k
    if job.dtype == "int8":
        c = random_i32(rng, (m, n)) if job.with_c else None
        return random_int8(rng, (m, k)), random_int8(rng, (k, n)), c
    if job.kind == "small":
        c = _small_f32(rng, (m, n)) if job.with_c else None
        return _small_bf16(rng, (m, k), job.special), _small_bf16(rng, (k, n), job.special), c
    finite = job.kind == "finite"
    a = random_bf16(rng, (m, k), job.special, finite=finite)
    b = random_bf16(rng, (k, n), job.special, finite=finite)
    c = random_f32(rng, (m, n), job.special, finite=finite) if job.with_c else None
    return a, b, c


def _check_values(job: Job, golden) -> str:
    """Assert that a special-value job exercised what it is for; return its shares for printing."""
    d = golden.view(np.float32)
    finite = float(np.isfinite(d).mean())
    nonfinite = int((~np.isfinite(d)).sum())
    subnormal = float(((d != 0) & (np.abs(d) < np.float32(2.0 ** -126))).mean())
    shares = f"finite {finite:.1%}, inf/NaN {nonfinite}/{d.size}, subnormal {subnormal:.1%}"
    if job.kind == "small":
        assert subnormal >= 0.02, f"{job}: only {subnormal:.1%} subnormal results"
    elif job.special and job.kind == "finite":     # inf / NaN only by overflow here
        assert finite >= 0.4 and nonfinite >= 1, f"{job}: {shares}"
    elif job.special:
        assert finite >= 0.05, f"{job}: special values hide the arithmetic: {shares}"
    return shares


def _full_lines(start: int, nbytes: int, line: int) -> int:
    return max(0, (start + nbytes) // line - -(-start // line))


def _check_counters(cfg, job: Job, res: dict, a, b, c):
    """The job's counters against its plan and data (see the module docstring)."""
    plan = plan_gemm(cfg, job.m, job.n, job.k, job.dtype, has_c=job.with_c, multicast=job.mc)
    summary, ctr = plan.summary(), res["counters"]
    assert res["plan"] == summary, "the testbench ran another plan"
    w, line = cfg.tile.word_bytes, cfg.cache.line_bytes
    cycles = res["cycles"]
    assert cycles >= job.m * job.n * job.k / (cfg.tiles * cfg.tensor.rows * cfg.tensor.cols) > 0

    ops = {t: [tile_isa.decode(x) | {"op": tile_isa.opcode_of(x)} for x in words]
           for t, words in plan.words.items()}
    send_words = sum(f["rows"] * -(-f["row_bytes"] // w) for fs in ops.values() for f in fs
                     if f["op"] == 1 and f["mode"] == tile_isa.MODES["send"])
    if job.mc and summary["tiles_used"] > 1:
        assert send_words > 0, f"{job}: the plan has no multicast LOAD"
    assert ctr["mcast_packets"] == send_words, \
        f"{job}: {ctr['mcast_packets']} multicast packets, want one per word of the SEND loads: {send_words}"

    compulsory = a.nbytes + b.nbytes + (c.nbytes if c is not None else 0)
    assert res["dram_read_bytes"] >= compulsory, f"{job}: DRAM read {res['dram_read_bytes']} < {compulsory}"
    assert res["dram_read_bytes"] % line == 0
    assert res["dram_write_bytes"] >= 4 * job.m * job.n, f"{job}: D not written back"
    assert res["flush_errors"] == 0, f"{job}: {res['flush_errors']} flush errors"

    slices = ctr["slices"]
    for s, sl in enumerate(slices):
        assert sl["requests"] == sl["hits"] + sl["misses"] + sl["secondary_misses"], f"slice {s}: {sl}"
        assert sl["fill_errors"] == sl["wb_errors"] == sl["malformed"] == 0, f"slice {s}: {sl}"
    allocs = sum(_full_lines(f["mem_addr"] + r * f["stride"], f["row_bytes"], line)
                 for fs in ops.values() for f in fs if f["op"] == 2 for r in range(f["rows"]))
    want = summary["l2_read_words"] + summary["l2_write_words"] + allocs
    got = sum(sl["requests"] for sl in slices)
    assert got == want, f"{job}: L2 requests {got}, want reads + writes + ALLOCs of the plan: {want}"
    assert sum(sl["misses"] for sl in slices) * line >= res["dram_read_bytes"]
    assert ctr["l2_resp_flits"] == 2 * summary["l2_read_words"] + store_acks(cfg, plan.words)
    assert ctr["noc_errors"] == 0 and ctr["noc_link_flits"] > 0

    for t, fs in ops.items():
        tile = ctr["tiles"][t]
        for name, op in (("loads", 1), ("stores", 2), ("matmuls", 3)):
            assert tile[name] == sum(f["op"] == op for f in fs), f"{job}: tile {t} {name}: {tile}"
        # each MATMUL streams K steps per R x C block of its output at least
        least = sum(-(-f["m"] // cfg.tensor.rows) * -(-f["n"] // cfg.tensor.cols) * f["k"]
                    for f in fs if f["op"] == 3)
        assert least <= tile["busy_cycles"] <= cycles and (least > 0 or tile["busy_cycles"] == 0), \
            f"{job}: tile {t} busy {tile['busy_cycles']} cycles, MATMULs need {least}, run {cycles}"
    return plan


def _run_and_check(cfg, tmp_path, shapes, seed, **kw):
    rng = np.random.default_rng(seed)
    jobs, data = [], []
    for i, job in enumerate(shapes):
        a, b, c = _inputs(rng, job)
        work = tmp_path / f"job{i}"
        save_job(work, a, b, c)
        jobs.append({"dir": str(work), "dtype": job.dtype, "multicast": job.mc})
        data.append((a, b, c))
    results = run_jobs(cfg, jobs, seed=seed, **kw)
    outs, plans = [], []
    for (a, b, c), res, job in zip(data, results, shapes, strict=True):
        states = {t: s["state"] for t, s in res["statuses"].items()}
        assert all(s == "DONE" for s in states.values()), f"{job}: tiles {res['statuses']}"
        golden = gemm(a, b, c, job.dtype)
        d = res["d"].view(golden.dtype)
        bad = np.argwhere(d != golden)
        assert not len(bad), (f"{job}: {len(bad)} elements differ, first {tuple(bad[0])}: "
                              f"{d[tuple(bad[0])]:#x} vs {golden[tuple(bad[0])]:#x} (seed {seed})")
        plans.append(_check_counters(cfg, job, res, a, b, c))
        ctr = res["counters"]
        line = (f"{job.m}x{job.n}x{job.k} {job.dtype}{' +C' if job.with_c else ''}"
                f"{' mc' if job.mc else ''}: {res['cycles']} cycles, {ctr['mcast_packets']} multicast,"
                f" DRAM read {res['dram_read_bytes']} B")
        if job.dtype == "bf16" and (job.special or job.kind != "normal"):
            line += f"; {job.kind} specials {job.special}: {_check_values(job, golden)}"
        print(line)
        outs.append(d)
    return outs, plans


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny")
def test_fabric_gemms_back_to_back(tmp_path):
    seed = resolve_seed(None)
    r = random.Random(seed)
    shapes = [
        Job(r.randint(9, 40), r.randint(9, 40), r.randint(20, 70), "bf16", True, 0.01),
        Job(r.randint(2, 20), r.randint(30, 50), r.randint(1, 9), "int8", False),
        Job(r.randint(30, 45), r.randint(2, 7), r.randint(40, 90), "bf16", False, mc=False),
        Job(1, 1, 1, "int8", True),
        Job(r.randint(17, 33), r.randint(17, 33), r.randint(17, 33), "int8", True, mc=False),
        Job(r.randint(40, 60), r.randint(40, 60), r.randint(50, 80), "bf16", False, 0.02, kind="finite"),
        Job(*MULTI_ROUND, "bf16", True, 0.02, kind="finite"),
        Job(r.randint(9, 30), r.randint(9, 30), r.randint(10, 40), "bf16", True, 0.02, mc=False,
            kind="small"),
    ]
    print(f"shapes {shapes} seed {seed}")
    _, plans = _run_and_check(preset("tiny"), tmp_path, shapes, seed, mem_latency=r.randint(5, 60))
    multi = plans[6]
    assert multi.rounds >= 3 and multi.chunks >= 2 and multi.acc_buffers == 2, multi.summary()


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny")
def test_fabric_same_result_on_another_preset(tmp_path):
    seed = resolve_seed(None)
    r = random.Random(seed)
    shape = Job(r.randint(20, 40), r.randint(20, 40), r.randint(30, 60), "bf16", True, 0.02, kind="finite")
    tiny, _ = _run_and_check(preset("tiny"), tmp_path / "tiny", [shape], seed, mem_latency=30)
    other, _ = _run_and_check(preset("ulx3s"), tmp_path / "ulx3s", [shape], seed, mem_latency=30,
                              mem_bytes_per_cycle=4)
    assert np.array_equal(tiny[0], other[0])


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny")
def test_fabric_errors_are_contained():
    from tessera.rtl.fabric.fabric import Fabric

    cfg = preset("tiny")
    run(Fabric, "tessera.tb.fabric.test_fabric_errors", name=f"fabric_{cfg.name}",
        verilog_text=fabric_verilog_cached(cfg),
        params={"cfg": dataclasses.asdict(cfg), "mem_latency": 20})


@pytest.mark.randomized(cost="heavy")
def test_fabric_two_memory_ports(tmp_path):
    """The tiny fabric with two AXI4 memory ports (slice n on port n % 2, docs/fabric.md): the
    preset the regression runs elsewhere has one, `default` has four. Half of the lines live
    behind each port, so a broken port loses data or hangs; results bit-exact, counters checked."""
    cfg = dataclasses.replace(preset("tiny"), name="tiny_2ports", mem_ports=2)
    seed = resolve_seed(None)
    r = random.Random(seed)
    shapes = [
        Job(r.randint(20, 40), r.randint(20, 40), r.randint(30, 60), "bf16", True, 0.02, kind="finite"),
        Job(r.randint(9, 30), r.randint(9, 30), r.randint(9, 30), "int8", True, mc=False),
    ]
    print(f"shapes {shapes} seed {seed}")
    _run_and_check(cfg, tmp_path, shapes, seed, mem_latency=r.randint(5, 60))


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny")
def test_fabric_vector_epilogue():
    """A GEMM with bias + relu, BF16 transposed for the next MATMUL, row sums and maxima on the
    vector engines of three tiles, bit-exact; a refused special function stops the fourth with
    FAULT (tb/fabric/test_fabric_vector.py)."""
    from tessera.rtl.fabric.fabric import Fabric

    cfg = preset("tiny")
    run(Fabric, "tessera.tb.fabric.test_fabric_vector", name=f"fabric_{cfg.name}",
        verilog_text=fabric_verilog_cached(cfg),
        params={"cfg": dataclasses.asdict(cfg), "mem_latency": 20})
