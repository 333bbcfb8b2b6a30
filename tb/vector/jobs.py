"""VECTOR jobs on ``VectorTop`` under Verilator, checked against ``tb/models/vector_exec.py``: the
Python side of the cocotb bench ``tessera.tb.vector.bench`` (``tessera vector``, ``tessera bench
vector`` and ``tests/test_vector_cli.py`` use it).

A job is a dict: ``fields`` (the VECTOR, docs/isa.md names, ``vector_exec`` codes) or ``program``
(a list of such VECTORs, run one after the other: a vector program such as softmax), ``image``
(``uint8`` array: the accumulator from byte 0, a whole number of words), and optionally
``pressure``, ``seed`` and ``readback`` (``"all"`` or ``"output"``, the last VECTOR's output; see
the bench's docstring). :func:`run_jobs` runs a list of them in one simulation (one Verilator build
per configuration, shared by every run: the design's name is ``vector_top_<cfg.name>``; the engine
has special functions when ``cfg.tile.sfu``) and returns, per job, the cycles, the memories as the
engine left them and whether they are bit-exact with the model.
"""

from __future__ import annotations

import dataclasses
import json
import random
import tempfile
from pathlib import Path

import numpy as np

from tessera.tb.models import vector_exec as vx

BENCH_MODULE = "tessera.tb.vector.bench"
SPECIALS = np.array([0, 0x80000000, 1, 0x80000001, 0x007FFFFF, 0x00800000, 0x3F800000, 0xBF800000,
                     0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7FA00000, 0xFFC00001,
                     0x3F000000, 0x3FC00000, 0x40200000, 0xC3000000, 0x42FE0000, 0x43000000, 0x4B000001],
                    dtype=np.uint32)


def design_name(cfg) -> str:
    return f"vector_top_{cfg.name}"


def verilog(cfg) -> str:
    """``VectorTop(cfg, sfu=cfg.tile.sfu)`` as Verilog, exported once and cached on disk."""
    from tessera.tb.vector.top import VectorTop
    from tessera.tools.harness import export_verilog
    from tessera.tools.verilog_cache import cached_verilog

    top = Path(__file__).with_name("top.py")
    return cached_verilog(design_name(cfg), repr(cfg),
                          lambda: export_verilog(lambda: VectorTop(cfg, sfu=cfg.tile.sfu), design_name(cfg)),
                          extra_sources=[top])


def values(rng: np.random.Generator, n: int, ints: bool = False) -> np.ndarray:
    """``n`` random 32-bit patterns: FP32 specials, any pattern, N(0, 4) values (or INT32s)."""
    if ints:
        return rng.integers(-2 ** 31, 2 ** 31, n, dtype=np.int64).astype(np.uint32)
    kind = rng.random(n)
    rand = rng.integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32)
    small = np.float32(rng.normal(0, 4, n)).view(np.uint32)
    special = SPECIALS[rng.integers(0, len(SPECIALS), n)]
    return np.where(kind < 0.15, special, np.where(kind < 0.45, rand, small)).astype(np.uint32)


