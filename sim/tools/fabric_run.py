"""Run GEMM jobs on the Verilated fabric: Verilog export (cached), build, cocotb, results.

Used by ``tessera gemm`` and by the fabric tests. Exporting a fabric takes a while (the default
preset is 16 tiles of 64 PEs), so the Verilog text is cached (:mod:`tessera.tools.verilog_cache`,
keyed by the configuration and every ``rtl/`` source file); the Verilator build is cached by
the harness (keyed by the Verilog). ``run_jobs`` shows a progress bar (cycles simulated against
the ideal cycle count) when asked to.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from tessera.runtime.gemm_inputs import save_inputs
from tessera.tools.verilog_cache import cached_verilog


def fabric_name(cfg) -> str:
    return f"fabric_{cfg.name}"


def fabric_verilog_cached(cfg) -> str:
    """The fabric's hierarchical Verilog (:func:`tessera.rtl.fabric.fabric_verilog`), cached."""
    from tessera.rtl.fabric import fabric_verilog

    cfg_json = json.dumps(dataclasses.asdict(cfg), sort_keys=True)
    return cached_verilog(fabric_name(cfg), cfg_json, lambda: fabric_verilog(cfg, fabric_name(cfg)))


def save_job(work: Path, a, b, c=None):
    """A job directory for :func:`run_jobs`: the inputs, no result of an earlier run."""
    save_inputs(work, a, b, c, stale=("D.npy", "result.json"))


ENGINES = ("native", "cocotb")


def run_jobs(cfg, jobs: list[dict], *, mem_latency: int = 100, mem_bytes_per_cycle: float | None = None,
             seed: int | None = None, progress: bool = False, engine: str = "native",
             test_module: str = "tessera.tb.fabric.run_gemm", extra: dict | None = None) -> list[dict]:
    """Run ``jobs`` (dicts with ``dir``, ``dtype``, ``multicast``) in one simulation; return their
    ``result.json`` contents (each with ``D`` loaded as ``d``; see tb/fabric/run_gemm.py). A result
    with ``flush_errors`` > 0 had memory write errors in its final L2 flush (FLUSH_ERRORS), so its
    ``d`` is incomplete: callers must treat it as a failure, as ``tessera gemm`` does.

    ``engine``: ``"native"`` (:mod:`tessera.tools.native`: memory and host in C++, the fast path)
    or ``"cocotb"`` (``test_module`` under cocotb, the verification path; ``seed`` and ``extra``
    parameters reach it). Both give the same cycle counts (tests/test_native.py). ``extra`` may
    hold ``error_ranges`` for either engine, and for the native one ``build``: the keyword
    arguments of :func:`native_library` (build settings other than the measured default). Each
    result also has ``sim_seconds`` (wall time of the job) and ``sim_cycles`` (clock cycles
    simulated for it, host accesses and flush included); the native engine's also
    ``sim_eval_seconds`` (the part of ``sim_seconds`` spent inside the Verilated model's ``eval``)."""
    if engine not in ENGINES:
        raise ValueError(f"engine = {engine!r}; allowed: {', '.join(ENGINES)}")
    if mem_bytes_per_cycle is not None and not mem_bytes_per_cycle > 0:
        raise ValueError(f"mem_bytes_per_cycle = {mem_bytes_per_cycle}; must be > 0 (None: one beat per port"
                         " per cycle)")
    if mem_latency < 1:
        raise ValueError(f"mem_latency = {mem_latency}; must be at least 1 cycle")
    if engine == "native":
        _run_native(cfg, jobs, mem_latency, mem_bytes_per_cycle, progress, extra or {})
    else:
        _run_cocotb(cfg, jobs, mem_latency, mem_bytes_per_cycle, seed, progress, test_module, extra)
    out = []
    for job in jobs:
        res = json.loads((Path(job["dir"]) / "result.json").read_text())
        res["d"] = np.load(Path(job["dir"]) / "D.npy")
        out.append(res)
    return out


# Every fabric is built with the compute tile and the L2 slice as hierarchical blocks (each compiled
# once); fabrics with more PEs than this also run on two threads (docs/simulation.md, "Build settings").
THREADS_MIN_PES = 257


def native_library(cfg, *, trace: bool = False, flat: bool = False, threads: int | None = None,
                   cxx_opt: str | None = None, extra_args=()) -> Path:
    """The fabric's native simulation library (built once per design; :func:`native.build`).

    The defaults are the measured choice (above); ``flat``, ``threads``, ``cxx_opt`` (g++ level)
    and ``extra_args`` (Verilator options) build the alternatives that ``tessera bench sim``
    compares."""
    from tessera.rtl.fabric.export import module_name
    from tessera.rtl.fabric.fabric import mem_prefixes
    from tessera.tools import native

    top = fabric_name(cfg)
    hier = () if flat else (module_name(top, ("tile",)), module_name(top, ("l2",)))
    if threads is None:
        threads = 2 if cfg.tiles * cfg.tensor.rows * cfg.tensor.cols >= THREADS_MIN_PES else 1
    return native.build(fabric_verilog_cached(cfg), top, mem_prefixes(cfg), cfg.cache.data_bytes,
                        hier_blocks=hier, threads=threads, trace=trace, cxx_opt=cxx_opt or native.CXX_OPT,
                        extra_args=extra_args)


