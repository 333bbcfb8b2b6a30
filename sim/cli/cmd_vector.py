"""``tessera vector``: one VECTOR operation on the vector engine under Verilator, checked bit for bit.

    tessera vector --op add --x X.npy --y Y.npy --out O.npy [--preset tiny] [--report R.json]
    tessera vector --op mul --x X.npy --scalar 0.5 --out O.npy
    tessera vector --op requant --x ACC.npy --scale S.npy [--relu] [--transpose] --out Q.npy
    tessera vector --op softmax --x X.npy --out O.npy
    tessera vector --op layernorm --x X.npy [--gamma G.npy] [--beta B.npy] [--eps 1e-5] --out O.npy

The engine runs with the tile's real accumulator memory and scratchpad (``tb/vector/top.py``) and
its special functions (the preset with ``TileConfig.sfu``, named ``<preset>_sfu``); x goes to the
accumulator at 0, y after it, an FP32 output after y (BF16 and INT8 outputs to the scratchpad at
0). softmax and layernorm are vector programs (``tessera.runtime.vector_programs``) run in place.
The output is compared with ``tb/models/vector_exec.py``
(exit 1 if it differs). Inputs and outputs as elsewhere in Tessera: FP32 as ``float32`` or
``uint32`` bit patterns; results as ``uint32`` bit patterns, ``uint16`` for BF16, ``int8`` for
``requant``, ``int32`` for ``iadd``, one value per row for ``rowsum`` / ``rowmax``. Every argument
is checked before anything is built (docs/vector.md, "Command line").
"""

from __future__ import annotations

import json
import random
import time

import numpy as np

from tessera.cli.common import SEED_MAX, check_output, check_seed, write_output

# --op -> (VECTOR op, second operand, act, red, fmt, itof); the second operand: None (none),
# "region" (--y like x, or --scalar), "row" (--y of cols), "col" (--y of rows), "scale" (requant).
OPERATIONS = {
    "copy": ("pass", None, 0, 0, 0, 0),
    "add": ("add", "region", 0, 0, 0, 0),
    "sub": ("sub", "region", 0, 0, 0, 0),
    "mul": ("mul", "region", 0, 0, 0, 0),
    "max": ("max", "region", 0, 0, 0, 0),
    "min": ("min", "region", 0, 0, 0, 0),
    "add_row": ("add", "row", 0, 0, 0, 0),
    "mul_col": ("mul", "col", 0, 0, 0, 0),
    "mask_pos": ("mask", "region", 0, 0, 0, 0),
    "relu": ("pass", None, 1, 0, 0, 0),
    "rowsum": ("pass", None, 0, 1, 0, 0),
    "rowmax": ("pass", None, 0, 2, 0, 0),
    "gelu": ("pass", None, 2, 0, 0, 0),
    "exp": ("pass", None, 3, 0, 0, 0),
    "recip": ("pass", None, 4, 0, 0, 0),
    "rsqrt": ("pass", None, 5, 0, 0, 0),
    "to_bf16": ("pass", None, 0, 0, 1, 0),
    "requant": ("mul", "scale", 0, 0, 3, 1),
    "iadd": ("iadd", "region", 0, 0, 0, 0),
}
COMPOSITE = ("softmax", "layernorm")
TRANSPOSABLE = {"to_bf16": 2, "requant": 4}        # --transpose: BF16_T, INT8_T
INT_OPS = ("iadd", "requant")                      # x is INT32


def check_op(op: str) -> str:
    """``op`` if it is an operation of ``tessera vector``, else a one-line ``ValueError``."""
    if op not in OPERATIONS and op not in COMPOSITE:
        raise ValueError(f"--op: unknown operation {op!r}; allowed: {', '.join((*OPERATIONS, *COMPOSITE))}")
    return op


