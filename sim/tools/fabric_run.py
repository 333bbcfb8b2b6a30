"""Run GEMM jobs on the Verilated fabric: Verilog export (cached), build, cocotb, results.

Used by ``tessera gemm`` and by the fabric tests. Exporting a fabric takes a while (the default
preset is 16 tiles of 64 PEs), so the Verilog text is cached (:mod:`tessera.tools.verilog_cache`,
keyed by the configuration and every ``rtl/`` source file); the Verilator build is cached by
the harness (keyed by the Verilog). ``run_jobs`` shows progress when asked to: the cycles
simulated against the cost model's estimate (:mod:`tessera.runtime.estimate`), as a bar on a
terminal and as a plain line every half minute otherwise (:mod:`tessera.tools.progress`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import operator
import os
import threading
import time
from pathlib import Path

import numpy as np

from tessera.runtime.gemm_inputs import save_inputs
from tessera.tools.verilog_cache import cached_verilog


def fabric_name(cfg) -> str:
    return f"fabric_{cfg.name}"


def fabric_verilog_cached(cfg, *, probe: bool = False) -> str | None:
    """The fabric's hierarchical Verilog (:func:`tessera.rtl.fabric.fabric_verilog`), cached;
    ``probe``: only look (None when it is not cached)."""
    from tessera.rtl.fabric import fabric_verilog

    cfg_json = json.dumps(dataclasses.asdict(cfg), sort_keys=True)
    make = None if probe else (lambda: fabric_verilog(cfg, fabric_name(cfg)))
    return cached_verilog(fabric_name(cfg), cfg_json, make)


def build_state(cfg, *, engine: str = "native", waves: bool = False) -> dict:
    """``{"verilog": cached?, "built": simulation built?}`` for a run of ``cfg`` on ``engine``
    (with tracing if ``waves``), found without exporting or building anything."""
    text = fabric_verilog_cached(cfg, probe=True)
    if text is None:
        return {"verilog": False, "built": False}
    if engine == "native":
        return {"verilog": True, "built": native_library(cfg, trace=waves, probe=True, text=text) is not None}
    from tessera.rtl.fabric.fabric import Fabric
    from tessera.tools.harness import build

    return {"verilog": True,
            "built": build(Fabric, fabric_name(cfg), waves=waves, verilog_text=text, probe=True) is not None}


def save_job(work: Path, a, b, c=None, bias=None):
    """A job directory for :func:`run_jobs`: the inputs, no result of an earlier run."""
    save_inputs(work, a, b, c, stale=("D.npy", "result.json"), bias=bias)


def plan_job(cfg, job: dict):
    """(plan, a, b, c, bias) of a job of :func:`run_jobs` (its folder and ``dtype``, ``multicast``,
    optional ``act``)."""
    from tessera.runtime.gemm_inputs import load_job
    from tessera.runtime.gemm_map import plan_gemm

    a, b, c, bias = load_job(Path(job["dir"]))
    (m, k), n = a.shape, b.shape[1]
    plan = plan_gemm(cfg, m, n, k, job["dtype"], has_c=c is not None, multicast=job["multicast"],
                     bias=bias is not None, act=job.get("act", "none"))
    return plan, a, b, c, bias


ENGINES = ("native", "cocotb")


def check_memory(mem_latency, mem_bytes_per_cycle, flag=str) -> int:
    """The memory's settings, refused by name (``flag(name)``: the name to give) unless
    ``mem_latency`` is an integer in 1 .. 1,000,000 cycles and ``mem_bytes_per_cycle`` a positive
    finite number (or None: one AXI beat per port per cycle). Returns the latency as an int."""
    try:
        if isinstance(mem_latency, bool):
            raise TypeError
        latency = operator.index(mem_latency)
    except TypeError:
        raise ValueError(f"{flag('mem_latency')}: {mem_latency!r} is not an integer number of cycles"
                         ) from None
    if not 1 <= latency <= 1_000_000:
        raise ValueError(f"{flag('mem_latency')}: {mem_latency!r} is out of range; allowed: [1, 1000000]"
                         " cycles")
    bw = mem_bytes_per_cycle
    if bw is not None and (isinstance(bw, bool) or not isinstance(bw, numbers.Real) or not math.isfinite(bw)
                           or bw <= 0):
        raise ValueError(f"{flag('mem_bytes_per_cycle')}: {bw!r} must be a positive number of bytes per cycle"
                         " (None: one AXI beat per port per cycle)")
    return latency


def run_jobs(cfg, jobs: list[dict], *, mem_latency: int = 100, mem_bytes_per_cycle: float | None = None,
             seed: int | None = None, progress: bool = False, engine: str = "native",
             test_module: str = "tessera.tb.fabric.run_gemm", extra: dict | None = None,
             waves: bool | None = None, replay: str | None = None) -> list[dict]:
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
    ``sim_eval_seconds`` (the part of ``sim_seconds`` spent inside the Verilated model's ``eval``).

    ``waves`` (None: ``$WAVES``) builds with tracing and writes a VCD: the native engine's into
    the first job's folder as ``waves.vcd`` (every job of the run in one file), the cocotb
    engine's into its run directory; either path is printed and stored as the results' ``vcd``.
    ``replay``: how the cocotb engine's seed line says to replay (:func:`tessera.tools.harness.run`)."""
    if engine not in ENGINES:
        raise ValueError(f"engine = {engine!r}; allowed: {', '.join(ENGINES)}")
    mem_latency = check_memory(mem_latency, mem_bytes_per_cycle)
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    if engine == "native":
        vcd = _run_native(cfg, jobs, mem_latency, mem_bytes_per_cycle, progress, extra or {}, waves)
    else:
        vcd = _run_cocotb(cfg, jobs, mem_latency, mem_bytes_per_cycle, seed, progress, test_module, extra,
                          waves, replay)
    out = []
    for job in jobs:
        res = json.loads((Path(job["dir"]) / "result.json").read_text())
        res["d"] = np.load(Path(job["dir"]) / "D.npy")
        if vcd:
            res["vcd"] = str(vcd)
        out.append(res)
    return out