def _run_native(cfg, jobs, mem_latency, mem_bytes_per_cycle, progress, extra):
    from tessera.runtime.gemm_map import plan_gemm
    from tessera.runtime.host import (
        check_id,
        flush_cycle_limit,
        gemm_job,
        job_cycle_limit,
        job_record,
        mem_bandwidth,
    )
    from tessera.tools.native import NativeFabric

    waves = os.environ.get("WAVES", "0") not in ("", "0")
    lib = native_library(cfg, trace=waves, **extra.get("build", {}))
    vcd = Path(jobs[0]["dir"]).parent / f"{Path(jobs[0]['dir']).name}.vcd" if waves else None
    # As the cocotb testbench: default one beat (read or write) per port per cycle.
    total = mem_bandwidth(cfg, mem_bytes_per_cycle)
    rate = total / cfg.mem_ports
    with NativeFabric(lib, latency=mem_latency, rate=rate, error_ranges=extra.get("error_ranges", ()),
                      vcd=vcd) as sim:
        if vcd:
            print(f"[tessera] waveform: {vcd} (open it with GTKWave or Surfer)")
        sim.run(check_id())
        for job in jobs:
            work = Path(job["dir"])
            a, b = np.load(work / "A.npy"), np.load(work / "B.npy")
            c = np.load(work / "C.npy") if (work / "C.npy").exists() else None
            (m, k), n = a.shape, b.shape[1]
            plan = plan_gemm(cfg, m, n, k, job["dtype"], has_c=c is not None, multicast=job["multicast"])
            max_cycles = extra.get("max_cycles") or job_cycle_limit(
                cfg, m, n, k, elem_bytes=plan.e, mem_latency=mem_latency, bytes_per_cycle=mem_bytes_per_cycle)
            ideal = m * n * k / (cfg.tiles * cfg.tensor.rows * cfg.tensor.cols)
            bar = _NativeBar(sim, work.name, int(ideal / 0.9) + 1) if progress else None
            t0, c0, e0 = time.monotonic(), sim.cycle, sim.eval_seconds
            try:
                d, info = sim.run(gemm_job(plan, a, b, c, max_cycles=max_cycles,
                                           flush_timeout=flush_cycle_limit(cfg, mem_bytes_per_cycle)),
                                  progress=bar)
            finally:
                if bar:
                    bar.close()
            np.save(work / "D.npy", d)
            rec = job_record(plan, info)
            rec["sim_seconds"] = round(time.monotonic() - t0, 3)
            rec["sim_cycles"] = sim.cycle - c0
            rec["sim_eval_seconds"] = round(sim.eval_seconds - e0, 3)
            (work / "result.json").write_text(json.dumps(rec, indent=2) + "\n")


class _NativeBar:
    """The progress bar of a native run: the cycles the simulation has run for this job (no bus
    access, so the run does not depend on the wall clock), and the simulated cycles per second."""

    def __init__(self, sim, label: str, expect: int):
        from tqdm import tqdm

        self.sim, self.c0, self.t0 = sim, sim.cycle, time.monotonic()
        self.shown = 0.0
        self.bar = tqdm(total=expect, unit="cyc", desc=f"simulating {label}", unit_scale=True, leave=False,
                        mininterval=0.5)

    def __call__(self):
        now = time.monotonic()
        if now - self.shown < 0.5:       # called at every poll of the host: redraw twice a second
            return
        self.shown = now
        n = self.sim.cycle - self.c0
        self.bar.total = max(self.bar.total, n)
        self.bar.n = n
        self.bar.set_postfix_str(f"{n / max(now - self.t0, 1e-9):,.0f} sim cycles/s", refresh=False)
        self.bar.refresh()

    def close(self):
        self.bar.close()


def _run_cocotb(cfg, jobs, mem_latency, mem_bytes_per_cycle, seed, progress, test_module, extra):
    from tessera.rtl.fabric.fabric import Fabric
    from tessera.tools.harness import run

    text = fabric_verilog_cached(cfg)
    params = {"cfg": dataclasses.asdict(cfg), "jobs": jobs, "mem_latency": mem_latency,
              "mem_bytes_per_cycle": mem_bytes_per_cycle, **(extra or {})}
    bar = None
    if progress:
        prog = Path(jobs[0]["dir"]).parent / f"progress-{Path(jobs[0]['dir']).name}.json"
        if prog.exists():
            prog.unlink()
        params["progress"] = str(prog)
        bar = _ProgressBar(prog)
        bar.start()
    try:
        run(Fabric, test_module, name=fabric_name(cfg), verilog_text=text, params=params, seed=seed)
    finally:
        if bar:
            bar.stop()


class _ProgressBar(threading.Thread):
    """A tqdm bar fed from the progress file the testbench rewrites every half second."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.done = path, threading.Event()

    def run(self):
        from tqdm import tqdm

        bar, job = None, None
        while not self.done.wait(0.5):
            try:
                p = json.loads(self.path.read_text())
            except (OSError, ValueError):
                continue
            if bar is None or p.get("job") != job:  # one bar per job
                if bar is not None:
                    bar.close()
                job = p.get("job")
                bar = tqdm(total=p["expect"], unit="cyc", desc=f"simulating {job}", unit_scale=True,
                           leave=False)
            bar.total = max(bar.total, p["cycles"])
            bar.n = p["cycles"]
            bar.refresh()
        if bar is not None:
            bar.close()

    def stop(self):
        self.done.set()
        self.join(timeout=2)
        time.sleep(0)
