"""What a fabric run will cost in wall time: the build still to do and the simulation speed.

With :mod:`tessera.runtime.estimate` (cycles) this is the cost model of docs/usage.md, "Cost
model": ``tessera gemm`` prints its estimate before it starts, and asks for confirmation above
ten minutes; the Python API's ``estimate_gemm`` returns it.

* **Build.** Exporting the fabric's Verilog (skipped when the Verilog cache has it) and building
  the simulation (skipped when ``build/native``, or for the cocotb engine ``build/sim``, has that
  very build, tracing or not; looked up without building, :func:`tessera.tools.fabric_run.build_state`).
  The seconds are those of the last build of the same design on this machine when there is one
  (``build.json``, ``build_times.jsonl``), else ``MEASURED``, else a line in the number of PEs.
* **Simulation speed** in cycles per second: this machine's runs, else ``MEASURED``, else inversely
  proportional to the PEs (the model's work per cycle grows with them); tracing (``--waves``)
  divides it by ``WAVES_SLOWDOWN``, and the VCD's size is estimated too (:func:`vcd_bytes`).
* **Calibration.** The cycle model is the planner's; on some configurations it is off by a steady
  factor (``ulx3s``: with its 1 KiB accumulator memory and 8 KiB of L2 a GEMM runs as many small
  rounds, and its BF16 runs take about 3x the model's cycles). ``MEASURED`` holds that factor per
  preset (measured over estimated cycles).
  Every run of ``tessera gemm`` and the API appends its figures to ``build/runs/history.jsonl``
  (:func:`record_run`); once a configuration has runs there, the median of its last 20 replaces
  both the factor and the speed (runs with tracing only for traced speeds), so the estimate
  follows the machine it runs on. ``make clean`` removes that history.

``MEASURED`` holds the figures of docs/results.md and docs/usage.md (2-core machine, native engine,
hierarchical build, g++ -O1; the cocotb engine: docs/simulation.md and ``build_times.jsonl``, its
-Os build on ``tiny`` and the figures from before issue 16 on ``default``; ``ulx3s`` has no cocotb
figure and takes the line).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
from typing import NamedTuple


class Measured(NamedTuple):
    export_s: float           # Verilog export, seconds
    native_build_s: float     # native engine build (g++ -O1), seconds
    cocotb_build_s: float | None    # cocotb engine build (g++ -Os), seconds
    native_rate: float        # native engine, simulated cycles per second
    cocotb_rate: float | None
    scale: float              # measured over estimated cycles


MEASURED = {
    "tiny": Measured(10, 31, 59, 42_000, 9_600, 1.0),
    "default": Measured(36, 107, 643, 3_500, 350, 1.0),
    "ulx3s": Measured(8, 67, None, 130_000, None, 3.0),
}
COCOTB_MAX_RATE = 10_000       # cocotb returns to Python on every edge: `tiny` reaches 9,600
# Line through the presets in the PEs (tiny 64, default 1,024): export and build seconds.
EXPORT_S = (8.0, 0.027)        # 8 s + 0.027 s per PE
BUILD_S = (28.0, 0.077)        # 28 s + 0.077 s per PE (native); the cocotb build: COCOTB_BUILD_S
COCOTB_BUILD_S = (20.0, 0.61)  # 20 s + 0.61 s per PE (tiny 59 s, default 643 s)
RATE_PE_NATIVE = 2.7e6         # native cycles/s x PEs (tiny: 42,000 x 64)
RATE_PE_COCOTB = 2.0e5
# Tracing (--waves): measured on `tiny` (native engine, a 32^3 GEMM), 8,300 cycles/s instead of
# 41,000 and a VCD of 16 MB for about 3,300 cycles: 75 bytes per PE and cycle.
WAVES_SLOWDOWN = 5.0
VCD_BYTES_PER_PE_CYCLE = 75


def _pes(cfg) -> int:
    return cfg.tiles * cfg.tensor.rows * cfg.tensor.cols


def _measured(cfg):
    from tessera.rtl.config import preset

    try:
        same = cfg.name in MEASURED and preset(cfg.name) == cfg
    except ValueError:
        same = False
    return MEASURED[cfg.name] if same else None


def sim_rate(cfg, engine: str = "native", waves: bool = False) -> float:
    """Simulated cycles per second of ``cfg`` on ``engine`` (with tracing if ``waves``): this
    machine's runs, else measured, else scaled from the PEs."""
    runs = _history(cfg, engine, waves)
    if runs:
        return statistics.median(r["sim_cycles"] / max(r["sim_seconds"], 1e-9) for r in runs)
    known = _measured(cfg)
    rate = known and (known.native_rate if engine == "native" else known.cocotb_rate)
    if not rate:
        rate = RATE_PE_NATIVE / _pes(cfg) if engine == "native" else min(COCOTB_MAX_RATE,
                                                                         RATE_PE_COCOTB / _pes(cfg))
    return float(rate) / (WAVES_SLOWDOWN if waves else 1.0)


