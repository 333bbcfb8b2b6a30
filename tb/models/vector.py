"""Golden model of the vector engine's numerics (docs/vector.md, "Numerics"), on bit patterns.

Never imports from ``rtl/``. Every operation is written once, as the sequence of FP32 operations
the vector engine performs, over a float-operation provider:

* :class:`NumpyOps`: numpy float32 arithmetic (correctly rounded IEEE binary32, round to nearest
  even, subnormals kept on x86-64), for whole arrays -- the golden model of the benches;
* :class:`SoftFloatOps`: Berkeley SoftFloat (``softfloatpy``), element by element -- the
  reference that ``tests/test_vector_model.py`` checks the numpy path against, bit for bit.

Values are FP32 bit patterns (``uint32`` arrays); every FP32 result is canonicalised (any NaN is
``0x7FC00000``). Integer steps (exponent fields, table indices) are exact integer arithmetic on the
bit patterns, the same in both providers.

The transcendental operations are algorithms, each step one RNE FP32 operation:

* ``exp``: Cody-Waite range reduction by ln 2 (n = rint(x log2 e), r = x - n C1 - n C2), the
  Cephes ``expf`` polynomial of degree 7 on r, and a scale by 2^n in two exact-or-once-rounded
  multiplications;
* ``recip`` and ``rsqrt``: the exponent split off (subnormals first scaled by 2^24), a linear
  first guess on the mantissa m (the best line in relative error: 5.9 % for 1/m on [1, 2), 3.32 %
  for 1/sqrt(m) on [1, 2) and on [2, 4)), three Newton steps in the form ``y + y e``, the
  exponent put back;
* ``gelu`` (the erf form, ``x Phi(x)``): a table of 24 polynomials of degree 6 for Phi on [-6, 6)
  (intervals of 0.5, in the offset from each interval's centre), then one multiplication by x;
  ``x >= 6`` gives x and ``x < -6`` gives -0.

Their errors against float64 are measured by ``python -m tessera.tb.models.vector``.
"""

from __future__ import annotations

import math

import numpy as np
import softfloatpy as sf

CANONICAL_NAN = 0x7FC00000
U32 = np.uint32

if sf.get_rounding_mode() != sf.RoundingMode.NEAR_EVEN:
    sf.set_rounding_mode(sf.RoundingMode.NEAR_EVEN)


def _check_subnormals():
    """numpy's float32 must keep subnormals (no flush-to-zero / denormals-are-zero mode set by
    some other library in this process), or the numpy path would silently differ from SoftFloat."""
    tiny = np.array([0x00800000, 1], dtype=np.uint32).view(np.float32)
    with np.errstate(all="ignore"):
        kept = (tiny[0] * np.float32(0.5)) != 0 and (tiny[1] * np.float32(1.0)).view(np.uint32) == 1
    if not kept:
        raise RuntimeError("numpy float32 flushes subnormals to zero in this process (FTZ/DAZ set): the"
                           " vector golden model cannot run here")


_check_subnormals()


