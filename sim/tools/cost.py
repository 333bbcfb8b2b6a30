"""What a fabric run will cost in wall time: the build still to do and the simulation speed.

With :mod:`tessera.runtime.estimate` (cycles) this is the cost model of docs/usage.md, "Cost
model": ``tessera gemm`` prints its estimate before it starts, and asks for confirmation above
ten minutes; the Python API's ``estimate_gemm`` returns it.

* **Build.** Exporting the fabric's Verilog (skipped when the Verilog cache has it) and compiling
  the native simulation (skipped when ``build/native`` has it; both looked up without building,
  :func:`tessera.tools.fabric_run.build_state`). The seconds are those of the last build of the
  same design on this machine when there is one (``build.json``), else the measured figures of
  ``MEASURED``, else a line through them in the number of PEs.
* **Simulation speed** in cycles per second: ``MEASURED`` for the presets, else inversely
  proportional to the PEs (the model's work per cycle grows with them).
* **Calibration.** The cycle model is the planner's; on some configurations it is off by a steady
  factor (``ulx3s``: with its 1 KiB accumulator memory and 8 KiB of L2 a GEMM runs as many small
  rounds, and its BF16 runs take about 3x the model's cycles). ``MEASURED`` holds that factor per
  preset (measured over estimated cycles).
  Every run of ``tessera gemm`` and the API appends its figures to ``build/runs/history.jsonl``
  (:func:`record_run`); once a configuration has runs there, the median of its last 20 replaces
  both the factor and the speed, so the estimate follows the machine it runs on.

``MEASURED`` holds the figures of docs/results.md and docs/usage.md (2-core machine, native engine,
hierarchical build, g++ -O1; the cocotb engine: docs/simulation.md, its -Os build on ``tiny`` and
the figure from before issue 16 on ``default``; ``ulx3s`` has no cocotb figure and takes the line).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics

# preset -> (export s, native build s, native cycles/s, cocotb cycles/s, measured / estimated cycles)
MEASURED = {
    "tiny": (10, 31, 42_000, 9_600, 1.0),
    "default": (36, 107, 3_500, 350, 1.0),
    "ulx3s": (8, 67, 130_000, None, 3.0),
}
COCOTB_MAX_RATE = 10_000       # cocotb returns to Python on every edge: `tiny` reaches 9,600
# Line through the presets in the PEs (tiny 64, default 1,024): export and build seconds.
EXPORT_S = (8.0, 0.027)        # 8 s + 0.027 s per PE
BUILD_S = (28.0, 0.077)        # 28 s + 0.077 s per PE
RATE_PE_NATIVE = 2.7e6         # native cycles/s x PEs (tiny: 42,000 x 64)
RATE_PE_COCOTB = 2.0e5


def _pes(cfg) -> int:
    return cfg.tiles * cfg.tensor.rows * cfg.tensor.cols


def _measured(cfg):
    from tessera.rtl.config import preset

    try:
        same = cfg.name in MEASURED and preset(cfg.name) == cfg
    except ValueError:
        same = False
    return MEASURED[cfg.name] if same else None


def sim_rate(cfg, engine: str = "native") -> float:
    """Simulated cycles per second of ``cfg`` on ``engine``: this machine's runs, else measured,
    else scaled from the PEs."""
    runs = _history(cfg, engine)
    if runs:
        return statistics.median(r["sim_cycles"] / max(r["sim_seconds"], 1e-9) for r in runs)
    known = _measured(cfg)
    rate = known and (known[2] if engine == "native" else known[3])
    if rate:
        return float(rate)
    if engine == "native":
        return RATE_PE_NATIVE / _pes(cfg)
    return min(COCOTB_MAX_RATE, RATE_PE_COCOTB / _pes(cfg))


def cycle_scale(cfg) -> float:
    """Measured over estimated cycles for ``cfg``: this machine's runs, else ``MEASURED``, else 1."""
    runs = _history(cfg, None)
    if runs:
        return statistics.median(r["sim_cycles"] / max(1, r["estimate"]) for r in runs)
    known = _measured(cfg)
    return known[4] if known else 1.0


def _key(cfg) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]


def _history_path():
    from tessera.tools.toolchain import BUILD

    return BUILD / "runs" / "history.jsonl"


def _history(cfg, engine: str | None, last: int = 20) -> list[dict]:
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
        if r.get("config") == key and (engine is None or r.get("engine") == engine):
            out.append(r)
    return out[-last:]


def record_run(cfg, engine: str, estimate: int, sim_cycles: int, sim_seconds: float):
    """Append one run's figures (unscaled estimate of its simulated cycles, the cycles and
    seconds it took) to the history the estimates learn from."""
    path = _history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {"preset": cfg.name, "config": _key(cfg), "engine": engine, "estimate": int(estimate),
           "sim_cycles": int(sim_cycles), "sim_seconds": round(float(sim_seconds), 3)}
    with open(path, "a") as f:           # one short line: appends from parallel runs do not mix
        f.write(json.dumps(rec) + "\n")


def build_estimate(cfg, *, engine: str = "native", waves: bool = False) -> dict:
    """``{"steps": [(what, seconds), ...], "seconds": total}``: the export and build a run of
    ``cfg`` still needs (none when both are cached)."""
    from tessera.tools.fabric_run import build_state, fabric_name
    from tessera.tools.native import last_build_seconds

    state = build_state(cfg, engine=engine, waves=waves)
    known = _measured(cfg)
    steps = []
    if not state["verilog"]:
        steps.append(("Verilog export", known[0] if known else EXPORT_S[0] + EXPORT_S[1] * _pes(cfg)))
    if not state["built"]:
        last = last_build_seconds(fabric_name(cfg)) if engine == "native" else None
        guess = known[1] if known else BUILD_S[0] + BUILD_S[1] * _pes(cfg)
        what = "native build" if engine == "native" else "Verilator build (cocotb)"
        steps.append((what + (" with tracing" if waves else ""), last or guess))
    return {"steps": steps, "seconds": sum(s for _, s in steps)}
