"""``tessera bench vector``: every operation of the vector engine (special functions included) and
the softmax and layer-norm programs on random data, in one simulation of ``VectorTop`` (the preset
with ``TileConfig.sfu``) under Verilator, each checked bit for bit against
``tb/models/vector_exec.py``; a table of cycles and elements per cycle (and per lane).

Cycles count from the descriptor's handshake to ``busy`` falling, with no other traffic on the
memories (``tb/vector/bench.py``). Placement as ``tessera vector``'s: x at 0, y after it, an FP32
output after y, or in place (d = x, marked in the table) when three regions do not fit the
accumulator memory; BF16 / INT8 outputs at 0 in the scratchpad.
"""

from __future__ import annotations

import json
import time

import numpy as np

from tessera.cli.common import check_output, check_range, check_seed, write_output

# (label, --op of tessera vector, second operand: None, "y" (shaped for the op), "imm", "scale"; transpose)
CASES = [
    ("copy (pass, FP32)", "copy", None, False),
    ("add (region)", "add", "y", False),
    ("add_row (bias)", "add_row", "y", False),
    ("mul_col (per row)", "mul_col", "y", False),
    ("mul by an immediate", "mul", "imm", False),
    ("max (region)", "max", "y", False),
    ("min (region)", "min", "y", False),
    ("mask_pos (region)", "mask_pos", "y", False),
    ("relu", "relu", None, False),
    ("iadd (region)", "iadd", "y", False),
    ("to_bf16", "to_bf16", None, False),
    ("to_bf16 transposed", "to_bf16", None, True),
    ("requant per column", "requant", "scale", False),
    ("requant transposed", "requant", "scale", True),
    ("rowsum", "rowsum", None, False),
    ("rowmax", "rowmax", None, False),
    ("gelu", "gelu", None, False),
    ("exp", "exp", None, False),
    ("recip", "recip", None, False),
    ("rsqrt", "rsqrt", None, False),
    ("softmax (5 VECTORs, in place)", "softmax", None, False),
    ("layernorm (9 VECTORs, in place)", "layernorm", None, False),
]


def register(sub):
    p = sub.add_parser("vector",
                       help="every vector-engine operation under Verilator (cycles, elements/cycle)",
                       description="Run every operation of the vector engine and the softmax and "
                                   "layer-norm programs on random data in one Verilator simulation of the "
                                   "engine with the tile's memories, check each bit-exactly against "
                                   "tb/models/vector_exec.py and print cycles and elements per cycle.")
    p.add_argument("--preset", default="tiny", help="configuration preset: tiny, default, ulx3s")
    p.add_argument("--rows", type=int, default=8, help="rows of x")
    p.add_argument("--cols", type=int, default=None,
                   help="columns of x (default: 64, halved until two regions of rows x cols fit the "
                        "preset's accumulator memory)")
    p.add_argument("--seed", type=int, default=1, help="seed of the random data")
    p.add_argument("--json", metavar="FILE", help="write the table as JSON")
    p.set_defaults(func=run)


def default_cols(cfg, rows: int) -> int:
    from tessera.tb.models import vector_exec as vx

    cols = 64
    while cols > 1 and 2 * rows * vx.pitch(4 * cols, cfg.tile.word_bytes) > cfg.tile.accumulator_bytes:
        cols //= 2
    return cols


def _job(cfg, label, op, operand, transpose, rows, cols, rng):
    """The job of one table row; FP32 data with specials, INT32 for iadd and requant."""
    from tessera.cli.cmd_vector import make_job
    from tessera.tb.vector.jobs import values

    ints = op in ("iadd", "requant")
    if op in ("softmax", "layernorm"):
        from tessera.runtime import vector_programs as vp

        x = np.float32(rng.normal(0, 4, (rows, cols))).view(np.uint32)
        if op == "softmax":
            return vp.job(cfg, op, x)[0], False
        gamma, beta = (np.float32(rng.normal(mu, 0.3, cols)).view(np.uint32) for mu in (1, 0))
        return vp.job(cfg, op, x, gamma, beta)[0], False
    x = values(rng, rows * cols, ints=ints).reshape(rows, cols)
    y = imm = None
    if operand == "y":
        shape = {"add_row": (cols,), "mul_col": (rows,)}.get(op, (rows, cols))
        y = values(rng, int(np.prod(shape)), ints=ints).reshape(shape)
    elif operand == "imm":
        imm = int(np.float32(rng.normal(0, 2)).view(np.uint32))
    elif operand == "scale":
        y = np.float32(rng.uniform(1e-9, 1e-7, cols)).view(np.uint32)
    try:
        job, _ = make_job(cfg, op, x, y, imm, transpose=transpose)
        in_place = False
    except ValueError:
        job, _ = make_job(cfg, op, x, y, imm, transpose=transpose, in_place=True)
        in_place = True
    return job, in_place


def run(args) -> int:
    from tessera.cli.cmd_vector import config, report
    from tessera.tb.vector.jobs import run_jobs

    cfg = config(args.preset)
    check_seed(args.seed)
    out_json = check_output(args.json, "--json")
    check_range(args.rows, "--rows", 1, 4095)
    cols = args.cols if args.cols is not None else default_cols(cfg, args.rows)
    check_range(cols, "--cols", 1, 4095)
    rng = np.random.default_rng(args.seed)
    jobs, labels = [], []
    for label, op, operand, transpose in CASES:
        try:
            job, in_place = _job(cfg, label, op, operand, transpose, args.rows, cols, rng)
        except ValueError as e:
            why = str(e).removeprefix("--x: ")
            raise ValueError(f"--rows / --cols: {args.rows} x {cols}, {label}: {why}") from None
        jobs.append(job)
        labels.append(label + (" (in place)" if in_place else ""))
    print(f"[tessera] bench vector: {len(jobs)} operations of {args.rows} x {cols} on '{cfg.name}'"
          f" ({cfg.tile.word_bytes // 4} lanes, accumulator {cfg.tile.accumulator_bytes} bytes) in one"
          " simulation", flush=True)
    t0 = time.monotonic()
    results = run_jobs(cfg, jobs, seed=args.seed, replay="--seed {seed}")
    wall = time.monotonic() - t0
    rows_out = []
    w = max(len(s) for s in labels)
    print(f"| {'operation':<{w}} | rows x cols | cycles | elements/cycle | elements/lane/cycle | bit-exact |")
    print(f"|{'-' * (w + 2)}|---|---|---|---|---|")
    for label, res in zip(labels, results, strict=True):
        rep = report(cfg, label, args.rows, cols, res["cycles"], res["bit_exact"], args.seed)
        rows_out.append(rep)
        print(f"| {label:<{w}} | {args.rows} x {cols} | {rep['cycles']} | {rep['elements_per_cycle']:.2f}"
              f" | {rep['elements_per_lane_per_cycle']:.3f} | {'yes' if res['bit_exact'] else 'NO'} |")
    print(f"wall time {wall:.0f} s (export or cached Verilog, build or cached build, one simulation)")
    if out_json:
        table = {"preset": cfg.name, "rows": args.rows, "cols": cols, "wall_seconds": round(wall, 1),
                 "operations": rows_out}
        write_output(out_json, json.dumps(table, indent=2) + "\n")
    bad = [r["mismatch"] for r in results if not r["bit_exact"]]
    for m in bad:
        print(f"  FAILED: {m}")
    return 1 if bad else 0
