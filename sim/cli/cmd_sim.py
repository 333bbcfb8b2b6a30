"""``tessera sim``: the main simulation of a preset under Verilator, checked against the models.

Workloads (``--workload``):

* ``gemm`` (the default, what ``make sim`` runs): a 256 x 256 x 256 BF16 GEMM (``--size``) with
  random data (``--seed``, default 1, printed) on the whole fabric of the preset, checked
  bit-exactly, reported next to the same run without multicast (``tessera gemm
  --compare-multicast``; see sim/cli/cmd_gemm.py).
* ``numeric``: random vectors through the three numeric units of the preset (BF16 multiplier,
  FP32 adder, INT8 MAC at the preset's latencies), checked bit-exact against the SoftFloat
  model, with a per-cycle excerpt and a summary.

A workload is a function ``(config, args) -> exit code`` listed in ``WORKLOADS``.
"""

from __future__ import annotations

import json
import os

from tessera.cli.common import check_range, check_seed, refuse_inapplicable

EXCERPT_CYCLES = 12


def register(sub):
    p = sub.add_parser("sim", help="main simulation of a preset under Verilator (checked)",
                       description="Run the main simulation of a preset under Verilator and check "
                                   "every result against the golden model.")
    p.add_argument("--preset", default="default", help="configuration preset: tiny, default, ulx3s")
    p.add_argument("--workload", default="gemm", help=f"what to run: {', '.join(WORKLOADS)} (default gemm)")
    p.add_argument("--size", type=int, default=None, help="gemm: M = N = K (default 256)")
    p.add_argument("--report", default=None,
                   help="gemm: report JSON file (default build/sim/gemm_report.json)")
    p.add_argument("--engine", default=None, choices=("native", "cocotb"),
                   help="gemm: simulation engine (default native; see tessera gemm --help)")
    p.add_argument("--waves", action="store_true", help="gemm: write a VCD waveform (path printed)")
    p.add_argument("--yes", "-y", action="store_true",
                   help="gemm: run without asking even if the estimate is above 10 minutes")
    p.add_argument("--vectors", type=int, default=None,
                   help="numeric: random operand sets per unit (default 10000)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed, printed (default: gemm 1, so that make sim is reproducible; "
                        "numeric random)")
    p.add_argument("--en-prob", type=float, default=None,
                   help="numeric: probability that a unit's clock enable is high in a cycle (default 1.0)")
    p.set_defaults(func=run)


def _f32(bits: int) -> str:
    from tessera.tb.models.numerics import f32_value

    return f"{bits:#010x} {f32_value(bits):<13.6g}"


def _bf16(bits: int) -> str:
    return f"{bits:#06x} {_f32(bits << 16)[11:]}"


def _i32(v: int) -> str:
    v &= 0xFFFFFFFF
    return f"{v - (1 << 32) if v >> 31 else v:>11}"


def _i8(v: int) -> str:
    v &= 0xFF
    return f"{v - 256 if v >> 7 else v:>4}"


# unit -> (column headings, operand formatters, result heading, result formatter)
_COLUMNS = {
    "bf16_mul": (("a (bf16)", "b (bf16)"), (_bf16, _bf16), "p (fp32)", _f32),
    "fp32_add": (("a (fp32)", "b (fp32)"), (_f32, _f32), "s (fp32)", _f32),
    "int8_mac": (("a", "b", "c"), (_i8, _i8, _i32), "s = c + a*b", _i32),
}


def print_excerpt(unit: dict, trace: list[dict]):
    """Per-cycle table of one unit: operands sampled at each edge, the output after it."""
    name, latency = unit["unit"], unit["latencies"][0]
    heads, fmts, out_head, out_fmt = _COLUMNS[name]
    print(f"\n{name} (latency {latency}): operands sampled at each rising edge, the output after it")
    widths = [len(f(0)) for f in fmts]
    print(f"  {'edge':>4} {'en':>2}  " + "  ".join(f"{h:<{w}}" for h, w in zip(heads, widths, strict=True))
          + f"  | {out_head:<{len(out_fmt(0))}}  from edge")
    accepted = []                               # edge of every accepted operand set
    for row in trace:
        cell = row[name]
        if cell["en"]:
            accepted.append(row["edge"])
        ops = "  ".join(f(v) for f, v in zip(fmts, cell["in"], strict=True))
        if not cell["out"]:
            result = "(pipeline filling)"
        else:
            ((got, want, index),) = cell["out"].values()
            origin = accepted[index] if index < len(accepted) else "?"
            verdict = "" if got == want else f"  MISMATCH, expected {out_fmt(want)}"
            result = f"{out_fmt(got)}  {origin:>9}{verdict}"
        print(f"  {row['edge']:>4} {cell['en']:>2}  {ops}  | {result}")


