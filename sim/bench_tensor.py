"""``tessera bench tensor``: one GEMM on the TensorCore RTL under Verilator, cycle-counted.

Random data (``--m --n --k --dtype [--seed]``) or given matrices (``--a --b [--c] --out``; formats
as in ARCHITECTURE.md). The result is checked bit-exactly against tb/models/gemm.py; the JSON
holds ``cycles`` (first operand accepted to last result delivered, both inclusive), ``macs``,
``utilization`` = M*N*K / (R*C*cycles), ``scalesim_os_cycles`` and ``ratio_to_scalesim``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np


def register(sub):
    p = sub.add_parser("tensor", help="GEMM on the tensor core RTL (cycles, utilization vs SCALE-Sim)",
                       description="Run D = C + A x B on the TensorCore under Verilator, check it "
                                   "bit-exactly and report cycles and utilization.")
    p.add_argument("--preset", default="default", help="configuration preset: tiny, default, ulx3s")
    p.add_argument("--rows", type=int, help="array rows R (default: the preset's)")
    p.add_argument("--cols", type=int, help="array columns C (default: the preset's)")
    p.add_argument("--m", type=int, help="rows of A and D (random data)")
    p.add_argument("--n", type=int, help="columns of B and D (random data)")
    p.add_argument("--k", type=int, help="reduction length (random data)")
    p.add_argument("--dtype", choices=["bf16", "int8"], default="bf16", help="operand type")
    p.add_argument("--seed", type=int, default=1, help="seed of the random data and of the simulation")
    p.add_argument("--special-prob", type=float, default=0.0,
                   help="share of special values (inf, NaN, subnormal, zeros) in random BF16 data")
    p.add_argument("--a", help="A.npy (M x K: uint16 bf16 bits or int8)")
    p.add_argument("--b", help="B.npy (K x N: uint16 bf16 bits or int8)")
    p.add_argument("--c", help="C.npy (M x N: uint32 FP32 bits or int32), or 'random' with --m/--n/--k; "
                                "accumulate mode")
    p.add_argument("--out", help="write D.npy (uint32 FP32 bits or int32)")
    p.add_argument("--json", help="write the figures as JSON to this file")
    p.set_defaults(func=run)


def _config(args):
    from rtl.config import TensorConfig, preset

    try:
        cfg = preset(args.preset).tensor
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None
    for flag in ("rows", "cols"):
        value = getattr(args, flag)
        if value is not None:
            try:
                cfg = dataclasses.replace(cfg, **{flag: value})
            except ValueError as e:
                raise ValueError(f"--{flag}: {e}") from None
    assert isinstance(cfg, TensorConfig)
    return cfg


def _load(path, flag, dtype, ndim=2):
    try:
        arr = np.load(path)
    except OSError as e:
        raise ValueError(f"{flag}: cannot read {path}: {e}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{flag}: expected a 2-D array, got shape {arr.shape}")
    if arr.dtype != dtype:
        raise ValueError(f"{flag}: expected dtype {np.dtype(dtype).name}, got {arr.dtype.name}")
    return arr


def _inputs(args):
    from tb.tensor.feed import random_bf16, random_f32, random_i32, random_int8

    if args.a or args.b:
        if not (args.a and args.b):
            raise ValueError("--a: --a and --b go together" if not args.a else "--b: --a and --b go together")
        op_t = np.uint16 if args.dtype == "bf16" else np.int8
        acc_t = np.uint32 if args.dtype == "bf16" else np.int32
        a = _load(args.a, "--a", op_t)
        b = _load(args.b, "--b", op_t)
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"--b: B has {b.shape[0]} rows but A has {a.shape[1]} columns")
        c = None
        if args.c:
            c = _load(args.c, "--c", acc_t)
            if c.shape != (a.shape[0], b.shape[1]):
                raise ValueError(f"--c: expected shape {(a.shape[0], b.shape[1])}, got {c.shape}")
        return a, b, c
    if args.c not in (None, "random"):
        raise ValueError("--c: with random data (--m/--n/--k) only 'random' is allowed; "
                         "give --a/--b with a C.npy")
    for flag in ("m", "n", "k"):
        if getattr(args, flag) is None:
            raise ValueError(f"--{flag}: required without --a/--b")
    rng = np.random.default_rng(args.seed)
    m, n, k = args.m, args.n, args.k
    if min(m, n, k) < 1:
        bad = next(f for f in ("m", "n", "k") if getattr(args, f) < 1)
        raise ValueError(f"--{bad}: must be at least 1")
    if args.dtype == "bf16":
        a = random_bf16(rng, (m, k), args.special_prob)
        b = random_bf16(rng, (k, n), args.special_prob)
        c = random_f32(rng, (m, n), args.special_prob) if args.c == "random" else None
    else:
        a = random_int8(rng, (m, k))
        b = random_int8(rng, (k, n))
        c = random_i32(rng, (m, n)) if args.c == "random" else None
    return a, b, c


def run(args) -> int:
    from rtl.tensor.export import verilog_hierarchical
    from rtl.tensor.interface import check_op
    from rtl.tensor.tensor_core import TensorCore
    from sim.toolchain import BUILD
    from tb.harness import run as harness_run
    from tb.models.gemm import scalesim_os_cycles

    cfg = _config(args)
    a, b, c = _inputs(args)
    m, k = a.shape
    n = b.shape[1]
    try:
        check_op(cfg, m, n, k, args.dtype)
    except ValueError as e:
        flag = "--a" if args.a else f"--{str(e).split()[0]}"
        raise ValueError(f"{flag}: {e}") from None

    name = f"tensor_core_{cfg.rows}x{cfg.cols}"
    text = verilog_hierarchical("tensor_core", cfg, name)
    tag = hashlib.sha256(a.tobytes() + b.tobytes() + (c.tobytes() if c is not None else b"")
                         + text.encode()).hexdigest()[:12]
    work = BUILD / "bench" / "tensor" / f"{name}-{m}x{n}x{k}-{args.dtype}-{tag}"
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "A.npy", a)
    np.save(work / "B.npy", b)
    if c is not None:
        np.save(work / "C.npy", c)
    elif (work / "C.npy").exists():
        (work / "C.npy").unlink()
    t0 = time.time()
    harness_run(TensorCore, "tb.tensor.test_core", name=name, verilog_text=text, seed=args.seed,
                params={"cfg": dataclasses.asdict(cfg), "bench": str(work), "dtype": args.dtype})
    wall = time.time() - t0
    res = json.loads((work / "result.json").read_text())
    cycles = res["last_result_cycle"] - res["first_operand_cycle"] + 1
    macs = m * n * k
    scalesim = scalesim_os_cycles(m, n, k, cfg.rows, cfg.cols)
    out = {
        "preset": args.preset, "rows": cfg.rows, "cols": cfg.cols, "interleave": cfg.interleave,
        "m": m, "n": n, "k": k, "dtype": args.dtype, "accumulate": c is not None, "seed": args.seed,
        "cycles": cycles,
        "cycles_from_descriptor": res["last_result_cycle"] - res["descriptor_cycle"] + 1,
        "macs": macs,
        "utilization": macs / (cfg.rows * cfg.cols * cycles),
        "scalesim_os_cycles": scalesim,
        "ratio_to_scalesim": cycles / scalesim,
        "bit_exact": bool(res["exact"]),
        "wall_seconds": round(wall, 1),
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, np.load(work / "D.npy"))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"tensor {cfg.rows}x{cfg.cols} {args.dtype} {m}x{n}x{k}: {cycles} cycles, "
          f"utilization {100 * out['utilization']:.2f}%, SCALE-Sim OS {scalesim} cycles, "
          f"ratio {out['ratio_to_scalesim']:.3f}, bit-exact {out['bit_exact']}")
    return 0 if out["bit_exact"] else 1