def bits(x, name: str) -> np.ndarray:
    """``x`` as FP32 bit patterns; floats are refused (``f32`` converts them), since reading a float
    as a bit pattern would be silently wrong."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "ui":
        raise TypeError(f"{name}: FP32 bit patterns (uint32) expected, got {arr.dtype}; use f32(...)")
    return arr.astype(U32)


def f32(x) -> np.ndarray:
    """Python floats / float arrays -> FP32 bit patterns (``uint32``)."""
    return np.asarray(x, dtype=np.float32).view(U32)


def _const(bits: int) -> np.ndarray:
    return np.array(bits, dtype=U32)


def _is_nan(b):
    return ((b & 0x7F800000) == 0x7F800000) & ((b & 0x007FFFFF) != 0)


def _canonical(b):
    b = np.asarray(b, dtype=U32)
    return np.where(_is_nan(b), U32(CANONICAL_NAN), b).astype(U32)


class NumpyOps:
    """FP32 add, sub, mul on bit-pattern arrays, with numpy (broadcasting)."""

    @staticmethod
    def _f(b):
        return np.asarray(b, dtype=U32).view(np.float32)

    def add(self, a, b):
        with np.errstate(all="ignore"):
            return _canonical((self._f(a) + self._f(b)).astype(np.float32).view(U32))

    def sub(self, a, b):
        with np.errstate(all="ignore"):
            return _canonical((self._f(a) - self._f(b)).astype(np.float32).view(U32))

    def mul(self, a, b):
        with np.errstate(all="ignore"):
            return _canonical((self._f(a) * self._f(b)).astype(np.float32).view(U32))


def _sf(bits: int) -> sf.Float32:
    return sf.Float32.from_bytes(int(bits).to_bytes(4, "big"))


def _bits(v: sf.Float32) -> int:
    return int.from_bytes(v.to_bytes(), "big")


class SoftFloatOps:
    """The same operations with Berkeley SoftFloat, element by element (slow; the reference)."""

    @staticmethod
    def _map(fn, a, b):
        a, b = np.broadcast_arrays(np.asarray(a, dtype=U32), np.asarray(b, dtype=U32))
        out = np.empty(a.shape, dtype=U32)
        for i in np.ndindex(a.shape):
            out[i] = _bits(fn(_sf(a[i]), _sf(b[i])))
        return _canonical(out)

    def add(self, a, b):
        return self._map(sf.f32_add, a, b)

    def sub(self, a, b):
        return self._map(sf.f32_sub, a, b)

    def mul(self, a, b):
        return self._map(sf.f32_mul, a, b)


NP = NumpyOps()

# ------------------------------------------------------------------ comparisons and selections


def _sign(b):
    return (b >> 31) & 1


def _key(b):
    """An integer that orders non-NaN FP32 patterns as their values (-0 just below +0)."""
    b = b.astype(np.int64)
    return np.where(b >> 31, -(b & 0x7FFFFFFF) - 1, b)


def vmax(a, b):
    """max(a, b): a NaN operand gives NaN (IEEE 754-2019 maximum); max(-0, +0) = +0."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=U32), np.asarray(b, dtype=U32))
    out = np.where(_key(a) >= _key(b), a, b)
    return np.where(_is_nan(a) | _is_nan(b), U32(CANONICAL_NAN), out).astype(U32)


