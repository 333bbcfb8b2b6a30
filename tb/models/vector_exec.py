"""Golden model of one VECTOR instruction on a tile's local memories (docs/isa.md "VECTOR",
docs/vector.md).

Never imports from ``rtl/``: the codes below are written from docs/isa.md (``tests/test_vector_engine.py``
checks them against ``rtl/tile/isa.py``). The arithmetic is :mod:`tessera.tb.models.vector`'s.

:func:`execute` applies an instruction, given as a dict of its fields (the names of docs/isa.md),
to the accumulator memory and the scratchpad, both ``uint8`` arrays changed in place. It does not
check the instruction (``tessera.tb.models.tile_isa`` does): a malformed one is never executed.
"""

from __future__ import annotations

import numpy as np

from tessera.tb.models import vector as v

OPS = {"pass": 0, "add": 1, "sub": 2, "mul": 3, "max": 4, "min": 5, "mask": 6, "iadd": 7}
YMODES = {"region": 0, "row": 1, "col": 2, "imm": 3}
ACTS = {"none": 0, "relu": 1, "gelu": 2, "exp": 3, "recip": 4, "rsqrt": 5}
REDS = {"none": 0, "sum": 1, "max": 2}
FMTS = {"fp32": 0, "bf16": 1, "bf16t": 2, "int8": 3, "int8t": 4}

_BINARY = {1: v.add, 2: v.sub, 3: v.mul, 4: lambda a, b: v.vmax(a, b), 5: lambda a, b: v.vmin(a, b),
           6: lambda a, b: v.mask_pos(a, b), 7: lambda a, b: v.int32_add(a, b).view(np.uint32)}
_UNARY = {1: v.relu, 2: v.gelu, 3: v.exp, 4: v.recip, 5: v.rsqrt}


def pitch(row_bytes: int, word_bytes: int) -> int:
    """Bytes from one row's start to the next: ``row_bytes`` rounded up to a word."""
    return -(-row_bytes // word_bytes) * word_bytes


def out_pitch(f: dict, word_bytes: int) -> int:
    """The output's row pitch for ``fmt`` (docs/isa.md)."""
    rows, cols = f["rows"], f["cols"]
    row_bytes = {0: 4 * cols, 1: 2 * cols, 2: 2 * rows, 3: cols, 4: rows}[f["fmt"]]
    return pitch(row_bytes, word_bytes)


def read_words(mem: np.ndarray, addr: int, rows: int, cols: int, row_pitch: int) -> np.ndarray:
    """A rows x cols region of 32-bit little-endian words at byte ``addr``, rows ``row_pitch`` apart."""
    idx = addr + np.arange(rows)[:, None] * row_pitch + 4 * np.arange(cols)[None, :]
    b = mem[idx[..., None] + np.arange(4)].astype(np.uint32)
    return b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16) | (b[..., 3] << 24)


def write_elems(mem: np.ndarray, addr: int, values: np.ndarray, row_pitch: int) -> None:
    """Writes a 2-D array of little-endian elements (its dtype's size) row by row at ``addr``."""
    values = np.ascontiguousarray(values)
    width = values.dtype.itemsize
    raw = values.view(np.uint8).reshape(values.shape[0], values.shape[1] * width)
    for i in range(values.shape[0]):
        start = addr + i * row_pitch
        mem[start:start + raw.shape[1]] = raw[i]


def operand_y(f: dict, acc: np.ndarray, word_bytes: int) -> np.ndarray:
    """The second operand as a rows x cols (or broadcastable) array of 32-bit patterns."""
    rows, cols, y, mode = f["rows"], f["cols"], f["y"], f["ymode"]
    if mode == YMODES["imm"]:
        return np.array(y, dtype=np.uint32)
    if mode == YMODES["row"]:
        return read_words(acc, y, 1, cols, 0)
    if mode == YMODES["col"]:
        return read_words(acc, y, rows, 1, 4)
    return read_words(acc, y, rows, cols, pitch(4 * cols, word_bytes))


def compute(f: dict, acc: np.ndarray, word_bytes: int) -> np.ndarray:
    """The instruction's result before the output format: rows x cols 32-bit patterns, or one per
    row (shape (rows,)) for a reduction."""
    rows, cols = f["rows"], f["cols"]
    x = read_words(acc, f["x_addr"], rows, cols, pitch(4 * cols, word_bytes))
    if f["itof"]:
        x = v.i32_to_f32(x.view(np.int32))
    r = x if f["op"] == OPS["pass"] else _BINARY[f["op"]](x, operand_y(f, acc, word_bytes))
    r = np.broadcast_to(np.asarray(r, dtype=np.uint32), (rows, cols))    # PASS: x's bits, unchanged
    if f["act"]:
        r = _UNARY[f["act"]](r)
    if f["red"] == REDS["sum"]:
        return v.rowsum(r)
    if f["red"] == REDS["max"]:
        return v.rowmax(r)
    return r


def execute(f: dict, acc: np.ndarray, sp: np.ndarray, word_bytes: int) -> None:
    """Applies the VECTOR ``f`` to ``acc`` (accumulator bytes) and ``sp`` (scratchpad bytes)."""
    r = compute(f, acc, word_bytes)
    if f["red"]:
        write_elems(acc, f["d_addr"], r.astype(np.uint32)[None, :], 0)
        return
    fmt, dp = f["fmt"], out_pitch(f, word_bytes)
    if fmt == FMTS["fp32"]:
        write_elems(acc, f["d_addr"], r.astype(np.uint32), dp)
    elif fmt in (FMTS["bf16"], FMTS["bf16t"]):
        out = v.to_bf16(r)
        write_elems(sp, f["d_addr"], out.T if fmt == FMTS["bf16t"] else out, dp)
    else:
        out = v.to_int8(r)
        write_elems(sp, f["d_addr"], out.T if fmt == FMTS["int8t"] else out, dp)