def config(name: str, accumulator_kib: int | None = None):
    """The preset ``name`` with the vector engine's special functions (``<name>_sfu``), and with
    ``accumulator_kib`` KiB of accumulator memory if given (``<name>_acc<N>k_sfu``)."""
    import dataclasses

    from tessera.rtl.config import preset
    from tessera.runtime.vector_programs import with_sfu

    try:
        cfg = preset(name)
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None
    if accumulator_kib is not None:
        try:
            tile = dataclasses.replace(cfg.tile, accumulator_bytes=accumulator_kib * 1024)
            cfg = dataclasses.replace(cfg, name=f"{cfg.name}_acc{accumulator_kib}k", tile=tile)
        except (ValueError, TypeError) as e:
            raise ValueError(f"--accumulator-kib: {e}") from None
    return with_sfu(cfg)


def make_job(cfg, op: str, x: np.ndarray, y: np.ndarray | None = None, imm: int | None = None, *,
             relu: bool = False, transpose: bool = False, in_place: bool = False) -> tuple[dict, dict]:
    """The VECTOR job (``tessera.tb.vector.jobs``) for ``op`` on ``x`` (rows x cols 32-bit patterns)
    with the second operand ``y`` (patterns, shaped for ``op``) or the immediate ``imm`` (32 bits);
    returns it and the accumulator bytes of x, y and the output. Placement: x at 0, y after it, an
    FP32 output after y (``in_place``: at x, so that it takes no room of its own), BF16 / INT8 at
    0 in the scratchpad. Raises ``ValueError`` naming ``--x`` when it does not fit."""
    from tessera.tb.models import vector_exec as vx

    W, tile = cfg.tile.word_bytes, cfg.tile
    vop, mode, act, red, fmt, itof = OPERATIONS[op]
    rows, cols = x.shape
    if transpose:
        fmt = TRANSPOSABLE[op]
    f = {"op": vx.OPS[vop], "ymode": 0, "act": int(act or relu), "red": red, "fmt": fmt, "itof": itof,
         "x_addr": 0, "y": 0, "rows": rows, "cols": cols}
    x_bytes = rows * vx.pitch(4 * cols, W)
    y_bytes = 0
    if imm is not None:
        f["ymode"], f["y"] = vx.YMODES["imm"], imm & 0xFFFFFFFF
    elif y is not None:
        f["ymode"] = vx.YMODES[{"region": "region", "row": "row", "col": "col", "scale": "row"}[mode]]
        f["y"] = x_bytes
        y_bytes = {0: x_bytes, 1: vx.pitch(4 * cols, W), 2: vx.pitch(4 * rows, W)}[f["ymode"]]
    if red:
        out_bytes = vx.pitch(4 * rows, W)
    elif fmt == vx.FMTS["fp32"]:
        out_bytes = 0 if in_place else x_bytes
    else:
        out_bytes = 0
        d_rows = cols if fmt in (vx.FMTS["bf16t"], vx.FMTS["int8t"]) else rows
        sp_bytes = d_rows * vx.out_pitch(f, W)
        if sp_bytes > tile.scratchpad_bytes:
            raise ValueError(f"--x: the output ({rows} x {cols}, {sp_bytes} bytes in the scratchpad's layout)"
                             f" does not fit the scratchpad of preset {cfg.name!r}"
                             f" ({tile.scratchpad_bytes} bytes)")
    if not red and fmt != vx.FMTS["fp32"]:
        f["d_addr"] = 0                                 # the scratchpad
    else:
        f["d_addr"] = 0 if in_place and not red else x_bytes + y_bytes
    total = x_bytes + y_bytes + out_bytes
    if total > tile.accumulator_bytes:
        parts = [f"x ({rows} x {cols}, {x_bytes} bytes)"] + ([f"y ({y_bytes} bytes)"] if y_bytes else []) \
            + ([f"the output ({out_bytes} bytes)"] if out_bytes else [])
        raise ValueError(f"--x: {' + '.join(parts)} = {total} bytes do not fit the accumulator memory of"
                         f" preset {cfg.name!r} ({tile.accumulator_bytes} bytes)")
    if rows > 4095 or cols > 4095:
        raise ValueError(f"--x: {rows} x {cols}: a VECTOR has at most 4095 rows and 4095 columns")
    image = np.zeros(total, dtype=np.uint8)
    vx.write_elems(image, 0, x.astype(np.uint32), vx.pitch(4 * cols, W))
    if y is not None:                                   # a region like x, or a contiguous vector
        y = np.asarray(y, dtype=np.uint32)
        vx.write_elems(image, x_bytes, y if f["ymode"] == 0 else y.reshape(1, -1), vx.pitch(4 * cols, W))
    job = {"fields": f, "image": image, "readback": "output"}
    return job, {"x": x_bytes, "y": y_bytes, "output": out_bytes}


