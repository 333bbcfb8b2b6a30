"""Golden model of Tessera's numerics contract (docs/numerics.md), on bit patterns.

Never imports from ``rtl/``. Two flavours with identical results:

* scalar functions built on Berkeley SoftFloat (``softfloatpy``), the reference:
  :func:`bf16_to_f32`, :func:`f32_mul_bf16`, :func:`f32_add`, :func:`int8_mac`;
* vectorised numpy equivalents for big goldens (GEMMs):
  :func:`bf16_to_f32_np`, :func:`f32_mul_bf16_np`, :func:`f32_add_np`, :func:`int8_mac_np`,
  and the k-ordered reductions :func:`gemm_bf16_np`, :func:`gemm_int8_np`.
  numpy's float32 multiply and add are correctly rounded IEEE binary32 with subnormals on x86
  (no flush to zero); NaNs are canonicalised. ``tests/test_numeric_models.py`` cross-checks
  them against SoftFloat.

Bit patterns are Python ints / numpy unsigned arrays: BF16 as ``uint16``, FP32 as ``uint32``.
Any NaN result is the canonical quiet NaN ``0x7FC00000``. Rounding is to nearest, ties to even.
"""

from __future__ import annotations

import numpy as np
import softfloatpy as sf

__all__ = [
    "CANONICAL_NAN",
    "bf16_to_f32",
    "f32_mul_bf16",
    "f32_add",
    "int8_mac",
    "canonical",
    "bf16_to_f32_np",
    "f32_mul_bf16_np",
    "f32_add_np",
    "int8_mac_np",
    "gemm_bf16_np",
    "gemm_int8_np",
    "f32_bits",
    "f32_value",
]

CANONICAL_NAN = 0x7FC00000

if sf.get_rounding_mode() != sf.RoundingMode.NEAR_EVEN:
    sf.set_rounding_mode(sf.RoundingMode.NEAR_EVEN)


def _sf32(bits: int) -> sf.Float32:
    return sf.Float32.from_bytes((bits & 0xFFFFFFFF).to_bytes(4, "big"))


def _bits32(value: sf.Float32) -> int:
    return int.from_bytes(value.to_bytes(), "big")


def _sf16(bits: int) -> sf.BFloat16:
    return sf.BFloat16.from_bytes((bits & 0xFFFF).to_bytes(2, "big"))


def canonical(bits: int) -> int:
    """``bits`` with any NaN replaced by the canonical quiet NaN."""
    if (bits & 0x7F800000) == 0x7F800000 and (bits & 0x007FFFFF):
        return CANONICAL_NAN
    return bits


# --- scalar reference (SoftFloat) -------------------------------------------------------------

def bf16_to_f32(a: int) -> int:
    """Widen a bfloat16 bit pattern to binary32 (SoftFloat ``bf16_to_f32``): exact for numbers,
    and a NaN becomes the canonical NaN."""
    return _bits32(sf.bf16_to_f32(_sf16(a)))


def f32_mul_bf16(a: int, b: int) -> int:
    """BF16 x BF16 -> FP32: ``f32_mul(bf16_to_f32(a), bf16_to_f32(b))``, RNE, canonical NaN."""
    return canonical(_bits32(sf.f32_mul(sf.bf16_to_f32(_sf16(a)), sf.bf16_to_f32(_sf16(b)))))


def f32_add(a: int, b: int) -> int:
    """FP32 + FP32, RNE, canonical NaN (SoftFloat ``f32_add``)."""
    return canonical(_bits32(sf.f32_add(_sf32(a), _sf32(b))))


def int8_mac(a: int, b: int, c: int) -> int:
    """``c + a * b`` for int8 ``a``, ``b`` and int32 ``c``, wrapped to a signed int32."""
    for name, v, lo, hi in (("a", a, -128, 127), ("b", b, -128, 127), ("c", c, -(1 << 31), (1 << 31) - 1)):
        if not lo <= v <= hi:
            raise ValueError(f"int8_mac: {name} = {v} is out of range {lo}..{hi}")
    s = (c + a * b) & 0xFFFFFFFF
    return s - (1 << 32) if s & 0x80000000 else s


