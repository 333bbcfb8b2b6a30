"""``tessera bench faults``: a fault campaign on the fabric (native engine). Many small random GEMMs,
each with a random memory (latency, bandwidth) and, in most runs, a region of memory that answers
every read or write burst touching it with SLVERR; each run is classified, and any hang or silent
corruption is a failure (docs/verification.md, "Fault campaigns").

A run ends in one of:

* ``exact``: every tile DONE, no error response, no flush error, D bit-exact with the golden model;
* ``contained``: the memory answered with errors, and they were reported: the tiles that received
  one stopped with FAULT (error code 9), or the final L2 flush counted write errors; every other
  tile ended DONE;
* ``blocked``: the memory answered with errors, the tiles that received one stopped with FAULT,
  and other tiles were still waiting when the watchdog fired: at a SYNC with a stopped tile, or
  for the data of a multicast LOAD that a stopped tile was to send. This is the documented
  behaviour (docs/isa.md, "SYNC": they wait until the host clears the fabric), and not the
  issue's target (the rest completing): it is counted apart;
* ``hang`` (failure): the watchdog fired (a tile still active after the job's cycle limit) with
  no error response or no tile stopped by one, or the flush did not finish;
* ``silent`` (failure): no error was reported but D is wrong, or the memory answered with errors
  and nobody reported them, or a tile stopped without an error response (any other end state).

Each run prints nothing; the summary counts the outcomes; ``--json`` writes every run (shape,
memory, fault region, outcome) so that any one can be replayed with ``--seed S --first I --runs 1``.
"""

from __future__ import annotations

import json
import time

import numpy as np

from tessera.cli.common import check_output, check_range, check_seed, write_output

FAULT = 9                               # docs/isa.md: the error code of a downstream failure
LATENCIES = (1, 2, 7, 30, 100, 300)
RATES = (None, 8.0, 2.0, 0.5)           # bytes per cycle per port (None: one beat per cycle)
TARGETS = ("none", "a", "b", "c", "d", "anywhere")


def register(sub):
    p = sub.add_parser("faults", help="fault campaign: random GEMMs with memory errors (hangs, corruption)",
                       description="Run random small GEMMs on the fabric (native engine) with random memory "
                                   "latency and bandwidth and SLVERR regions; classify each run (exact, "
                                   "contained, blocked, hang, silent) and fail on any hang or silent "
                                   "corruption.")
    p.add_argument("--preset", default="tiny", help="configuration preset: tiny, default, ulx3s")
    p.add_argument("--runs", type=int, default=100, help="runs (default 100)")
    p.add_argument("--seed", type=int, default=1, help="campaign seed; run i draws from (seed, i)")
    p.add_argument("--first", type=int, default=0, help="index of the first run (to replay one)")
    p.add_argument("--max-dim", type=int, default=40, help="largest M, N, K drawn (default 40)")
    p.add_argument("--multicast", choices=("random", "on", "off"), default="random",
                   help="multicast A and B loads: in 3 runs of 4 (random, the default), always, or never")
    p.add_argument("--json", metavar="FILE", help="write every run and the summary as JSON")
    p.set_defaults(func=run)


def draw(cfg, rng: np.random.Generator, max_dim: int, multicast: str = "random") -> dict:
    """One run's parameters: shape, dtype, C, multicast, memory, and which region faults."""
    m, n, k = (int(v) for v in rng.integers(1, max_dim + 1, 3))
    r = {"m": m, "n": n, "k": k, "dtype": str(rng.choice(["bf16", "int8"])),
         "has_c": bool(rng.integers(0, 2)), "multicast": bool(rng.integers(0, 4) > 0),
         "latency": int(rng.choice(LATENCIES)), "rate": RATES[int(rng.integers(0, len(RATES)))],
         "target": str(rng.choice(TARGETS, p=[0.2] + [0.16] * 5)), "where": float(rng.random()),
         "lines": int(rng.integers(1, 5))}
    if multicast != "random":
        r["multicast"] = multicast == "on"
    return r


def fault_range(cfg, plan, image, r: dict) -> tuple[int, int] | None:
    """The SLVERR region of run ``r``: ``lines`` cache lines from a random line of the chosen
    region (A, B or C as :meth:`GemmPlan.pack` lays them out, D, or anywhere in the plan's
    memory), line-aligned; None for no fault."""
    line = cfg.cache.line_bytes
    blobs = {name: (addr, len(data)) for name, (addr, data) in zip("abc", image, strict=False)}
    target = r["target"]
    if target == "none" or (target in ("a", "b", "c") and target not in blobs):
        return None
    if target == "d":
        lo, size = plan.d_addr, plan.m * plan.d_pitch
    elif target == "anywhere":
        lo, size = 0, plan.end
    else:
        lo, size = blobs[target]
    first, count = lo // line, -(-(lo + size) // line) - lo // line
    start = (first + min(count - 1, int(r["where"] * count))) * line
    return start, start + r["lines"] * line


