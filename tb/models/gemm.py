"""Golden GEMM models for the tensor core: D = C + A x B, bit-exact per the numerics contract.

Never imports from ``rtl/``. Arrays use the command-line formats of docs/numerics.md:

* BF16: A (M x K) and B (K x N) as ``uint16`` bfloat16 bit patterns; C and D as ``uint32``
  binary32 bit patterns. For each output, in increasing k: ``acc = RNE32(acc + RNE32(a * b))``
  from ``acc = C`` (or +0.0); any NaN result is the canonical quiet NaN 0x7FC00000.
  numpy float32 arithmetic is correctly rounded IEEE binary32 with subnormals (no flush to zero
  on x86-64), and a product of two bfloat16 values is rounded once by the float32 multiply, so
  the model loops over k with whole-matrix float32 operations. :func:`gemm_bf16_softfloat` is
  the element-wise Berkeley SoftFloat version used to cross-check it.
* INT8: A and B ``int8``; C and D ``int32``, accumulation wrapping modulo 2**32.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "CANONICAL_NAN", "bf16_to_f32_bits", "gemm_bf16", "gemm_int8", "gemm", "gemm_bf16_softfloat",
    "scalesim_os_cycles",
]

CANONICAL_NAN = 0x7FC00000


def bf16_to_f32_bits(a) -> np.ndarray:
    """bfloat16 bit patterns -> binary32 bit patterns (exact widening)."""
    return np.asarray(a, dtype=np.uint16).astype(np.uint32) << 16


def _canonical(x: np.ndarray) -> np.ndarray:
    bits = x.view(np.uint32).copy()
    bits[np.isnan(x)] = CANONICAL_NAN
    return bits


def gemm_bf16(a, b, c=None) -> np.ndarray:
    """D = C + A x B in BF16 mode; A (M x K) and B (K x N) uint16, C (M x N) uint32 or None."""
    a = np.asarray(a, dtype=np.uint16)
    b = np.asarray(b, dtype=np.uint16)
    m, k = a.shape
    k2, n = b.shape
    if k != k2:
        raise ValueError(f"A is {m}x{k} but B is {k2}x{n}")
    af = bf16_to_f32_bits(a).view(np.float32)
    bf = bf16_to_f32_bits(b).view(np.float32)
    if c is None:
        acc = np.zeros((m, n), dtype=np.float32)
    else:
        acc = np.array(np.asarray(c, dtype=np.uint32).reshape(m, n)).view(np.float32)
    with np.errstate(all="ignore"):
        for kk in range(k):
            prod = np.multiply.outer(af[:, kk], bf[kk, :]).astype(np.float32)
            acc = np.add(acc, prod, dtype=np.float32)
    return _canonical(acc)


def gemm_int8(a, b, c=None) -> np.ndarray:
    """D = C + A x B in INT8 mode (int32 wrapping); A, B int8, C int32 or None."""
    a = np.asarray(a, dtype=np.int8).astype(np.int64)
    b = np.asarray(b, dtype=np.int8).astype(np.int64)
    d = a @ b
    if c is not None:
        d = d + np.asarray(c, dtype=np.int32).astype(np.int64)
    return (d & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def gemm(a, b, c=None, dtype: str = "bf16") -> np.ndarray:
    if dtype == "bf16":
        return gemm_bf16(a, b, c)
    if dtype == "int8":
        return gemm_int8(a, b, c)
    raise ValueError(f"dtype = {dtype!r} is not allowed; allowed: bf16, int8")


def gemm_bf16_softfloat(a, b, c=None) -> np.ndarray:
    """Element-wise Berkeley SoftFloat reference (slow; for cross-checking small cases)."""
    import softfloatpy as sf

    a = np.asarray(a, dtype=np.uint16)
    b = np.asarray(b, dtype=np.uint16)
    m, k = a.shape
    n = b.shape[1]
    sf.set_rounding_mode(sf.RoundingMode.NEAR_EVEN)

    def f32(bits):
        return sf.Float32.from_bytes(int(bits).to_bytes(4, "big"))

    def bf16(bits):
        return sf.BFloat16.from_bytes(int(bits).to_bytes(2, "big"))

    out = np.zeros((m, n), dtype=np.uint32)
    for i in range(m):
        for j in range(n):
            acc = f32(0 if c is None else int(np.asarray(c)[i, j]))
            for kk in range(k):
                p = sf.f32_mul(sf.bf16_to_f32(bf16(a[i, kk])), sf.bf16_to_f32(bf16(b[kk, j])))
                acc = sf.f32_add(acc, p)
            bits = int.from_bytes(acc.to_bytes(), "big")
            if (bits & 0x7F800000) == 0x7F800000 and (bits & 0x007FFFFF):
                bits = CANONICAL_NAN
            out[i, j] = bits
    return out


def scalesim_os_cycles(m: int, n: int, k: int, rows: int, cols: int) -> int:
    """SCALE-Sim's output-stationary cycle count for one GEMM: folds x (K + R + C - 2) - 1."""
    return math.ceil(m / rows) * math.ceil(n / cols) * (k + rows + cols - 2) - 1
