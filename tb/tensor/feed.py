"""The tensor core's stream order (docs/tensor.md), written independently of the RTL, and data.

* :func:`groups` -- the output blocks of one operation, grouped ``T`` at a time.
* :class:`OpStreams` -- the beats of the ``a``/``b`` (steps), ``c`` and ``d`` streams of one
  operation, packed as integers (lane 0 in the low bits), generated lazily and fast.
* :func:`random_bf16` / :func:`random_f32` / :func:`random_int8` -- operands with the special
  values of the verification plan scattered at random.
"""

from __future__ import annotations

import numpy as np

BF16_SPECIALS = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x7F81, 0x0001, 0x8001, 0x007F,
                 0x0080, 0x7F7F, 0xFF7F, 0x3F80]
F32_SPECIALS = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFC12345,
                0x00000001, 0x80000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF]
# The finite ones (signed zeros, subnormals, smallest normal, largest finite, 1.0): with these alone
# a GEMM's outputs stay mostly finite, so the subnormal, underflow and overflow paths are checked
# on numbers instead of being hidden behind NaN and infinity.
BF16_FINITE_SPECIALS = [v for v in BF16_SPECIALS if v & 0x7F80 != 0x7F80]
F32_FINITE_SPECIALS = [v for v in F32_SPECIALS if v & 0x7F800000 != 0x7F800000]


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


def random_bf16(rng: np.random.Generator, shape, special_prob=0.0, finite=False) -> np.ndarray:
    """bf16 bit patterns around 1.0 (exponents 2^-8..2^8, random sign), specials scattered.

    ``finite``: scatter only the finite specials (:data:`BF16_FINITE_SPECIALS`).
    """
    sign = rng.integers(0, 2, size=shape, dtype=np.uint16) << 15
    exp = rng.integers(119, 136, size=shape, dtype=np.uint16) << 7
    man = rng.integers(0, 128, size=shape, dtype=np.uint16)
    out = (sign | exp | man).astype(np.uint16)
    if special_prob > 0:
        mask = rng.random(shape) < special_prob
        pool = BF16_FINITE_SPECIALS if finite else BF16_SPECIALS
        out[mask] = rng.choice(np.array(pool, dtype=np.uint16), size=int(mask.sum()))
    return out


def random_f32(rng: np.random.Generator, shape, special_prob=0.0, finite=False) -> np.ndarray:
    """FP32 bit patterns around 1.0, specials (only the finite ones if ``finite``) scattered."""
    sign = rng.integers(0, 2, size=shape, dtype=np.uint32) << 31
    exp = rng.integers(119, 136, size=shape, dtype=np.uint32) << 23
    man = rng.integers(0, 1 << 23, size=shape, dtype=np.uint32)
    out = (sign | exp | man).astype(np.uint32)
    if special_prob > 0:
        mask = rng.random(shape) < special_prob
        pool = F32_FINITE_SPECIALS if finite else F32_SPECIALS
        out[mask] = rng.choice(np.array(pool, dtype=np.uint32), size=int(mask.sum()))
    return out


def random_int8(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int16).astype(np.int8)


def random_i32(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-(1 << 31), 1 << 31, size=shape, dtype=np.int64).astype(np.int32)