def random_job(cfg, rng: random.Random, nrng: np.random.Generator) -> dict:
    """A well-formed VECTOR and an accumulator image for it (the generator of
    ``tests/test_vector_engine.py``'s ``random_instr``); with special functions (gelu, exp, recip,
    rsqrt: one VECTOR in two) when ``cfg.tile.sfu``."""
    W, acc_bytes, sp_bytes = cfg.tile.word_bytes, cfg.tile.accumulator_bytes, cfg.tile.scratchpad_bytes
    lanes = W // 4
    while True:
        rows, cols = rng.randint(1, 9), rng.randint(1, 4 * lanes + 3)
        op = rng.choice(list(vx.OPS.values()))
        f = {"op": op, "rows": rows, "cols": cols, "act": 0, "red": 0, "fmt": 0, "itof": 0, "y": 0,
             "ymode": 0}
        if op == vx.OPS["iadd"]:
            f["ymode"] = rng.choice([0, 1, 2, 3])
        else:
            if op != vx.OPS["pass"]:
                f["ymode"] = rng.choice([0, 1, 2, 3])
            f["act"] = rng.choice([0, 0, 1])
            if cfg.tile.sfu and rng.random() < 0.5:
                f["act"] = rng.choice([vx.ACTS[a] for a in ("gelu", "exp", "recip", "rsqrt")])
            f["red"] = rng.choice([0, 0, 0, 1, 2])
            f["fmt"] = 0 if f["red"] else rng.choice([0, 1, 2, 3, 4])
            f["itof"] = int(rng.random() < 0.15)
        xp = vx.pitch(4 * cols, W)
        region = rows * xp
        f["x_addr"] = 0                     # x at 0, y after it, d after y (or in the scratchpad)
        y_end = region
        if f["ymode"] == 3:
            f["y"] = int(values(nrng, 1, op == vx.OPS["iadd"])[0])
        elif op != vx.OPS["pass"]:
            f["y"] = region
            y_end = region + {0: region, 1: vx.pitch(4 * cols, W), 2: vx.pitch(4 * rows, W)}[f["ymode"]]
        if f["red"] or f["fmt"] == 0:
            f["d_addr"] = y_end if rng.random() < 0.7 else 0          # sometimes in place
            need = y_end + (vx.pitch(4 * rows, W) if f["red"] else region)
            if need > acc_bytes:
                continue
        else:
            d_rows = rows if f["fmt"] in (1, 3) else cols
            f["d_addr"] = W * rng.randint(0, 8)
            if f["d_addr"] + d_rows * vx.out_pitch(f, W) > sp_bytes or y_end > acc_bytes:
                continue
        image = values(nrng, acc_bytes // 4, ints=bool(f["itof"]) or op == vx.OPS["iadd"])
        return {"fields": f, "image": image.view(np.uint8).copy()}


def random_jobs(cfg, n: int, seed: int, pressure: float | None = None) -> list[dict]:
    """``n`` random jobs (:func:`random_job`) from ``seed``, each with random competing traffic at
    ``pressure`` (None: drawn per job from 0, 0.2, 0.5, 0.8) and the whole memories read back."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    jobs = []
    for _ in range(n):
        job = random_job(cfg, rng, nrng)
        job.update(pressure=rng.choice((0.0, 0.2, 0.5, 0.8)) if pressure is None else pressure,
                   seed=rng.randrange(1 << 31), readback="all")
        jobs.append(job)
    return jobs


def program(job: dict) -> list[dict]:
    """The VECTORs of ``job``: its ``program``, or its one ``fields``."""
    return list(job["program"]) if "program" in job else [job["fields"]]


def output_array(cfg, f: dict, acc: np.ndarray, sp: np.ndarray) -> np.ndarray:
    """The result of the VECTOR ``f`` from the memories (``uint8``, whole): ``uint32`` patterns
    (rows x cols, or (rows,) for a reduction; ``int32`` for IADD), ``uint16`` BF16, ``int8``;
    transposed formats as cols x rows."""
    W = cfg.tile.word_bytes
    rows, cols, d = f["rows"], f["cols"], f["d_addr"]
    if f["red"]:
        return vx.read_words(acc, d, 1, rows, 0)[0]
    fmt = f["fmt"]
    if fmt == vx.FMTS["fp32"]:
        out = vx.read_words(acc, d, rows, cols, vx.pitch(4 * cols, W))
        return out.view(np.int32) if f["op"] == vx.OPS["iadd"] else out
    r, c = (cols, rows) if fmt in (vx.FMTS["bf16t"], vx.FMTS["int8t"]) else (rows, cols)
    size, dtype = (2, np.uint16) if fmt in (vx.FMTS["bf16"], vx.FMTS["bf16t"]) else (1, np.int8)
    dp = vx.out_pitch(f, W)
    raw = np.stack([sp[d + i * dp: d + i * dp + c * size] for i in range(r)])
    return np.ascontiguousarray(raw).view(dtype).reshape(r, c)


def run_jobs(cfg, jobs: list[dict], *, seed: int | None = None, replay: str | None = None) -> list[dict]:
    """Runs ``jobs`` back to back in one simulation of ``VectorTop`` for ``cfg``; returns per job
    ``cycles``, ``acc`` and ``sp`` (the memories: the engine's bytes where they were read back, the
    model's elsewhere), ``bit_exact`` and ``mismatch`` (a description of the first differences, or
    None)."""
    from tessera.tb.vector.top import VectorTop
    from tessera.tools.harness import run

    tile = cfg.tile
    with tempfile.TemporaryDirectory(prefix="tessera-vector-") as tmp:
        params = {"cfg": dataclasses.asdict(cfg), "jobs": []}
        for i, job in enumerate(jobs):
            path = Path(tmp) / f"image{i}.npy"
            np.save(path, np.asarray(job["image"], dtype=np.uint8))
            params["jobs"].append({"program": [{k: int(v) for k, v in f.items()} for f in program(job)],
                                   "image": str(path), "pressure": float(job.get("pressure", 0)),
                                   "seed": int(job.get("seed", 0)), "readback": job.get("readback", "all")})
        run_dir = run(lambda: VectorTop(cfg, sfu=cfg.tile.sfu), BENCH_MODULE, name=design_name(cfg),
                      verilog_text=verilog(cfg), params=params, seed=seed, replay=replay)
    found = json.loads((run_dir / "results.json").read_text())
    out = []
    for i, (job, res) in enumerate(zip(jobs, found, strict=True)):
        f = program(job)
        want_acc = np.zeros(tile.accumulator_bytes, dtype=np.uint8)
        want_acc[:len(job["image"])] = job["image"]
        want_sp = np.zeros(tile.scratchpad_bytes, dtype=np.uint8)
        for instr in f:
            vx.execute(instr, want_acc, want_sp, tile.word_bytes)
        acc, sp = want_acc.copy(), want_sp.copy()
        got_acc, got_sp = np.load(run_dir / f"job{i}_acc.npy"), np.load(run_dir / f"job{i}_sp.npy")
        acc[res["acc_from"]:res["acc_from"] + got_acc.size] = got_acc
        sp[res["sp_from"]:res["sp_from"] + got_sp.size] = got_sp
        bad_acc, bad_sp = np.flatnonzero(acc != want_acc), np.flatnonzero(sp != want_sp)
        mismatch = None
        if bad_acc.size or bad_sp.size:
            mismatch = (f"job {i} {f if len(f) > 1 else f[0]}: {bad_acc.size} accumulator bytes differ"
                        f" (first at {bad_acc[:8].tolist()}),"
                        f" {bad_sp.size} scratchpad bytes (first at {bad_sp[:8].tolist()})")
        out.append({"cycles": res["cycles"], "acc": acc, "sp": sp, "bit_exact": mismatch is None,
                    "mismatch": mismatch, "run_dir": str(run_dir)})
    return out
