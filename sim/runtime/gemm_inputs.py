"""GEMM inputs on the command line, shared by ``tessera bench tensor`` and ``tessera gemm``.

:func:`add_input_args` declares ``--a/--b/--c`` (.npy files, formats as in docs/numerics.md) and
``--m/--n/--k/--dtype/--seed/--special-prob`` (random data); :func:`inputs` turns them into arrays,
with errors that name the argument (also for random-data arguments given with ``--a/--b``, which
would otherwise be ignored); :func:`save_inputs` writes them into a job directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def add_input_args(p):
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


def save_inputs(work: Path, a, b, c=None, stale=()):
    """A.npy, B.npy and (or, without C, no) C.npy in ``work``; files named in ``stale`` removed."""
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "A.npy", a)
    np.save(work / "B.npy", b)
    if c is not None:
        np.save(work / "C.npy", c)
    for name in ([] if c is not None else ["C.npy"]) + list(stale):
        if (work / name).exists():
            (work / name).unlink()


def load_array(path, flag, dtype, ndim=2):
    try:
        arr = np.load(path)
    except OSError as e:
        raise ValueError(f"{flag}: cannot read {path}: {e}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{flag}: expected a 2-D array, got shape {arr.shape}")
    if arr.dtype != dtype:
        raise ValueError(f"{flag}: expected dtype {np.dtype(dtype).name}, got {arr.dtype.name}")
    return arr


def inputs(args):
    from tessera.runtime.random_data import random_bf16, random_f32, random_i32, random_int8

    if args.a or args.b:
        if not (args.a and args.b):
            raise ValueError("--a: --a and --b go together" if not args.a else "--b: --a and --b go together")
        for flag in ("m", "n", "k"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag}: the shape comes from --a/--b; give --m/--n/--k only for "
                                 "random data")
        if args.special_prob:
            raise ValueError("--special-prob: only for random data (--m/--n/--k), not with --a/--b")
        op_t = np.uint16 if args.dtype == "bf16" else np.int8
        acc_t = np.uint32 if args.dtype == "bf16" else np.int32
        a = load_array(args.a, "--a", op_t)
        b = load_array(args.b, "--b", op_t)
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"--b: B has {b.shape[0]} rows but A has {a.shape[1]} columns")
        c = None
        if args.c:
            c = load_array(args.c, "--c", acc_t)
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