def vcd_bytes(cfg, cycles: int) -> int:
    """About how large a VCD of ``cycles`` simulated cycles of ``cfg`` grows."""
    return int(VCD_BYTES_PER_PE_CYCLE * _pes(cfg) * cycles)


def cycle_scale(cfg) -> float:
    """Measured over estimated cycles for ``cfg``: this machine's runs, else ``MEASURED``, else 1."""
    runs = _history(cfg, None, None)
    if runs:
        return statistics.median(r["sim_cycles"] / max(1, r["estimate"]) for r in runs)
    known = _measured(cfg)
    return known.scale if known else 1.0


def _key(cfg) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]


def _history_path():
    from tessera.tools.toolchain import BUILD

    return BUILD / "runs" / "history.jsonl"


def _history(cfg, engine: str | None, waves: bool | None, last: int = 20) -> list[dict]:
    try:
        lines = _history_path().read_text().splitlines()
    except OSError:
        return []
    key, out = _key(cfg), []
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("config") == key and (engine is None or r.get("engine") == engine) \
                and (waves is None or bool(r.get("waves")) == waves):
            out.append(r)
    return out[-last:]


def record_run(cfg, engine: str, estimate: int, sim_cycles: int, sim_seconds: float, waves: bool = False):
    """Append one run's figures (unscaled estimate of its simulated cycles, the cycles and
    seconds it took) to the history the estimates learn from."""
    path = _history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {"preset": cfg.name, "config": _key(cfg), "engine": engine, "waves": bool(waves),
           "estimate": int(estimate), "sim_cycles": int(sim_cycles),
           "sim_seconds": round(float(sim_seconds), 3)}
    with open(path, "a") as f:           # one short line: appends from parallel runs do not mix
        f.write(json.dumps(rec) + "\n")


def build_estimate(cfg, *, engine: str = "native", waves: bool = False) -> dict:
    """``{"steps": [(what, seconds), ...], "seconds": total}``: the export and build a run of
    ``cfg`` still needs (none when both are cached)."""
    from tessera.tools.fabric_run import build_state, fabric_name
    from tessera.tools.harness import CXX_OPT_ENV
    from tessera.tools.harness import last_build_seconds as harness_last
    from tessera.tools.native import last_build_seconds as native_last

    state = build_state(cfg, engine=engine, waves=waves)
    known = _measured(cfg)
    steps = []
    if not state["verilog"]:
        steps.append(("Verilog export", known.export_s if known else EXPORT_S[0] + EXPORT_S[1] * _pes(cfg)))
    if not state["built"]:
        if engine == "native":
            last = native_last(fabric_name(cfg))
            line, measured, what = BUILD_S, known and known.native_build_s, "native build"
        else:
            last = harness_last(fabric_name(cfg), os.environ.get(CXX_OPT_ENV) or "-Os")
            line, measured, what = COCOTB_BUILD_S, known and known.cocotb_build_s, "Verilator build (cocotb)"
        guess = measured or line[0] + line[1] * _pes(cfg)
        steps.append((what + (" with tracing" if waves else ""), last or guess))
    return {"steps": steps, "seconds": sum(s for _, s in steps)}