def vmin(a, b):
    """min(a, b): a NaN operand gives NaN; min(-0, +0) = -0."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=U32), np.asarray(b, dtype=U32))
    out = np.where(_key(a) <= _key(b), a, b)
    return np.where(_is_nan(a) | _is_nan(b), U32(CANONICAL_NAN), out).astype(U32)


def _positive(b):
    """b > 0 (a NaN is not)."""
    return (_sign(b) == 0) & ((b & 0x7FFFFFFF) != 0) & ~_is_nan(b)


def relu(x):
    """x if x > 0; NaN stays NaN; everything else (negatives, -0, +0) is +0."""
    x = np.asarray(x, dtype=U32)
    return np.where(_is_nan(x), U32(CANONICAL_NAN), np.where(_positive(x), x, U32(0))).astype(U32)


def mask_pos(g, h):
    """g where h > 0, else +0 (a NaN h is not positive); a NaN g kept is NaN (the ReLU backward)."""
    g, h = np.broadcast_arrays(np.asarray(g, dtype=U32), np.asarray(h, dtype=U32))
    return np.where(_positive(h), _canonical(g), U32(0)).astype(U32)


# ------------------------------------------------------------------ exp

LOG2E = 0x3FB8AA3B          # 1.44269504
EXP_C1 = 0x3F318000         # 0.693359375: ln 2's high part (n C1 exact for |n| <= 2^11)
EXP_C2 = 0xB95E8083         # -2.12194440e-4: ln 2 - C1
EXP_POLY = (0x3F000000,     # Cephes expf: e^r = 1 + r + r^2 (p0 + p1 r + ... + p5 r^5)
            0x3E2AAAAA, 0x3D2AA9C1, 0x3C088908, 0x3AB743CE, 0x39506967)
MAGIC_RINT = 0x4B400000     # 1.5 * 2^23: (t + M) - M rounds t to an integer (RNE) for |t| < 2^22
EXP_HI = 0x42B17218         # 88.7228394: e^x overflows from here on (this one rounds to +inf too)
EXP_LO = 0xC2D00000         # -104.0: below it e^x < 2^-150, which rounds to +0
ONE = 0x3F800000


def pow2(n):
    """2^n as FP32 for integer n in -126 .. 127 (a normal number: bits (n + 127) << 23)."""
    return ((np.asarray(n, dtype=np.int64) + 127) << 23).astype(U32)


def _scale(ops, p, n):
    """p x 2^n for n in -152 .. 128, p in [0.5, 2] (exp's p, or recip's and rsqrt's y + y in
    (1, 2]): two multiplications, the first exact."""
    n1 = np.asarray(n, dtype=np.int64) // 2
    return ops.mul(ops.mul(p, pow2(n1)), pow2(n - n1))


def exp(x, ops=NP):
    """e^x (see the module docstring); NaN -> NaN, +inf -> +inf, -inf -> +0."""
    x = np.asarray(x, dtype=U32)
    c = _const
    t = ops.mul(x, c(LOG2E))
    nf = ops.sub(ops.add(t, c(MAGIC_RINT)), c(MAGIC_RINT))
    n = np.clip(np.nan_to_num(nf.view(np.float32), nan=0.0), -200, 200).astype(np.int64)
    r = ops.sub(ops.sub(x, ops.mul(nf, c(EXP_C1))), ops.mul(nf, c(EXP_C2)))
    p = c(EXP_POLY[-1])
    for coef in reversed(EXP_POLY[:-1]):
        p = ops.add(ops.mul(p, r), c(coef))
    p = ops.add(ops.add(ops.mul(ops.mul(r, r), p), r), c(ONE))
    y = _scale(ops, p, np.clip(n, -152, 128))
    key = _key(x)
    y = np.where(key > _key(c(EXP_HI)), U32(0x7F800000), y)
    y = np.where(key < _key(c(EXP_LO)), U32(0), y)
    return np.where(_is_nan(x), U32(CANONICAL_NAN), y).astype(U32)


# ------------------------------------------------------------------ reciprocal, rsqrt

TWO24 = 0x4B800000           # 2^24: scales a subnormal to a normal number, exactly
RECIP_A, RECIP_B = 0x3FB4B4B5, 0xBEF0F0F1      # 24/17, -8/17: 1/m ~ A + B m on [1, 2) (5.9 %)
RSQRT_LO = (0x3F9F464D, 0xBE8E16FC)            # 1.244333 - 0.277519 m ~ 1/sqrt(m) on [1, 2) (3.32 %)
RSQRT_HI = (0x3F613F92, 0xBDC8F1FF)            # 0.879876 - 0.098118 m on [2, 4) (3.32 %)
HALF = 0x3F000000


def _split(ops, x):
    """|x| = m 2^e with m in [1, 2) for finite nonzero x (subnormals scaled by 2^24 first):
    (m bits, e)."""
    a = x & 0x7FFFFFFF
    sub = (a >> 23) == 0
    a = np.where(sub, ops.mul(a, _const(TWO24)), a)
    e = ((a >> 23) & 0xFF).astype(np.int64) - 127 - np.where(sub, 24, 0)
    return ((a & 0x007FFFFF) | 0x3F800000).astype(U32), e


def _newton_recip(ops, m, y, steps=3):
    for _ in range(steps):
        err = ops.sub(_const(ONE), ops.mul(m, y))
        y = ops.add(y, ops.mul(y, err))
    return y


def recip(x, ops=NP):
    """1/x: 1/m by three Newton steps from 24/17 - 8/17 m, then 2^-e put back (one rounding
    when the result is subnormal). +-0 -> +-inf, +-inf -> +-0, NaN -> NaN."""
    x = np.asarray(x, dtype=U32)
    m, e = _split(ops, x)
    y0 = ops.add(_const(RECIP_A), ops.mul(_const(RECIP_B), m))
    y = _newton_recip(ops, m, y0)                       # 1/m in (0.5, 1]
    # 1/x = y 2^-e; y in (0.5, 1] -> scale y 2 by 2^(-e-1) so that the factor is in [1, 2)
    out = _scale(ops, ops.add(y, y), np.clip(-e - 1, -152, 128)) | (x & 0x80000000)
    a = x & 0x7FFFFFFF
    out = np.where(a == 0, (x & 0x80000000) | U32(0x7F800000), out)
    out = np.where(a == 0x7F800000, x & 0x80000000, out)
    return np.where(_is_nan(x), U32(CANONICAL_NAN), out).astype(U32)


def rsqrt(x, ops=NP):
    """1/sqrt(x): x = m 2^e with e even and m in [1, 4), a linear first guess per half of that
    range, three Newton steps ``y + y (0.5 - (m/2) y^2)``, then 2^(-e/2) put back (exact).
    +0 -> +inf, -0 -> -inf, +inf -> +0, x < 0 and NaN -> NaN."""
    x = np.asarray(x, dtype=U32)
    m, e = _split(ops, x)
    odd = (e & 1) == 1
    m = np.where(odd, m + U32(0x00800000), m).astype(U32)     # m 2 (exponent + 1, exact)
    e = e - odd
    lo, hi = RSQRT_LO, RSQRT_HI
    a0, b0 = np.where(odd, _const(hi[0]), _const(lo[0])), np.where(odd, _const(hi[1]), _const(lo[1]))
    y = ops.add(a0, ops.mul(b0, m))
    h = ops.mul(m, _const(HALF))                                # exact
    for _ in range(3):
        t = ops.sub(_const(HALF), ops.mul(h, ops.mul(y, y)))
        y = ops.add(y, ops.mul(y, t))
    out = _scale(ops, ops.add(y, y), -(e // 2) - 1)
    a = x & 0x7FFFFFFF
    out = np.where(a == 0, (x & 0x80000000) | U32(0x7F800000), out)
    out = np.where(x == 0x7F800000, U32(0), out)
    bad = _is_nan(x) | ((_sign(x) == 1) & (a != 0))
    return np.where(bad, U32(CANONICAL_NAN), out).astype(U32)


# ------------------------------------------------------------------ gelu

GELU_LO, GELU_W, GELU_N, GELU_DEG = -6.0, 0.5, 24, 6


def fit_gelu_table() -> np.ndarray:
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2 on each interval [lo + i w, lo + (i + 1) w) as a
    polynomial of degree 6 in t = x - centre: least squares in relative error on 200 Chebyshev
    points (float64), coefficients rounded to FP32. This is how :data:`GELU_TABLE` was made; the
    table itself is the contract (docs/vector.md prints it), written out below so that it does not
    depend on the LAPACK that runs this fit."""
    rows = []
    t = np.cos(np.linspace(0, np.pi, 200)) * GELU_W / 2
    for i in range(GELU_N):
        xs = GELU_LO + (i + 0.5) * GELU_W + t
        y = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in xs])
        w = 1 / y
        v = np.vander(t, GELU_DEG + 1, increasing=True)
        sol = np.linalg.lstsq(v * w[:, None], y * w, rcond=None)[0]
        rows.append(sol.astype(np.float32).view(U32))
    return np.array(rows, dtype=U32)