def register(sub):
    p = sub.add_parser("vector", help="one vector-engine operation under Verilator (checked, reported)",
                       description="Run one operation of the vector engine (a VECTOR instruction) on the "
                                   "engine with the tile's accumulator memory and scratchpad under "
                                   "Verilator, check the result bit for bit against the instruction model "
                                   "and report cycles and elements per cycle.")
    p.add_argument("--op", required=True,
                   help=f"operation: {', '.join((*OPERATIONS, *COMPOSITE))}")
    p.add_argument("--x", required=True, metavar="X.npy",
                   help="x: a 2-D float32 or uint32 (FP32 bit patterns) array; int32 for iadd and requant"
                        " (mask_pos: g)")
    p.add_argument("--y", metavar="Y.npy",
                   help="the second operand: x's shape (add, sub, mul, max, min, mask_pos: h, iadd), "
                        "(cols,) for add_row, (rows,) for mul_col")
    p.add_argument("--scalar", metavar="S",
                   help="the second operand as an immediate: a decimal rounded once to FP32 (an integer "
                        "for iadd; requant: a per-tensor scale)")
    p.add_argument("--scale", metavar="S.npy", help="requant: a (cols,) float32 scale per column")
    p.add_argument("--relu", action="store_true", help="ReLU on the result (not for iadd)")
    p.add_argument("--transpose", action="store_true",
                   help="to_bf16, requant: write the output transposed (cols x rows; the A^T layout)")
    p.add_argument("--gamma", metavar="G.npy", help="layernorm: a (cols,) float32 scale (default: ones)")
    p.add_argument("--beta", metavar="B.npy", help="layernorm: a (cols,) float32 shift (default: zeros)")
    p.add_argument("--eps", type=float,
                   help="layernorm: added to the variance (default 1e-5; rounded to FP32)")
    p.add_argument("--out", required=True, metavar="O.npy", help="write the engine's result here")
    p.add_argument("--preset", default="tiny", help="configuration preset: tiny, default, ulx3s")
    p.add_argument("--accumulator-kib", type=int, metavar="N",
                   help="the accumulator memory's size in KiB instead of the preset's (a power of two;"
                        " e.g. 128 on default for a 128 x 128 softmax with its row statistics)")
    p.add_argument("--report", "--json", dest="report", metavar="R.json", help="write the report as JSON")
    p.add_argument("--seed", type=int, help="the simulation's seed (default: a random one, printed)")
    p.set_defaults(func=run)