# Every fabric is built with the compute tile and the L2 slice as hierarchical blocks (each compiled
# once); fabrics with more PEs than this also run on two threads (docs/simulation.md, "Build settings").
THREADS_MIN_PES = 257


def native_library(cfg, *, trace: bool = False, flat: bool = False, threads: int | None = None,
                   cxx_opt: str | None = None, extra_args=(), probe: bool = False, text: str | None = None
                   ) -> Path | None:
    """The fabric's native simulation library (built once per design; :func:`native.build`).

    The defaults are the measured choice (above); ``flat``, ``threads``, ``cxx_opt`` (g++ level)
    and ``extra_args`` (Verilator options) build the alternatives that ``tessera bench sim``
    compares. ``probe``: build nothing, None when not built (``text``: the Verilog, if at hand)."""
    from tessera.rtl.fabric.export import module_name
    from tessera.rtl.fabric.fabric import mem_prefixes
    from tessera.tools import native

    top = fabric_name(cfg)
    hier = () if flat else (module_name(top, ("tile",)), module_name(top, ("l2",)))
    if threads is None:
        threads = 2 if cfg.tiles * cfg.tensor.rows * cfg.tensor.cols >= THREADS_MIN_PES else 1
    return native.build(text or fabric_verilog_cached(cfg), top, mem_prefixes(cfg), cfg.cache.data_bytes,
                        hier_blocks=hier, threads=threads, trace=trace, cxx_opt=cxx_opt or native.CXX_OPT,
                        extra_args=extra_args, probe=probe)


def _run_native(cfg, jobs, mem_latency, mem_bytes_per_cycle, progress, extra, waves):
    from tessera.runtime.estimate import gemm_cycles
    from tessera.runtime.host import (
        check_id,
        flush_cycle_limit,
        gemm_job,
        job_cycle_limit,
        job_record,
        mem_bandwidth,
    )
    from tessera.tools.cost import cycle_scale
    from tessera.tools.harness import waveform_line
    from tessera.tools.native import NativeFabric

    lib = native_library(cfg, trace=waves, **extra.get("build", {}))
    vcd = Path(jobs[0]["dir"]) / "waves.vcd" if waves else None
    # As the cocotb testbench: default one beat (read or write) per port per cycle.
    total = mem_bandwidth(cfg, mem_bytes_per_cycle)
    rate = total / cfg.mem_ports
    with NativeFabric(lib, latency=mem_latency, rate=rate, error_ranges=extra.get("error_ranges", ()),
                      vcd=vcd) as sim:
        if vcd:
            print(f"[tessera] {waveform_line(vcd)}")
        sim.run(check_id())
        for job in jobs:
            work = Path(job["dir"])
            plan, a, b, c, bias = plan_job(cfg, job)
            m, n, k = plan.m, plan.n, plan.k
            max_cycles = extra.get("max_cycles") or job_cycle_limit(
                cfg, m, n, k, elem_bytes=plan.e, mem_latency=mem_latency, bytes_per_cycle=mem_bytes_per_cycle)
            expect = gemm_cycles(plan, mem_latency=mem_latency, mem_bytes_per_cycle=mem_bytes_per_cycle)
            bar = _NativeBar(sim, work.name, expect["total"] * cycle_scale(cfg)) if progress else None
            t0, c0, e0 = time.monotonic(), sim.cycle, sim.eval_seconds
            try:
                d, info = sim.run(gemm_job(plan, a, b, c, bias=bias, max_cycles=max_cycles,
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
    return vcd


class _NativeBar:
    """The progress of a native run: the cycles the simulation has run for this job (no bus access,
    so the run does not depend on the wall clock). Called at every poll of the host; looks at the
    clock twice a second."""

    def __init__(self, sim, label: str, expect: int):
        from tessera.tools.progress import Progress

        self.sim, self.c0, self.shown = sim, sim.cycle, 0.0
        self.progress = Progress(f"simulating {label}", expect)

    def __call__(self):
        now = time.monotonic()
        if now - self.shown >= 0.5:
            self.shown = now
            self.progress.update(self.sim.cycle - self.c0)

    def close(self):
        self.progress.close()


def _run_cocotb(cfg, jobs, mem_latency, mem_bytes_per_cycle, seed, progress, test_module, extra, waves,
                replay):
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
        run_dir = run(Fabric, test_module, name=fabric_name(cfg), verilog_text=text, params=params, seed=seed,
                      waves=waves, replay=replay)
    finally:
        if bar:
            bar.stop()
    return run_dir / "dump.vcd" if waves else None


class _ProgressBar(threading.Thread):
    """Progress (:class:`tessera.tools.progress.Progress`) fed from the file the testbench rewrites
    every half second: one per job."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.done = path, threading.Event()

    def run(self):
        from tessera.tools.progress import Progress

        bar, job = None, None
        while not self.done.wait(0.5):
            try:
                p = json.loads(self.path.read_text())
            except (OSError, ValueError):
                continue
            if bar is None or p.get("job") != job:
                if bar is not None:
                    bar.close()
                job = p.get("job")
                bar = Progress(f"simulating {job}", p["expect"])
            bar.update(p["cycles"])
        if bar is not None:
            bar.close()

    def stop(self):
        self.done.set()
        self.join(timeout=2)