def run_numeric(cfg, args) -> int:
    from tessera.tb.numeric.units import NumericUnits
    from tessera.tools.harness import resolve_seed
    from tessera.tools.harness import run as run_cocotb
    from tessera.tools.toolchain import BUILD

    refuse_inapplicable(args, {"size": None, "report": None, "engine": None, "waves": False, "yes": False},
                        "applies to the gemm workload only, not to --workload numeric")
    args.vectors = 10_000 if args.vectors is None else args.vectors
    args.en_prob = 1.0 if args.en_prob is None else args.en_prob

    num = cfg.tensor.numeric
    latency = {"bf16_mul": [num.fmul_latency], "fp32_add": [num.fadd_latency], "int8_mac": [num.mac8_latency]}
    seed = resolve_seed(args.seed)
    print(f"tessera sim: preset {cfg.name}, workload numeric: "
          + ", ".join(f"{u} (latency {lat[0]})" for u, lat in latency.items())
          + f"; {args.vectors} random vectors per unit, en probability {args.en_prob}, seed {seed}")
    # Named by the latencies, so presets with the same numeric units share one Verilator build.
    build_name = "tessera_sim_numeric_" + "_".join(str(lat[0]) for lat in latency.values())
    result_path = BUILD / "sim" / f"{build_name}-{os.getpid()}.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.unlink(missing_ok=True)
    failed = None
    try:
        run_cocotb(NumericUnits(latency), "tessera.tb.numeric.test_units", name=build_name, seed=seed,
                   replay="--seed {seed}",
                   params={"latency": latency, "count": args.vectors, "specials": False,
                           "en_prob": args.en_prob, "trace": EXCERPT_CYCLES,
                           "result_path": str(result_path)})
    except AssertionError as e:
        failed = e
    if not result_path.exists():
        print(f"tessera sim: the simulation produced no results\n{failed}")
        return 1
    result = json.loads(result_path.read_text())
    result_path.unlink()

    for u in result["units"]:
        print_excerpt(u, result["trace"])

    cycles = result["cycles"]
    print(f"\nsummary ({cycles} cycles simulated, seed {seed}):")
    print(f"  {'unit':<10} {'latency':>7} {'vectors':>8} {'mismatches':>10} {'enabled':>8} "
          f"{'results/cycle':>13}")
    bad = 0
    for u in result["units"]:
        bad += u["mismatches"] + (u["vectors"] - u["checked"])
        print(f"  {u['unit']:<10} {u['latencies'][0]:>7} {u['vectors']:>8} {u['mismatches']:>10} "
              f"{u['enabled_cycles']:>8} {u['checked'] / cycles:>13.4f}")
        for mm in u["first_mismatches"]:
            print(f"    mismatch #{mm['index']}: operands {mm['operands']} -> {mm['got']}, "
                  f"expected {mm['expected']}")
    if failed is not None or bad:
        print("tessera sim: FAILED (replay with --seed %d)" % seed)
        return 1
    print("tessera sim: all results bit-exact")
    return 0


def run_gemm(cfg, args) -> int:
    import argparse

    from tessera.cli import cmd_gemm

    refuse_inapplicable(args, {"vectors": None, "en_prob": None},
                        "applies to the numeric workload only, not to --workload gemm")
    size = 256 if args.size is None else args.size
    if size < 1:
        raise ValueError(f"--size: must be at least 1, not {size}")
    seed = 1 if args.seed is None else args.seed
    print(f"tessera sim: preset {cfg.name}, workload gemm: {size}^3 BF16, random data with seed {seed}"
          f" (replay with --seed {seed})")
    parser = argparse.ArgumentParser(prog="tessera gemm")
    cmd_gemm.add_arguments(parser)
    argv = ["--preset", cfg.name, "--m", str(size), "--n", str(size), "--k", str(size), "--dtype", "bf16",
            "--seed", str(seed), "--compare-multicast", "--engine", args.engine or "native",
            "--json", args.report or "build/sim/gemm_report.json"]
    argv += ["--waves"] * args.waves + ["--yes"] * args.yes
    return cmd_gemm.run(parser.parse_args(argv))


WORKLOADS = {"gemm": run_gemm, "numeric": run_numeric}


def run(args) -> int:
    from tessera.rtl.config import preset

    try:
        cfg = preset(args.preset)
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None
    if args.workload not in WORKLOADS:
        raise ValueError(f"--workload: unknown workload {args.workload!r}; allowed: {', '.join(WORKLOADS)}")
    if args.vectors is not None and args.vectors < 1:
        raise ValueError(f"--vectors: must be at least 1, not {args.vectors}")
    check_seed(args.seed)
    if args.en_prob is not None:
        check_range(args.en_prob, "--en-prob", 0.0, 1.0, lo_open=True)
    return WORKLOADS[args.workload](cfg, args)