def _load(path: str, flag: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ValueError(f"{flag}: cannot read {path}: {reason}") from None


def _bits(a: np.ndarray, flag: str, allowed: tuple) -> np.ndarray:
    if a.dtype not in [np.dtype(t) for t in allowed]:
        raise ValueError(f"{flag}: dtype {a.dtype}; allowed: {', '.join(allowed)}")
    return np.ascontiguousarray(a).view(np.uint32)


def prepare(args) -> tuple:
    """Every check before anything is built; returns (cfg, job, sizes)."""
    from tessera.runtime.asm import _imm

    op = check_op(args.op)
    cfg = config(args.preset, args.accumulator_kib)
    check_seed(args.seed)
    args.out = check_output(args.out, "--out", ".npy")
    args.report = check_output(args.report, "--report")
    if op != "layernorm":
        for flag, value in (("--gamma", args.gamma), ("--beta", args.beta), ("--eps", args.eps)):
            if value is not None:
                raise ValueError(f"{flag}: only for layernorm")
    if op in COMPOSITE:
        return (cfg, *_composite(cfg, op, args))
    vop, mode = OPERATIONS[op][0], OPERATIONS[op][1]
    if args.transpose and op not in TRANSPOSABLE:
        raise ValueError(f"--transpose: only for {', '.join(TRANSPOSABLE)}")
    if args.relu and op in ("iadd", "relu"):
        raise ValueError(f"--relu: not for {op}")
    if args.scale is not None and op != "requant":
        raise ValueError("--scale: only for requant (the scale per column)")
    if mode is None:
        for flag, value in (("--y", args.y), ("--scalar", args.scalar)):
            if value is not None:
                raise ValueError(f"{flag}: {op} has no second operand")
    elif mode == "scale":
        if args.y is not None:
            raise ValueError("--y: requant takes its scale as --scale S.npy (per column) or --scalar S")
        if (args.scale is None) == (args.scalar is None):
            raise ValueError("--scale: requant needs one scale: --scale S.npy (cols,)"
                             " or --scalar S (per tensor)")
    elif mode in ("row", "col"):
        if args.scalar is not None:
            raise ValueError(f"--scalar: {op} takes a vector --y; for an immediate use {vop} --scalar")
        if args.y is None:
            n = "(cols,)" if mode == "row" else "(rows,)"
            raise ValueError(f"--y: {op} needs its second operand: --y Y.npy of shape {n}")
    else:
        if (args.y is None) == (args.scalar is None):
            raise ValueError(f"--y: {op} needs one second operand: --y Y.npy (x's shape) or --scalar S"
                             if args.y is None else "--scalar: give --y or --scalar, not both")
    x_allowed = {"requant": ("int32",), "iadd": ("int32", "uint32")}.get(op, ("float32", "uint32"))
    x = _load(args.x, "--x")
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"--x: shape {x.shape}; a 2-D array (rows, cols) of at least one element is needed")
    x = _bits(x, "--x", x_allowed).reshape(x.shape)
    rows, cols = x.shape
    y = imm = None
    if args.scalar is not None:
        try:
            imm = _imm(args.scalar, "iadd" if op == "iadd" else vop)
        except ValueError as e:
            raise ValueError(f"--scalar: {e}") from None
    flag, path = ("--scale", args.scale) if op == "requant" else ("--y", args.y)
    if path is not None:
        y = _load(path, flag)
        want = {"region": (rows, cols), "row": (cols,), "col": (rows,), "scale": (cols,)}[mode]
        if y.shape != want:
            raise ValueError(f"{flag}: shape {y.shape}; {op} on x of {rows} x {cols} needs {want}")
        y_allowed = ("int32", "uint32") if op == "iadd" else ("float32", "uint32")
        y = _bits(y, flag, y_allowed).reshape(y.shape)
    job, sizes = make_job(cfg, op, x, y, imm, relu=args.relu, transpose=args.transpose)
    return cfg, job, sizes


def _composite(cfg, op: str, args) -> tuple[dict, dict]:
    """The job of the vector program ``op`` (softmax, layernorm) on --x, every flag checked."""
    from tessera.runtime import vector_programs as vp

    for flag, value in (("--y", args.y), ("--scalar", args.scalar), ("--scale", args.scale)):
        if value is not None:
            raise ValueError(f"{flag}: {op} takes no second operand")
    for flag, value in (("--relu", args.relu), ("--transpose", args.transpose)):
        if value:
            raise ValueError(f"{flag}: not for {op}")
    x = _load(args.x, "--x")
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"--x: shape {x.shape}; a 2-D array (rows, cols) of at least one element is needed")
    x = _bits(x, "--x", ("float32", "uint32")).reshape(x.shape)
    rows, cols = x.shape
    vectors = {"--gamma": np.full(cols, 1.0, np.float32).view(np.uint32), "--beta": np.zeros(cols, np.uint32)}
    for flag, path in (("--gamma", args.gamma), ("--beta", args.beta)):
        if path is not None:
            v = _load(path, flag)
            if v.shape != (cols,):
                raise ValueError(f"{flag}: shape {v.shape}; layernorm on x of {rows} x {cols}"
                                 f" needs ({cols},)")
            vectors[flag] = _bits(v, flag, ("float32", "uint32")).reshape(cols)
    eps = 1e-5 if args.eps is None else args.eps
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"--eps: {args.eps}; a finite value >= 0 is needed")
    gamma_beta = (vectors["--gamma"], vectors["--beta"])
    try:
        job, lay = vp.job(cfg, op, x, *gamma_beta, eps)
    except ValueError as e:
        raise ValueError(f"--x: {e}") from None
    job.update(layout=lay, x=x, gamma_beta=gamma_beta)
    return job, {"x": lay.s1, "y": lay.end - lay.s1, "output": 0}