def classify(cfg, plan, d, info, want, errors: int) -> tuple[str, str]:
    """(outcome, detail) of a run that ended (see the module docstring)."""
    states = info["statuses"]
    faulted = sorted(t for t, s in states.items() if s["state"] == "ERROR" and s["error"] == FAULT)
    odd = {t: s for t, s in states.items() if s["state"] != "DONE" and t not in faulted}
    if odd:
        return "silent", f"tiles ended neither DONE nor FAULT: {odd}"
    if errors == 0:
        if faulted or info["flush_errors"]:
            return "silent", (f"FAULT on tiles {faulted} / flush errors {info['flush_errors']} without an"
                              " error response")
        if not np.array_equal(np.asarray(d).view(np.uint32), np.asarray(want).view(np.uint32)):
            bad = int((np.asarray(d).view(np.uint32) != np.asarray(want).view(np.uint32)).sum())
            return "silent", f"all tiles DONE, no error, but {bad} elements of D differ"
        return "exact", ""
    if not faulted and not info["flush_errors"]:
        return "silent", f"{errors} error responses, but no tile FAULT and no flush error"
    return "contained", f"FAULT on tiles {faulted}, flush errors {info['flush_errors']}"


def one_run(cfg, lib, r: dict, rng: np.random.Generator) -> dict:
    from tessera.runtime.gemm_map import plan_gemm
    from tessera.runtime.host import (
        FabricError,
        check_id,
        flush_cycle_limit,
        gemm_job,
        job_cycle_limit,
        statuses,
    )
    from tessera.runtime.random_data import random_operands
    from tessera.tb.models.gemm import gemm
    from tessera.tools.native import NativeError, NativeFabric

    m, n, k, dtype = r["m"], r["n"], r["k"], r["dtype"]
    plan = plan_gemm(cfg, m, n, k, dtype, has_c=r["has_c"], multicast=r["multicast"])
    a, b, c = random_operands(rng, m, n, k, dtype, r["has_c"])
    want = gemm(a, b, c, dtype)
    bad = fault_range(cfg, plan, plan.pack(a, b, c), r)
    r["fault"] = list(bad) if bad else None
    bytes_per_cycle = None if r["rate"] is None else r["rate"] * cfg.mem_ports
    limit = job_cycle_limit(cfg, m, n, k, elem_bytes=plan.e, mem_latency=r["latency"],
                            bytes_per_cycle=bytes_per_cycle)
    rate = r["rate"] if r["rate"] is not None else float(cfg.cache.data_bytes)
    with NativeFabric(lib, latency=r["latency"], rate=rate, error_ranges=[bad] if bad else ()) as sim:
        sim.run(check_id())
        try:
            d, info = sim.run(gemm_job(plan, a, b, c, max_cycles=limit,
                                       flush_timeout=flush_cycle_limit(cfg, bytes_per_cycle)))
        except (FabricError, NativeError) as e:
            errors = sum(p["errors"] for p in sim.mem_counters())
            states = sim.run(statuses(range(cfg.tiles)))
            faulted = [t for t, st in states.items() if st["state"] == "ERROR" and st["error"] == FAULT]
            outcome = "blocked" if errors and faulted and isinstance(e, FabricError) else "hang"
            return {**r, "outcome": outcome, "detail": str(e)[:300], "cycles": sim.cycle,
                    "error_responses": errors}
        errors = sum(p["errors"] for p in sim.mem_counters())
        outcome, detail = classify(cfg, plan, d, info, want, errors)
        return {**r, "outcome": outcome, "detail": detail, "cycles": info["cycles"],
                "error_responses": errors}


def run(args) -> int:
    from tessera.rtl.config import preset
    from tessera.tools.fabric_run import native_library

    try:
        cfg = preset(args.preset)
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None
    check_seed(args.seed)
    check_range(args.runs, "--runs", 1, 1_000_000)
    check_range(args.first, "--first", 0, 1_000_000_000)
    check_range(args.max_dim, "--max-dim", 1, 512)
    out_json = check_output(args.json, "--json")
    lib = native_library(cfg)
    print(f"[tessera] bench faults: {args.runs} runs on '{cfg.name}' (native engine), seed {args.seed},"
          f" runs {args.first} .. {args.first + args.runs - 1}", flush=True)
    t0 = time.monotonic()
    runs, counts = [], {"exact": 0, "contained": 0, "blocked": 0, "hang": 0, "silent": 0}
    for i in range(args.first, args.first + args.runs):
        rng = np.random.default_rng([args.seed, i])
        r = {"run": i, **draw(cfg, rng, args.max_dim, args.multicast)}
        res = one_run(cfg, lib, r, rng)
        counts[res["outcome"]] += 1
        runs.append(res)
        if res["outcome"] in ("hang", "silent"):
            replay = (f"tessera bench faults --preset {cfg.name} --seed {args.seed} --first {i} --runs 1"
                      f" --multicast {args.multicast}")
            print(f"  run {i}: {res['outcome'].upper()}: {res['detail']} (replay: {replay})")
    wall = time.monotonic() - t0
    hit = sum(1 for r in runs if r.get("error_responses"))
    print(f"{args.runs} runs in {wall:.0f} s: {counts['exact']} exact, {counts['contained']} contained,"
          f" {counts['blocked']} blocked behind a faulted tile ({hit} runs received error responses);"
          f" {counts['hang']} hangs, {counts['silent']} silent corruptions")
    if out_json:
        write_output(out_json, json.dumps({"preset": cfg.name, "seed": args.seed, "first": args.first,
                                           "counts": counts, "wall_seconds": round(wall, 1), "runs": runs},
                                          indent=1) + "\n")
    return 1 if counts["hang"] or counts["silent"] else 0
