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


def run_jobs(cfg, jobs: list[dict], *, mem_latency: int = 100, mem_bytes_per_cycle: float | None = None,
             seed: int | None = None, progress: bool = False, test_module: str = "tessera.tb.fabric.run_gemm",
             extra: dict | None = None) -> list[dict]:
    """Run ``jobs`` (dicts with ``dir``, ``dtype``, ``multicast``) in one simulation; return their
    ``result.json`` contents (each with ``D`` loaded as ``d``; see tb/fabric/run_gemm.py). A result
    with ``flush_errors`` > 0 had memory write errors in its final L2 flush (FLUSH_ERRORS), so its
    ``d`` is incomplete: callers must treat it as a failure, as ``tessera gemm`` does."""
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
    out = []
    for job in jobs:
        res = json.loads((Path(job["dir"]) / "result.json").read_text())
        res["d"] = np.load(Path(job["dir"]) / "D.npy")
        out.append(res)
    return out


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