def report(cfg, op: str, rows: int, cols: int, cycles: int, bit_exact: bool, seed: int) -> dict:
    lanes = cfg.tile.word_bytes // 4
    per_cycle = rows * cols / cycles
    return {"op": op, "shape": [rows, cols], "preset": cfg.name, "cycles": cycles,
            "elements_per_cycle": round(per_cycle, 4),
            "elements_per_lane_per_cycle": round(per_cycle / lanes, 4),
            "lanes": lanes, "bit_exact": bit_exact, "seed": seed}


def run(args) -> int:
    from tessera.runtime import vector_programs as vp
    from tessera.tb.vector.jobs import output_array, run_jobs

    cfg, job, sizes = prepare(args)
    seed = args.seed if args.seed is not None else random.randrange(SEED_MAX + 1)
    lay = job.pop("layout", None)
    if lay is not None:
        rows, cols = lay.rows, lay.cols
        extra = " and gamma, beta" if args.op == "layernorm" else ""
        where = f"x {sizes['x']} bytes in place, row statistics{extra} {sizes['y']} bytes;" \
            f" {len(job['program'])} VECTORs"
    else:
        f = job["fields"]
        rows, cols = f["rows"], f["cols"]
        where = f"x {sizes['x']} bytes, y {sizes['y']}, output {sizes['output'] or 'in the scratchpad'}"
    print(f"[tessera] vector {args.op} {rows} x {cols} on '{cfg.name}' ({where}); VectorTop under Verilator",
          flush=True)
    t0 = time.monotonic()
    (res,) = run_jobs(cfg, [job], seed=seed, replay="--seed {seed}")
    out = vp.result(cfg, lay, res["acc"]) if lay is not None else output_array(cfg, f, res["acc"], res["sp"])
    np.save(args.out, out)
    rep = report(cfg, args.op, rows, cols, res["cycles"], res["bit_exact"], seed)
    if lay is not None:
        ref = vp.softmax_ref(job["x"]) if args.op == "softmax" else \
            vp.layernorm_ref(job["x"], *job["gamma_beta"], 1e-5 if args.eps is None else args.eps)
        rep["vectors"] = len(job["program"])
        rep["max_abs_error_vs_float64"] = float(np.nanmax(np.abs(out.view(np.float32) - ref)))
    rep["wall_seconds"] = round(time.monotonic() - t0, 1)
    if args.report:
        write_output(args.report, json.dumps(rep, indent=2) + "\n")
    print(f"vector {args.op} {rows} x {cols} on '{cfg.name}': {rep['cycles']} cycles,"
          f" {rep['elements_per_cycle']:.2f} elements/cycle"
          f" ({rep['elements_per_lane_per_cycle']:.2f} per lane of {rep['lanes']});"
          f" output {out.dtype} {tuple(out.shape)} -> {args.out}")
    if "max_abs_error_vs_float64" in rep:
        print(f"  largest difference from the float64 {args.op}: {rep['max_abs_error_vs_float64']:.3g}")
    if not res["bit_exact"]:
        print(f"  FAILED: the engine's output differs from tb/models/vector_exec.py: {res['mismatch']};"
              f" replay with --seed {seed}")
        return 1
    print("  bit-exact with the instruction model (tb/models/vector_exec.py)")
    return 0
