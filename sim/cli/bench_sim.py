"""``tessera bench sim``: how fast the native engine simulates the fabric, and where the time goes.

Runs one BF16 GEMM (random data, ``--m --n --k``, default 128^3) on the preset's fabric with the
native engine (:mod:`tessera.tools.native`), checks D against the golden model, then lets the
model run on its own (a C++ loop that only toggles the clock, after reset: the model's own speed)
for as many cycles as the GEMM simulated, unless ``--toggle`` says otherwise, twice, and takes the
mean. Reports the simulated cycles per second of the GEMM (host, memory and harness included),
the share of its wall time spent inside the Verilated model's ``eval`` (the rest is host, memory,
harness and Python), the model-alone speed, and the build's time and options (docs/simulation.md).
"""

from __future__ import annotations

import json
import os
import shlex
import time

import numpy as np


def register(sub):
    p = sub.add_parser("sim", help="speed of the native fabric simulation (cycles/s, time split)",
                       description="Run a BF16 GEMM on the fabric with the native engine and report "
                                   "simulated cycles per second, the time inside the model, and the "
                                   "model's own speed.")
    p.add_argument("--preset", default="default", help="configuration preset: tiny, default, ulx3s")
    for dim in ("m", "n", "k"):
        p.add_argument(f"--{dim}", type=int, default=128, help=f"GEMM {dim.upper()}")
    p.add_argument("--toggle", type=int, default=None,
                   help="cycles of the model alone (default: as many as the GEMM simulated)")
    p.add_argument("--seed", type=int, default=1, help="random data seed")
    g = p.add_argument_group("build settings (default: the measured choice, docs/simulation.md)")
    g.add_argument("--flat", action="store_true", help="inline every module (no hierarchical blocks)")
    g.add_argument("--threads", type=int, help="Verilator --threads (default: 2 above 256 PEs, else 1)")
    g.add_argument("--opt", choices=("O0", "O1", "O2", "O3", "Os"), help="g++ level (default O1)")
    g.add_argument("--verilator-args", default="",
                   help='more Verilator options, e.g. "--x-assign unique --x-initial unique"')
    p.add_argument("--json", help="write the figures as JSON to this file")
    p.set_defaults(func=run)


def run(args) -> int:
    from tessera.cli.common import check_output, check_range, check_seed, write_output
    from tessera.rtl.config import preset
    from tessera.runtime.gemm_map import plan_gemm
    from tessera.runtime.random_data import random_bf16
    from tessera.tb.models.gemm import gemm
    from tessera.tools.fabric_run import fabric_name, native_library, run_jobs, save_job
    from tessera.tools.native import NativeFabric, build_record
    from tessera.tools.toolchain import BUILD

    try:
        cfg = preset(args.preset)
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None
    for dim in ("m", "n", "k"):
        check_range(getattr(args, dim), f"--{dim}", 1)
    check_range(args.toggle, "--toggle", 1)
    check_range(args.threads, "--threads", 1, 64)
    check_seed(args.seed)
    try:
        extra_args = tuple(shlex.split(args.verilator_args))
    except ValueError as e:
        raise ValueError(f"--verilator-args: {e}") from None
    build = {"flat": args.flat, "threads": args.threads, "cxx_opt": args.opt and f"-{args.opt}",
             "extra_args": extra_args}
    try:
        plan_gemm(cfg, args.m, args.n, args.k, "bf16", has_c=False)
    except ValueError as e:
        raise ValueError(f"--m/--n/--k: {e}") from None
    if os.environ.get("WAVES", "0") not in ("", "0"):
        raise ValueError("WAVES is set: tracing would slow the run it measures (use tessera gemm for waves)")
    out_json = check_output(args.json, "--json")
    t0 = time.monotonic()
    lib = native_library(cfg, **build)
    prepare = time.monotonic() - t0
    rng = np.random.default_rng(args.seed)
    a, b = random_bf16(rng, (args.m, args.k)), random_bf16(rng, (args.k, args.n))
    work = BUILD / "bench" / "sim" / f"{fabric_name(cfg)}-{args.m}x{args.n}x{args.k}-{args.seed}"
    save_job(work, a, b)
    res = run_jobs(cfg, [{"dir": str(work), "dtype": "bf16", "multicast": True}], extra={"build": build})[0]
    exact = bool(np.array_equal(res["d"].view(np.uint32), gemm(a, b, None, "bf16")))
    toggle = args.toggle or res["sim_cycles"]
    alone = sum(_model_alone(NativeFabric, lib, toggle) for _ in range(2)) / 2
    rate = res["sim_cycles"] / res["sim_seconds"]
    out = {
        "preset": cfg.name, "m": args.m, "n": args.n, "k": args.k, "bit_exact": exact,
        "cycles": res["cycles"], "sim_cycles": res["sim_cycles"], "sim_seconds": res["sim_seconds"],
        "sim_cycles_per_second": round(rate),
        "eval_share": round(res["sim_eval_seconds"] / res["sim_seconds"], 4),
        "eval_cycles_per_second": round(res["sim_cycles"] / res["sim_eval_seconds"]),
        "model_alone_cycles_per_second": round(alone), "model_alone_cycles": toggle,
        "harness_overhead": round(1 - rate / alone, 4),
        "export_and_build_seconds_this_run": round(prepare, 1),
        "build": build_record(lib),
    }
    print(f"tessera bench sim: {cfg.name}, {args.m}x{args.n}x{args.k} BF16 GEMM, native engine"
          f" ({'bit-exact' if exact else 'WRONG RESULT'})")
    print(f"  GEMM: {res['cycles']:,} cycles; {res['sim_cycles']:,} cycles simulated in"
          f" {res['sim_seconds']:.2f} s"
          f" = {rate:,.0f} cycles/s (host, memory and flush included)")
    print(f"  inside the model's eval: {out['eval_share']:.1%} of the wall time"
          f" ({res['sim_cycles'] / res['sim_eval_seconds']:,.0f} cycles per second of eval)")
    print(f"  model alone (clock toggling only, {toggle:,} cycles, twice):"
          f" {alone:,.0f} cycles/s; harness overhead"
          f" {out['harness_overhead']:.1%}")
    rec = out["build"]
    if rec:
        print(f"  build: {rec.get('build_s')} s, g++ {rec.get('cxx_opt')},"
              f" Verilator {' '.join(rec.get('args', []))}")
    if out_json:
        write_output(out_json, json.dumps(out, indent=2) + "\n")
    return 0 if exact else 1


def _model_alone(native_fabric, lib, cycles: int) -> float:
    """Cycles per second of the model alone: ``cycles`` clock toggles after reset, nothing else."""
    with native_fabric(lib) as sim:
        t = time.monotonic()
        sim.toggle_only(cycles)
        return cycles / (time.monotonic() - t)
