"""GEMM inputs: the formats Tessera accepts (docs/usage.md, "Input formats") and the command-line
options that give them, shared by ``tessera gemm``, ``tessera bench tensor`` and the Python API.

:func:`operands` turns what a user has (float32, ml_dtypes bfloat16, BF16 bit patterns, int8) into
what the fabric takes, and says which conversions it made; :func:`load_array` reads ``.npy`` and
``.npz`` files. :func:`add_input_args` declares ``--a/--b/--c`` (files) and
``--m/--n/--k/--dtype/--seed/--special-prob`` (random data); :func:`inputs` turns them into arrays,
with errors that name the argument and the accepted formats (also for random-data arguments given
with ``--a/--b``, which would otherwise be ignored); :func:`save_inputs` writes a job directory.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np


def add_input_args(p):
    p.add_argument("--m", type=int, help="rows of A and D (random data)")
    p.add_argument("--n", type=int, help="columns of B and D (random data)")
    p.add_argument("--k", type=int, help="reduction length (random data)")
    p.add_argument("--dtype", choices=["bf16", "int8"], default=None,
                   help="operand type (default: bf16 for random data; from the arrays for --a/--b)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the random data and of the simulation (0 .. 2^31-1)")
    p.add_argument("--special-prob", type=float, default=0.0,
                   help="share (0 .. 1) of special values (inf, NaN, subnormal, zeros) in random BF16 data")
    p.add_argument("--a", help="A (M x K): .npy or .npz[:NAME] of float32 (rounded to BF16), bfloat16,"
                               " uint16 BF16 bits or int8 (INT8 GEMM); docs/usage.md")
    p.add_argument("--b", help="B (K x N): as --a")
    p.add_argument("--c", help="C (M x N), accumulate mode: float32 / uint32 FP32 bits (BF16 GEMM) or int32"
                               " (INT8 GEMM); or 'random' with --m/--n/--k")
    p.add_argument("--out", help="write D here (.npy: uint32 FP32 bits, or int32)")


def save_inputs(work: Path, a, b, c=None, stale=(), bias=None):
    """A.npy, B.npy and (or, without them, no) C.npy and bias.npy in ``work``; files named in
    ``stale`` removed."""
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "A.npy", a)
    np.save(work / "B.npy", b)
    for name, v in (("C.npy", c), ("bias.npy", bias)):
        if v is not None:
            np.save(work / name, v)
    gone = [name for name, v in (("C.npy", c), ("bias.npy", bias)) if v is None]
    for name in gone + list(stale):
        if (work / name).exists():
            (work / name).unlink()


def load_job(work: Path) -> tuple:
    """A, B, C (or None) and the bias (or None) of a job folder written by :func:`save_inputs`."""
    a, b = np.load(work / "A.npy"), np.load(work / "B.npy")
    c = np.load(work / "C.npy") if (work / "C.npy").exists() else None
    bias = np.load(work / "bias.npy") if (work / "bias.npy").exists() else None
    return a, b, c, bias


ACCEPTED = {
    "a": "float32 (rounded to BF16), ml_dtypes bfloat16, uint16 BF16 bit patterns, or int8",
    "c": "float32 or uint32 FP32 bit patterns (BF16 GEMM), int32 (INT8 GEMM)",
}
ACCEPTED["b"] = ACCEPTED["a"]
SUFFIXES = (".npy", ".npz")


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> BF16 bit patterns (uint16), round to nearest, ties to even; overflow rounds to
    infinity, subnormals are kept (rounded like any other value), and every NaN becomes the
    canonical quiet NaN 0x7FC0."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), rounded)


def load_array(path, flag: str) -> np.ndarray:
    """The array in ``path`` (``.npy``; ``.npz`` holding one array, or ``FILE.npz:NAME``), with
    errors that name ``flag``. No pickled objects are read."""
    spec = str(path)
    name = None
    if ".npz:" in spec:
        spec, name = spec.rsplit(":", 1)
    suffix = Path(spec).suffix
    if suffix not in SUFFIXES:
        raise ValueError(f"{flag}: {path}: not a .npy or .npz file (accepted: A.npy, arrays.npz holding one"
                         " array, or arrays.npz:NAME)")
    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
    try:
        data = np.load(spec, allow_pickle=False)
    except unreadable as e:
        raise ValueError(f"{flag}: cannot read {spec}: {e}") from None
    if suffix == ".npy":
        return data
    with data:
        keys = list(data.keys())
        if name is None and len(keys) != 1:
            held = ", ".join(keys) or "none"
            raise ValueError(f"{flag}: {spec} holds {len(keys)} arrays ({held}); name one as {spec}:NAME")
        if name is not None and name not in keys:
            raise ValueError(f"{flag}: {spec} has no array {name!r}; it holds {', '.join(keys) or 'none'}")
        try:
            return data[name if name is not None else keys[0]]
        except unreadable as e:
            raise ValueError(f"{flag}: cannot read {spec}: {e}") from None


def _operand_kind(x: np.ndarray) -> str:
    """'float32', 'bfloat16' (ml_dtypes, or its two-byte void form read back from a .npy),
    'bf16 bits', 'int8' or the dtype's name."""
    if x.dtype == np.float32:
        return "float32"
    if x.dtype.name == "bfloat16" or (x.dtype.kind == "V" and x.dtype.itemsize == 2 and not x.dtype.fields):
        return "bfloat16"
    if x.dtype == np.uint16:
        return "bf16 bits"
    if x.dtype == np.int8:
        return "int8"
    return x.dtype.name


