"""The tensor core's stream order (docs/tensor.md), written independently of the RTL, and data.

* :func:`groups` -- the output blocks of one operation, grouped ``T`` at a time.
* :class:`OpStreams` -- the beats of the ``a``/``b`` (steps), ``c`` and ``d`` streams of one
  operation, packed as integers (lane 0 in the low bits), generated lazily and fast.
* :func:`random_bf16` / :func:`random_f32` / :func:`random_int8` / :func:`random_i32` -- random
  operands, from :mod:`tessera.runtime.random_data` (the command line's random GEMMs use them too).
"""

from __future__ import annotations

import numpy as np

from tessera.runtime.random_data import (  # noqa: F401 (re-exported for the testbenches)
    BF16_FINITE_SPECIALS,
    BF16_SPECIALS,
    F32_FINITE_SPECIALS,
    F32_SPECIALS,
    random_bf16,
    random_f32,
    random_i32,
    random_int8,
)


def groups(m: int, n: int, rows: int, cols: int, t: int) -> list[list[tuple[int, int]]]:
    """Blocks (first row, first column) in row-major order, cut into groups of ``t``."""
    blocks = [(mr, nc) for mr in range(0, m, rows) for nc in range(0, n, cols)]
    return [blocks[i:i + t] for i in range(0, len(blocks), t)]


def _lanes_to_ints(arr: np.ndarray) -> list[int]:
    """Rows of a 2-D unsigned array -> little-endian integers (lane 0 in the low bits)."""
    arr = np.ascontiguousarray(arr)
    width = arr.shape[1] * arr.itemsize
    raw = arr.tobytes()
    return [int.from_bytes(raw[i:i + width], "little") for i in range(0, len(raw), width)]


class OpStreams:
    """Beats of one operation for a ``rows`` x ``cols`` core with interleave ``t``.

    ``a``/``b``: uint16 lanes (bf16 bits, or int8 in the low byte); ``c``: uint32 lanes or None.
    Padding lanes (rows >= M, columns >= N) and, in INT8 mode, the high byte of each operand
    lane are filled from ``pad_rng`` when given (the core must ignore them), else zero.
    """

    def __init__(self, a, b, c, dtype, rows, cols, t, pad_rng=None):
        self.dtype = dtype
        self.m, self.k = a.shape
        self.n = b.shape[1]
        self.rows, self.cols, self.t = rows, cols, t
        mb = -(-self.m // rows)
        nb = -(-self.n // cols)

        def padded(shape, src, bits):
            if pad_rng is not None:
                out = pad_rng.integers(0, 1 << bits, size=shape, dtype=np.uint64).astype(
                    np.uint16 if bits == 16 else np.uint32)
            else:
                out = np.zeros(shape, dtype=np.uint16 if bits == 16 else np.uint32)
            return out, src

        a16 = np.asarray(a).view(np.uint16) if dtype == "bf16" else np.asarray(a, np.int8).view(np.uint8)
        b16 = np.asarray(b).view(np.uint16) if dtype == "bf16" else np.asarray(b, np.int8).view(np.uint8)
        ap, _ = padded((mb * rows, self.k), a, 16)
        bp, _ = padded((self.k, nb * cols), b, 16)
        if dtype == "int8":
            ap[:self.m] = (ap[:self.m] & 0xFF00) | a16
            bp[:, :self.n] = (bp[:, :self.n] & 0xFF00) | b16
        else:
            ap[:self.m] = a16
            bp[:, :self.n] = b16
        # a_words[mb][k]: lanes i = A[mb*R + i, k]; b_words[nb][k]: lanes j = B[k, nb*C + j]
        self.a_words = [_lanes_to_ints(ap[x * rows:(x + 1) * rows].T) for x in range(mb)]
        self.b_words = [_lanes_to_ints(bp[:, x * cols:(x + 1) * cols]) for x in range(nb)]
        self.c_rows = None
        if c is not None:
            cp, _ = padded((self.m, nb * cols), None, 32)
            cp[:, :self.n] = np.asarray(c).view(np.uint32)
            self.c_rows = [_lanes_to_ints(cp[:, x * cols:(x + 1) * cols]) for x in range(nb)]
        self.groups = groups(self.m, self.n, rows, cols, t)

    @property
    def steps(self) -> int:
        return sum(len(g) for g in self.groups) * self.k

    def ab(self):
        """(a_word, b_word) for every step: per group, per k, per block of the group."""
        for grp in self.groups:
            idx = [(mr // self.rows, nc // self.cols) for mr, nc in grp]
            for kk in range(self.k):
                for x, y in idx:
                    yield self.a_words[x][kk], self.b_words[y][kk]

    def row_order(self):
        """(row, col) of every C / D beat in stream order: per group, per PE row i, per block."""
        for grp in self.groups:
            for i in range(self.rows):
                for mr, nc in grp:
                    if mr + i < self.m:
                        yield mr + i, nc

    def c_beats(self):
        for row, col in self.row_order():
            yield self.c_rows[col // self.cols][row]