# Phi's polynomials, interval i = [-6 + i / 2, -5.5 + i / 2): c0 .. c6 (FP32 bits), from fit_gelu_table().
GELU_TABLE = np.array([
    (0x3199528F, 0x32E2B7EE, 0x33A2DFC2, 0x3417294D, 0x344DB299, 0x345F68BA, 0x3422C0CC),
    (0x33A35124, 0x34DDA6B8, 0x35916B94, 0x35F50567, 0x36159C02, 0x360FAC42, 0x35BCF42E),
    (0x358882DC, 0x36A8C3B9, 0x374861F4, 0x37978463, 0x37A3D572, 0x378875AB, 0x371D990D),
    (0x373352EE, 0x384825CA, 0x38D4A571, 0x390E3E3D, 0x3905AA46, 0x38BBC84E, 0x38362694),
    (0x38B96CAE, 0x39B8DCAA, 0x3A2D4E4A, 0x3A493512, 0x3A1FDB8A, 0x39B4E396, 0x3906FB2B),
    (0x3A17437F, 0x3B04F9C6, 0x3B5815EA, 0x3B53EED7, 0x3B082DA2, 0x3A6281B3, 0x39473E58),
    (0x3B434821, 0x3C14FD26, 0x3C4CDC3E, 0x3C22F73E, 0x3B9BBC33, 0x3A90AD56, 0xB8E35EB2),
    (0x3C484927, 0x3D02016E, 0x3D1241AB, 0x3CB00E5A, 0x3BC90866, 0xBA005A0D, 0xBA7D4E44),
    (0x3D241512, 0x3DB0B22A, 0x3D9A9BE2, 0x3CF2F3B0, 0x39CE4879, 0xBB8C9AEF, 0xBAAA5521),
    (0x3DD85EE9, 0x3E3B085E, 0x3DE9CA68, 0x3C8C40A1, 0xBC5FFCF1, 0xBBC150C6, 0x3A0DB758),
    (0x3E681100, 0x3E9A2EB0, 0x3DE74601, 0xBCB3E385, 0xBCBBE31C, 0xB8E713E4, 0x3B43E868),
    (0x3ECD765D, 0x3EC5F95C, 0x3D45F96A, 0xBD777462, 0xBC41DFAB, 0x3C091E60, 0x3AFCD77C),
    (0x3F1944D1, 0x3EC5F95C, 0xBD45F94E, 0xBD77745D, 0x3C41CD47, 0x3C091D84, 0xBAF6B8F8),
    (0x3F45FBC0, 0x3E9A2EB0, 0xBDE74606, 0xBCB3E38F, 0x3CBBE6B5, 0xB8E6908F, 0xBB451B1A),
    (0x3F64F423, 0x3E3B085E, 0xBDE9CA76, 0x3C8C4075, 0x3C60100C, 0xBBC147F2, 0xBA1A7808),
    (0x3F75BEAF, 0x3DB0B22A, 0xBD9A9BE6, 0x3CF2F3A0, 0xB9CDA86B, 0xBB8C97C9, 0x3AA8A8AA),
    (0x3F7CDEDB, 0x3D02016E, 0xBD12419E, 0x3CB00E7C, 0xBBC91918, 0xBA009024, 0x3A817512),
    (0x3F7F3CB8, 0x3C14FD25, 0xBC4CDC17, 0x3C22F77E, 0xBB9BC969, 0x3A9093A3, 0x390383CA),
    (0x3F7FDA2F, 0x3B04F9C5, 0xBB5815DD, 0x3B53EEF0, 0xBB082FF4, 0x3A627C92, 0xB945AB6F),
    (0x3F7FFA35, 0x39B8DCB3, 0xBA2D4ECE, 0x3A4933E7, 0xBA1FC4B1, 0x39B501C2, 0xB90AE171),
    (0x3F7FFF4D, 0x384825FD, 0xB8D4A7FA, 0x390E3AF9, 0xB9057133, 0x38BC1D47, 0xB83FF593),
    (0x3F7FFFEF, 0x36A8C444, 0xB7486835, 0x37977B50, 0xB7A346BE, 0x3788EC4B, 0xB729F4A8),
    (0x3F7FFFFF, 0x34DDA898, 0xB591755A, 0x35F4E5B1, 0xB614B99A, 0x36107C96, 0xB5D0BB1A),
    (0x3F800000, 0x32E2BC55, 0xB3A2F4A7, 0x341703A4, 0xB44BC62D, 0x34615A6F, 0xB4387717),
], dtype=U32)
GELU_CENTRES = f32([GELU_LO + (i + 0.5) * GELU_W for i in range(GELU_N)])
GELU_SIX = 0x40C00000        # 6.0
GELU_NEG_SIX = 0xC0C00000