def f32_bits(x: float) -> int:
    """Bit pattern of a Python float rounded to binary32 (a convenience for tests)."""
    return int(np.array([x], dtype=np.float32).view(np.uint32)[0])


def f32_value(bits: int) -> float:
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


# --- vectorised numpy equivalents ---------------------------------------------------------------

def _canonical_np(x: np.ndarray) -> np.ndarray:
    bits = x.view(np.uint32)
    return np.where(np.isnan(x), np.uint32(CANONICAL_NAN), bits).astype(np.uint32)


def _widen_np(a) -> np.ndarray:
    return np.asarray(a, dtype=np.uint16).astype(np.uint32) << np.uint32(16)


def bf16_to_f32_np(a) -> np.ndarray:
    """Vectorised :func:`bf16_to_f32`: uint16 BF16 bit patterns -> uint32 FP32 bit patterns."""
    return _canonical_np(_widen_np(a).view(np.float32))


def f32_mul_bf16_np(a, b) -> np.ndarray:
    """Vectorised :func:`f32_mul_bf16` on uint16 arrays (broadcasting); returns uint32."""
    fa = _widen_np(a).view(np.float32)
    fb = _widen_np(b).view(np.float32)
    with np.errstate(all="ignore"):
        return _canonical_np(np.multiply(fa, fb, dtype=np.float32))


def f32_add_np(a, b) -> np.ndarray:
    """Vectorised :func:`f32_add` on uint32 arrays (broadcasting); returns uint32."""
    fa = np.ascontiguousarray(a, dtype=np.uint32).view(np.float32)
    fb = np.ascontiguousarray(b, dtype=np.uint32).view(np.float32)
    with np.errstate(all="ignore"):
        return _canonical_np(np.add(fa, fb, dtype=np.float32))


def int8_mac_np(a, b, c) -> np.ndarray:
    """Vectorised :func:`int8_mac`: int8 ``a``, ``b``, int32 ``c`` -> int32 (wrapping)."""
    a = np.asarray(a, dtype=np.int8).astype(np.int64)
    b = np.asarray(b, dtype=np.int8).astype(np.int64)
    c = np.asarray(c, dtype=np.int32).astype(np.int64)
    return (c + a * b).astype(np.uint64).astype(np.uint32).view(np.int32)


def gemm_bf16_np(a, b, c=None) -> np.ndarray:
    """The BF16 GEMM of the numerics contract: ``acc = RNE32(acc + RNE32(a[i,k] * b[k,j]))``
    in increasing k, from ``acc = c`` (uint32 FP32 bits) or +0.0. ``a``: (M, K) uint16,
    ``b``: (K, N) uint16. Returns (M, N) uint32 bit patterns."""
    a = np.asarray(a, dtype=np.uint16)
    b = np.asarray(b, dtype=np.uint16)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm_bf16_np: shapes {a.shape} and {b.shape} do not chain")
    m, n = a.shape[0], b.shape[1]
    acc = np.zeros((m, n), np.uint32) if c is None else np.array(c, dtype=np.uint32).reshape(m, n)
    for k in range(a.shape[1]):
        acc = f32_add_np(acc, f32_mul_bf16_np(a[:, k, None], b[None, k, :]))
    return acc


def gemm_int8_np(a, b, c=None) -> np.ndarray:
    """INT8 GEMM: int32 ``c + a @ b`` wrapping modulo 2^32. ``a``: (M, K) int8, ``b``: (K, N) int8."""
    a = np.asarray(a, dtype=np.int8).astype(np.int64)
    b = np.asarray(b, dtype=np.int8).astype(np.int64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm_int8_np: shapes {a.shape} and {b.shape} do not chain")
    acc = a @ b
    if c is not None:
        acc = acc + np.asarray(c, dtype=np.int32).astype(np.int64)
    return acc.astype(np.uint64).astype(np.uint32).view(np.int32)
