"""The golden numerics model: hand-checked values, and numpy versions against SoftFloat."""

import random

import numpy as np

from tessera.tb.models import numerics as nm
from tessera.tb.numeric import vectors

# Hand-checked cases (bit patterns), independent of both implementations.
F32_ADD_CASES = [
    (0x3F800000, 0x3F800000, 0x40000000),   # 1 + 1 = 2
    (0x3F800000, 0xBF800000, 0x00000000),   # 1 + -1 = +0
    (0x80000000, 0x80000000, 0x80000000),   # -0 + -0 = -0
    (0x00000000, 0x80000000, 0x00000000),   # +0 + -0 = +0
    (0x00000001, 0x80000001, 0x00000000),   # subnormal cancellation = +0
    (0x00000001, 0x00000001, 0x00000002),   # subnormal sum
    (0x007FFFFF, 0x00000001, 0x00800000),   # largest subnormal + ulp = smallest normal
    (0x7F7FFFFF, 0x7F7FFFFF, 0x7F800000),   # overflow to +inf
    (0x7F7FFFFF, 0x73000000, 0x7F800000),   # max + exactly half an ulp: tie, max is odd -> +inf
    (0x7F800000, 0xFF800000, 0x7FC00000),   # inf - inf = canonical NaN
    (0xFF800000, 0x3F800000, 0xFF800000),   # -inf + 1 = -inf
    (0x7FA00000, 0x3F800000, 0x7FC00000),   # signalling NaN -> canonical NaN
    (0x3F800000, 0x33800000, 0x3F800000),   # 1 + 2^-24 (exact tie) -> 1 (even)
    (0x3F800001, 0x33800000, 0x3F800002),   # (1 + ulp) + half ulp -> tie to even, up
    (0x4B800000, 0xBF800000, 0x4B7FFFFF),   # 2^24 - 1 exact
]
BF16_MUL_CASES = [
    (0x3F80, 0x3F80, 0x3F800000),           # 1 * 1
    (0x3FC0, 0x3FC0, 0x40100000),           # 1.5 * 1.5 = 2.25
    (0x0000, 0x7F80, 0x7FC00000),           # 0 * inf = canonical NaN
    (0x8000, 0x3F80, 0x80000000),           # -0 * 1 = -0
    (0x7F7F, 0x7F7F, 0x7F800000),           # overflow to +inf
    (0x0001, 0x3F80, 0x00010000),           # bf16 subnormal widens exactly
    (0x0001, 0x0001, 0x00000000),           # underflow to +0
    (0x1F80, 0x1F80, 0x00200000),           # 2^-64 * 2^-64 = 2^-128, an exact subnormal
    (0x7FC1, 0x3F80, 0x7FC00000),           # NaN payload dropped
]


def test_hand_checked_values():
    for a, b, want in F32_ADD_CASES:
        assert nm.f32_add(a, b) == want, (hex(a), hex(b))
    for a, b, want in BF16_MUL_CASES:
        assert nm.f32_mul_bf16(a, b) == want, (hex(a), hex(b))
    assert nm.int8_mac(1, 1, (1 << 31) - 1) == -(1 << 31)
    assert nm.int8_mac(-128, -128, 0) == 16384
    assert nm.int8_mac(-128, 127, -(1 << 31)) == (1 << 31) - 16256


def _pairs(gen, specials, n, seed):
    rng = random.Random(seed)
    return vectors.special_pairs(specials) + [gen(rng) for _ in range(n)]


def test_numpy_matches_softfloat():
    pairs = _pairs(vectors.fadd_pair, vectors.F32_SPECIALS, 100_000, 1)
    a, b = (np.array(x, dtype=np.uint32) for x in zip(*pairs, strict=True))
    got = nm.f32_add_np(a, b)
    want = np.array([nm.f32_add(x, y) for x, y in pairs], dtype=np.uint32)
    assert np.array_equal(got, want), np.flatnonzero(got != want)[:10]

    pairs = _pairs(vectors.fmul_pair, vectors.BF16_SPECIALS, 100_000, 2)
    a, b = (np.array(x, dtype=np.uint16) for x in zip(*pairs, strict=True))
    got = nm.f32_mul_bf16_np(a, b)
    want = np.array([nm.f32_mul_bf16(x, y) for x, y in pairs], dtype=np.uint32)
    assert np.array_equal(got, want), np.flatnonzero(got != want)[:10]

    rng = random.Random(3)
    trip = [vectors.mac_triple(rng) for _ in range(20_000)]
    a, b, c = zip(*trip, strict=True)
    got = nm.int8_mac_np(np.array(a), np.array(b), np.array(c))
    assert got.dtype == np.int32
    assert got.tolist() == [nm.int8_mac(*t) for t in trip]


def test_numpy_bf16_widening_and_canonical_nan():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 1 << 16, 5000, dtype=np.uint16)
    assert nm.bf16_to_f32_np(a).tolist() == [nm.bf16_to_f32(int(x)) for x in a]
    # x86 produces the negative default NaN for inf - inf; the model must canonicalise it
    inf, ninf = np.array([0x7F800000], np.uint32), np.array([0xFF800000], np.uint32)
    assert nm.f32_add_np(inf, ninf)[0] == 0x7FC00000


def test_gemm_models_are_k_ordered_scalar_reductions():
    rng = random.Random(5)
    m, k, n = 3, 7, 4
    a = np.array([[vectors.fmul_pair(rng)[0] for _ in range(k)] for _ in range(m)], dtype=np.uint16)
    b = np.array([[vectors.fmul_pair(rng)[1] for _ in range(n)] for _ in range(k)], dtype=np.uint16)
    c = np.array([[vectors.fadd_pair(rng)[0] for _ in range(n)] for _ in range(m)], dtype=np.uint32)
    got = nm.gemm_bf16_np(a, b, c)
    for i in range(m):
        for j in range(n):
            acc = int(c[i, j])
            for kk in range(k):
                acc = nm.f32_add(acc, nm.f32_mul_bf16(int(a[i, kk]), int(b[kk, j])))
            assert int(got[i, j]) == acc
    ai = np.array([[rng.randrange(-128, 128) for _ in range(k)] for _ in range(m)], dtype=np.int8)
    bi = np.array([[rng.randrange(-128, 128) for _ in range(n)] for _ in range(k)], dtype=np.int8)
    ci = np.array([[rng.randrange(-(1 << 31), 1 << 31) for _ in range(n)] for _ in range(m)], dtype=np.int32)
    got = nm.gemm_int8_np(ai, bi, ci)
    for i in range(m):
        for j in range(n):
            acc = int(ci[i, j])
            for kk in range(k):
                acc = nm.int8_mac(int(ai[i, kk]), int(bi[kk, j]), acc)
            assert int(got[i, j]) == acc