def gelu(x, ops=NP):
    """x Phi(x): the interval index i = trunc(2 x + 12) (x in [-6, 6)), t = x - centre_i, Phi by
    Horner in t, times x. x >= 6 -> x, x < -6 -> -0 (|gelu| < 6e-9 there), NaN -> NaN."""
    x = np.asarray(x, dtype=U32)
    u = ops.add(ops.mul(x, _const(0x40000000)), _const(0x41400000))     # 2 x + 12
    uf = np.nan_to_num(u.view(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    i = np.clip(np.trunc(uf), 0, GELU_N - 1).astype(np.int64)
    t = ops.sub(x, GELU_CENTRES[i])
    coef = GELU_TABLE[i]
    p = coef[..., GELU_DEG]
    for j in range(GELU_DEG - 1, -1, -1):
        p = ops.add(ops.mul(p, t), coef[..., j])
    y = ops.mul(x, p)
    key = _key(x)
    y = np.where(key >= _key(_const(GELU_SIX)), x, y)
    y = np.where(key < _key(_const(GELU_NEG_SIX)), U32(0x80000000), y)
    return np.where(_is_nan(x), U32(CANONICAL_NAN), y).astype(U32)


# ------------------------------------------------------------------ binary, reductions, composites


def add(a, b, ops=NP):
    return ops.add(a, b)


def sub(a, b, ops=NP):
    return ops.sub(a, b)


def mul(a, b, ops=NP):
    return ops.mul(a, b)


REDUCE_PARTIALS = 16     # rowsum's partial sums (docs/vector.md, "Reductions")


def rowsum(x, ops=NP):
    """Sum of each row in the engine's order: 16 partial sums, partial k adding the elements
    j = k, k + 16, k + 32, ... left to right from +0; then a balanced tree over the partials,
    ((s0 + s1) + (s2 + s3)) + ... (level by level, neighbours paired)."""
    x = np.asarray(x, dtype=U32)
    parts = [np.zeros(x.shape[:-1], dtype=U32) for _ in range(REDUCE_PARTIALS)]
    for j in range(x.shape[-1]):
        k = j % REDUCE_PARTIALS
        parts[k] = ops.add(parts[k], x[..., j])
    while len(parts) > 1:
        parts = [ops.add(parts[i], parts[i + 1]) for i in range(0, len(parts), 2)]
    return parts[0]


def rowmax(x):
    """Max of each row (NaN if any is NaN; -inf for no element)."""
    x = np.asarray(x, dtype=U32)
    acc = np.full(x.shape[:-1], 0xFF800000, dtype=U32)
    for j in range(x.shape[-1]):
        acc = vmax(acc, x[..., j])
    return acc


def softmax(x, ops=NP):
    """Row softmax: m = rowmax, e = exp(x - m), s = rowsum(e), y = e x recip(s)."""
    x = np.asarray(x, dtype=U32)
    m = rowmax(x)
    e = exp(ops.sub(x, m[..., None]), ops)
    return ops.mul(e, recip(rowsum(e, ops), ops)[..., None])


def layernorm(x, gamma, beta, eps, ops=NP):
    """Row layer norm: mean = rowsum(x) (1/n), d = x - mean, var = rowsum(d d) (1/n),
    r = rsqrt(var + eps), y = (d r) gamma + beta; 1/n is the FP32 constant RNE(1/n)."""
    x = bits(x, "x")
    gamma, beta, eps = bits(gamma, "gamma"), bits(beta, "beta"), bits(eps, "eps")
    inv_n = f32(1.0 / x.shape[-1])
    mean = ops.mul(rowsum(x, ops), inv_n)
    d = ops.sub(x, mean[..., None])
    var = ops.mul(rowsum(ops.mul(d, d), ops), inv_n)
    r = rsqrt(ops.add(var, eps), ops)
    return ops.add(ops.mul(ops.mul(d, r[..., None]), gamma), beta)


# ------------------------------------------------------------------ conversions


def to_bf16(x):
    """FP32 -> BF16 bit patterns (``uint16``): round to nearest even, NaN -> 0x7FC0."""
    x = np.asarray(x, dtype=U32).astype(np.uint64)
    r = ((x + 0x7FFF + ((x >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(_is_nan(x.astype(U32)), np.uint16(0x7FC0), r)


def to_int8(x):
    """FP32 -> INT8: rounded to the nearest integer (ties to even), saturated to -128 .. 127; NaN -> 0."""
    f = np.asarray(x, dtype=U32).view(np.float32).astype(np.float64)
    with np.errstate(invalid="ignore"):
        return np.clip(np.rint(np.nan_to_num(f, nan=0.0)), -128, 127).astype(np.int8)


def i32_to_f32(acc):
    """INT32 -> FP32 bit patterns, rounded to nearest even."""
    return np.asarray(acc, dtype=np.int32).astype(np.float32).view(U32)


def requant(acc, scale, relu_out: bool = False, ops=NP):
    """INT32 -> INT8: v = RNE32(float(acc)) x scale (FP32, RNE), rounded to the nearest integer
    (ties to even), saturated to -128 .. 127 (NaN -> 0), optionally ReLU'd (relu(v) before the
    rounding gives the same bits as max(q, 0) after it)."""
    v = ops.mul(i32_to_f32(acc), bits(scale, "scale"))
    return to_int8(relu(v) if relu_out else v)


def int32_add(a, b):
    """INT32 add, wrapping modulo 2^32."""
    return (np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)).astype(np.int64).astype(
        np.uint32).view(np.int32)


# ------------------------------------------------------------------ errors against float64

REFERENCES = {
    "exp": (exp, np.exp),
    "recip": (recip, lambda v: 1.0 / v),
    "rsqrt": (rsqrt, lambda v: 1.0 / np.sqrt(v)),
    # erfc(-x / sqrt 2) / 2 = Phi(x) without the cancellation of 1 + erf in the negative tail
    "gelu": (gelu, lambda v: v * 0.5 * np.vectorize(math.erfc)(-v / math.sqrt(2))),
}


def ulp_errors(name: str, xs: np.ndarray):
    """(ulp error, absolute error) of operation ``name`` on FP32 patterns ``xs`` against float64,
    over the inputs whose exact result is finite and nonzero (the ulp of a result is that of its
    FP32 binade; of a subnormal, 2^-149)."""
    fn, ref = REFERENCES[name]
    xs = np.asarray(xs, dtype=U32)
    with np.errstate(all="ignore"):
        exact = ref(xs.view(np.float32).astype(np.float64))
        got = fn(xs).view(np.float32).astype(np.float64)
    ok = np.isfinite(exact) & (exact != 0) & (np.abs(exact) <= np.finfo(np.float32).max)
    exact, got = exact[ok], got[ok]
    ulp = np.exp2(np.maximum(np.floor(np.log2(np.abs(exact))) - 23, -149))
    with np.errstate(all="ignore"):
        return np.abs(got - exact) / ulp, np.abs(got - exact)


POS, NEG, BOTH = (0,), (0x80000000,), (0, 0x80000000)


def dense_inputs(name: str):
    """The input sets of the dense error measurement: (label, first, end, signs), a range of
    positive FP32 patterns measured with each sign bit of ``signs``; every pattern is used."""
    def p(x):
        return int(f32(x))

    tiny = p(2.0 ** -20)
    if name == "exp":
        return [("|x| < 2^-20", 0, tiny, BOTH), ("2^-20 <= |x| < 104", tiny, p(104.0), BOTH)]
    if name in ("recip", "rsqrt"):
        return [("subnormal x", 1, 0x00800000, BOTH), ("|x| in [1, 4)", p(1.0), p(4.0), BOTH),
                ("|x| in [2^125, 2^128)", p(2.0 ** 125), 0x7F800000, BOTH)]
    if name == "gelu":
        return [("|x| < 2^-20", 0, tiny, BOTH), ("x in [2^-20, 8)", tiny, p(8.0), POS),
                ("x in (-1, -2^-20]", tiny, p(1.0), NEG), ("x in (-2, -1]", p(1.0), p(2.0), NEG),
                ("x in (-3, -2]", p(2.0), p(3.0), NEG), ("x in (-8, -3]", p(3.0), p(8.0), NEG)]
    raise ValueError(name)


def measure(name: str, chunk: int = 1 << 22) -> list[dict]:
    """Dense measurement of ``name``: per input range, the count, max ulp error, max absolute error
    and the inputs out of bounds (> 4 ulp; for gelu > 8 ulp and > 1e-6 absolute)."""
    rows = []
    for label, first, end, signs in dense_inputs(name):
        worst_u, worst_a, n, out = 0.0, 0.0, 0, 0
        for start in range(first, end, chunk):
            pos = np.arange(start, min(end, start + chunk), dtype=np.uint64).astype(U32)
            for sign in signs:
                eu, ea = ulp_errors(name, pos | U32(sign))
                if not eu.size:
                    continue
                n += eu.size
                out += int(np.count_nonzero((eu > 8) & (ea > 1e-6)) if name == "gelu"
                           else np.count_nonzero(eu > 4))
                worst_u, worst_a = max(worst_u, float(eu.max())), max(worst_a, float(ea.max()))
        rows.append({"op": name, "inputs": label, "count": n, "max_ulp": round(worst_u, 3),
                     "max_abs": worst_a, "out_of_bound": out})
    return rows


if __name__ == "__main__":
    import json
    import sys

    for op in sys.argv[1:] or list(REFERENCES):
        for row in measure(op):
            print(json.dumps(row), flush=True)
