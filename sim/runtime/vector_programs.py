"""Vector programs: row softmax and layer norm as sequences of VECTOR instructions over a matrix held
in a tile's accumulator memory (docs/vector.md, "Composite operations").

A program is a list of VECTORs, each a dict of its fields by their docs/isa.md names with their
codes (``tessera.rtl.tile.isa``'s enums; ``tessera.tb.models.vector_exec`` and
``tessera.tb.vector.jobs`` take them so). They run one after the other on one engine; each reads what the
previous ones wrote, so in a tile program a ``barrier vectors`` is not needed between them (the
engine runs one VECTOR at a time, and a VECTOR is done when its last write is).

The result is defined by the program: the golden output is ``tb/models/vector_exec.py`` executing
the same VECTORs, every step an RNE FP32 operation of the numerics contract. :func:`softmax_ref`
and :func:`layernorm_ref` (float64) measure how far that is from the exact values.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tessera.rtl.tile.isa import Act, Reduce, VFmt, VOp, YMode

__all__ = ["with_sfu", "Layout", "softmax_layout", "layernorm_layout", "softmax", "layernorm", "image",
           "result", "job", "softmax_ref", "layernorm_ref"]


def with_sfu(cfg):
    """``cfg`` with the vector engine's special functions (``TileConfig.sfu``), named
    ``<name>_sfu`` (its builds are cached under that name)."""
    if cfg.tile.sfu:
        return cfg
    return dataclasses.replace(cfg, name=f"{cfg.name}_sfu", tile=dataclasses.replace(cfg.tile, sfu=True))


def _vector(op: str, x: int, d: int, rows: int, cols: int, *, ymode: str = "region", y: int = 0,
            act: str = "none", red: str = "none", fmt: str = "fp32") -> dict:
    return {"op": VOp[op.upper()].value, "ymode": YMode[ymode.upper()].value, "act": Act[act.upper()].value,
            "red": Reduce[red.upper()].value, "fmt": VFmt[fmt.upper()].value, "itof": 0, "x_addr": x,
            "d_addr": d, "y": y, "rows": rows, "cols": cols}


def _pitch(row_bytes: int, word_bytes: int) -> int:
    """Bytes from one row's start to the next: ``row_bytes`` rounded up to a word (docs/isa.md)."""
    return -(-row_bytes // word_bytes) * word_bytes


@dataclasses.dataclass(frozen=True)
class Layout:
    """Byte addresses in the accumulator memory: the matrix ``x`` (rows x cols, rows a word-rounded
    pitch apart), two row statistics ``s1``, ``s2`` (``rows`` FP32 values each) and, for layer norm,
    ``gamma`` and ``beta`` (``cols`` each); ``end`` is the first byte after them."""

    rows: int
    cols: int
    x: int
    s1: int
    s2: int
    gamma: int
    beta: int
    end: int


def _layout(cfg, rows: int, cols: int, vectors: int, what: str) -> Layout:
    W, acc = cfg.tile.word_bytes, cfg.tile.accumulator_bytes
    for name, n in (("rows", rows), ("cols", cols)):
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 4095:
            raise ValueError(f"{what}: {name} = {n!r}; a VECTOR takes 1 .. 4095")
    x_bytes = rows * _pitch(4 * cols, W)
    stat, vec = _pitch(4 * rows, W), _pitch(4 * cols, W)
    s1 = x_bytes
    s2 = s1 + stat
    gamma = s2 + stat
    beta = gamma + vec
    end = gamma + vectors * vec
    if end > acc:
        raise ValueError(f"{what}: x ({rows} x {cols}, {x_bytes} bytes) and its row statistics"
                         f"{' and gamma, beta' if vectors else ''} need {end} bytes; the accumulator"
                         f" memory of {cfg.name!r} has {acc}")
    return Layout(rows, cols, 0, s1, s2, gamma, beta, end)


def softmax_layout(cfg, rows: int, cols: int) -> Layout:
    return _layout(cfg, rows, cols, 0, "softmax")


def layernorm_layout(cfg, rows: int, cols: int) -> Layout:
    return _layout(cfg, rows, cols, 2, "layernorm")


def softmax(lay: Layout) -> list[dict]:
    """Row softmax of x in place (5 VECTORs, 4 passes over x):
    m = rowmax(x); x = exp(x - m) (m broadcast per row); s = rowsum(x); s = recip(s); x = x * s."""
    r, c = lay.rows, lay.cols
    return [
        _vector("pass", lay.x, lay.s1, r, c, red="max"),
        _vector("sub", lay.x, lay.x, r, c, ymode="col", y=lay.s1, act="exp"),
        _vector("pass", lay.x, lay.s2, r, c, red="sum"),
        _vector("pass", lay.s2, lay.s2, 1, r, act="recip"),
        _vector("mul", lay.x, lay.x, r, c, ymode="col", y=lay.s2),
    ]


def _f32_bits(value: float) -> int:
    return int(np.float32(value).view(np.uint32))


def layernorm(lay: Layout, eps: float = 1e-5) -> list[dict]:
    """Layer norm of each row of x in place, with ``gamma`` and ``beta`` (``cols`` each, at their
    layout addresses) and ``eps`` (rounded once to FP32); 1/cols is the FP32 nearest to it. 9 VECTORs,
    6 passes over x (the fourth reads x twice):
    mean = rowsum(x) * (1/cols); x = x - mean; var = rowsum(x * x) * (1/cols);
    r = rsqrt(var + eps); x = x * r; x = x * gamma; x = x + beta."""
    r, c = lay.rows, lay.cols
    inv_n, eps_bits = _f32_bits(1.0 / c), _f32_bits(eps)
    return [
        _vector("pass", lay.x, lay.s1, r, c, red="sum"),
        _vector("mul", lay.s1, lay.s1, 1, r, ymode="imm", y=inv_n),
        _vector("sub", lay.x, lay.x, r, c, ymode="col", y=lay.s1),
        _vector("mul", lay.x, lay.s2, r, c, ymode="region", y=lay.x, red="sum"),
        _vector("mul", lay.s2, lay.s2, 1, r, ymode="imm", y=inv_n),
        _vector("add", lay.s2, lay.s2, 1, r, ymode="imm", y=eps_bits, act="rsqrt"),
        _vector("mul", lay.x, lay.x, r, c, ymode="col", y=lay.s2),
        _vector("mul", lay.x, lay.x, r, c, ymode="row", y=lay.gamma),
        _vector("add", lay.x, lay.x, r, c, ymode="row", y=lay.beta),
    ]


def image(cfg, lay: Layout, x: np.ndarray, gamma: np.ndarray | None = None,
          beta: np.ndarray | None = None) -> np.ndarray:
    """The whole accumulator memory (``uint8``) holding x (and gamma, beta) as 32-bit little-endian
    patterns, zeros elsewhere."""
    img = np.zeros(cfg.tile.accumulator_bytes, dtype=np.uint8)
    xp = _pitch(4 * lay.cols, cfg.tile.word_bytes)
    rows = np.asarray(x, dtype="<u4").reshape(lay.rows, lay.cols).view(np.uint8)
    for i in range(lay.rows):
        img[lay.x + i * xp: lay.x + i * xp + 4 * lay.cols] = rows[i]
    for addr, v in ((lay.gamma, gamma), (lay.beta, beta)):
        if v is not None:
            img[addr: addr + 4 * lay.cols] = np.asarray(v, dtype="<u4").reshape(lay.cols).view(np.uint8)
    return img


def result(cfg, lay: Layout, acc: np.ndarray) -> np.ndarray:
    """x (rows x cols FP32 patterns, ``uint32``) from the accumulator bytes after the program."""
    xp = _pitch(4 * lay.cols, cfg.tile.word_bytes)
    raw = np.stack([acc[lay.x + i * xp: lay.x + i * xp + 4 * lay.cols] for i in range(lay.rows)])
    return np.ascontiguousarray(raw).view("<u4").astype(np.uint32).reshape(lay.rows, lay.cols)


def job(cfg, op: str, x: np.ndarray, gamma: np.ndarray | None = None, beta: np.ndarray | None = None,
        eps: float = 1e-5) -> tuple[dict, Layout]:
    """The program ``op`` ("softmax" or "layernorm") on x (rows x cols FP32 patterns) as a job of
    ``tessera.tb.vector.jobs`` (``program``, the whole accumulator ``image``, ``readback`` "all"),
    and its layout. Layer norm's gamma and beta default to ones and zeros. ``ValueError`` when x
    and its statistics do not fit the accumulator memory."""
    rows, cols = x.shape
    if op == "softmax":
        lay = softmax_layout(cfg, rows, cols)
        return {"program": softmax(lay), "image": image(cfg, lay, x), "readback": "all"}, lay
    lay = layernorm_layout(cfg, rows, cols)
    ones, zeros = np.full(cols, 1.0, np.float32).view(np.uint32), np.zeros(cols, np.uint32)
    img = image(cfg, lay, x, ones if gamma is None else gamma, zeros if beta is None else beta)
    return {"program": layernorm(lay, eps), "image": img, "readback": "all"}, lay


def softmax_ref(x: np.ndarray) -> np.ndarray:
    """Row softmax of the FP32 patterns ``x`` in float64."""
    v = np.asarray(x, dtype=np.uint32).view(np.float32).astype(np.float64)
    e = np.exp(v - v.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def layernorm_ref(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Layer norm of the rows of the FP32 patterns ``x`` in float64 (biased variance, as PyTorch)."""
    def f64(a):
        return np.asarray(a, dtype=np.uint32).view(np.float32).astype(np.float64)
    v = f64(x)
    mean = v.mean(axis=1, keepdims=True)
    var = ((v - mean) ** 2).mean(axis=1, keepdims=True)
    return (v - mean) / np.sqrt(var + float(np.float32(eps))) * f64(gamma) + f64(beta)