def operands(a, b, c=None, dtype: str | None = None, names=("--a", "--b", "--c")):
    """A, B and C as the fabric takes them, from what a user has: ``(a, b, c, dtype, notes)``.

    A and B: float32 (rounded to BF16 with :func:`f32_to_bf16_bits`), ml_dtypes bfloat16, uint16
    BF16 bit patterns, or int8 (which means an INT8 GEMM); both of one kind of GEMM. C: float32 or
    uint32 FP32 bit patterns (BF16), int32 (INT8). ``dtype`` (bf16 / int8 / None: from the arrays)
    must agree with them. ``notes`` lists every conversion made (they go into the report). Errors
    name the argument (``names``) and the accepted formats."""
    notes = []
    arrays = {}
    for name, x in zip(names[:2], (a, b), strict=True):
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D array, got shape {x.shape}")
        kind = _operand_kind(x)
        if kind not in ("float32", "bfloat16", "bf16 bits", "int8"):
            hint = " (convert with .astype(np.float32) first)" if x.dtype.kind in "f" else ""
            raise ValueError(f"{name}: dtype {kind} is not accepted{hint}; accepted: {ACCEPTED['a']}")
        arrays[name] = (x, kind)
    modes = {"int8" if kind == "int8" else "bf16" for _, kind in arrays.values()}
    if len(modes) == 2:
        raise ValueError(f"{names[1]}: B is {arrays[names[1]][1]} but A is {arrays[names[0]][1]}; both int8"
                         " (INT8 GEMM) or both BF16-like (float32, bfloat16, uint16 bits)")
    (mode,) = modes
    if dtype is not None and dtype != mode:
        raise ValueError(f"{'--dtype' if names[0] == '--a' else 'dtype'}: {dtype} does not match the"
                         f" arrays ({arrays[names[0]][1]}, a {mode} GEMM)")
    out = []
    for name, (x, kind) in arrays.items():
        if kind == "float32":
            bits = f32_to_bf16_bits(x)
            inexact = int(np.count_nonzero((bits.astype(np.uint32) << 16).view(np.float32) != x)
                          - np.count_nonzero(np.isnan(x)))
            notes.append(f"{name.lstrip('-')}: float32 -> BF16, round to nearest even"
                         f" ({inexact:,} of {x.size:,} values rounded)")
            x = bits
        elif kind == "bfloat16":
            x = np.ascontiguousarray(x).view(np.uint16)
        out.append(np.ascontiguousarray(x))
    a, b = out
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{names[1]}: B has {b.shape[0]} rows but A has {a.shape[1]} columns")
    if c is not None:
        c = np.asarray(c)
        want = (np.float32, np.uint32) if mode == "bf16" else (np.int32,)
        if c.dtype not in want:
            raise ValueError(f"{names[2]}: dtype {c.dtype.name} is not accepted for a {mode} GEMM; accepted:"
                             f" {ACCEPTED['c']}")
        if c.shape != (a.shape[0], b.shape[1]):
            raise ValueError(f"{names[2]}: expected shape {(a.shape[0], b.shape[1])}, got {c.shape}")
        c = np.ascontiguousarray(c).view(np.uint32) if mode == "bf16" else np.ascontiguousarray(c)
    return a, b, c, mode, notes


def inputs(args):
    from tessera.runtime.random_data import random_operands

    if args.a or args.b:
        if not (args.a and args.b):
            raise ValueError("--a: --a and --b go together" if not args.a else "--b: --a and --b go together")
        for flag in ("m", "n", "k"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag}: the shape comes from --a/--b; give --m/--n/--k only for "
                                 "random data")
        if args.special_prob:
            raise ValueError("--special-prob: only for random data (--m/--n/--k), not with --a/--b")
        if args.c == "random":
            raise ValueError("--c: 'random' only with random data (--m/--n/--k); give a file with --a/--b")
        a, b, c = (load_array(p, f) if p else None
                   for p, f in ((args.a, "--a"), (args.b, "--b"), (args.c, "--c")))
        a, b, c, args.dtype, args.conversions = operands(a, b, c, args.dtype)
        return a, b, c
    if args.c not in (None, "random"):
        raise ValueError("--c: with random data (--m/--n/--k) only 'random' is allowed; "
                         "give --a/--b with a C.npy")
    for flag in ("m", "n", "k"):
        if getattr(args, flag) is None:
            raise ValueError(f"--{flag}: required without --a/--b")
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag}: {getattr(args, flag)} is out of range; must be at least 1")
    if not 0 <= args.special_prob <= 1:
        raise ValueError(f"--special-prob: {args.special_prob} is out of range; allowed: [0, 1]")
    if args.dtype == "int8" and args.special_prob:
        raise ValueError("--special-prob: special values exist only in BF16 data, not with --dtype int8")
    if not 0 <= args.seed < 1 << 31:
        raise ValueError(f"--seed: {args.seed} is out of range; allowed: [0, {(1 << 31) - 1}]")
    args.dtype = args.dtype or "bf16"
    args.conversions = []
    rng = np.random.default_rng(args.seed)
    return random_operands(rng, args.m, args.n, args.k, args.dtype, args.c == "random", args.special_prob)


