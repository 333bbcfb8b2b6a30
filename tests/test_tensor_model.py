# amaranth: UnusedElaboratable=no
# (the parameter checks build components that are never elaborated)
"""Golden GEMM model and the tensor core's Python API (no simulation)."""

import dataclasses

import numpy as np
import pytest

from tessera.rtl.config import NumericConfig, TensorConfig, preset
from tessera.rtl.tensor import ProcessingElement, SystolicArray, TensorCore
from tessera.rtl.tensor.interface import check_op
from tessera.tb.models.gemm import gemm_bf16, gemm_bf16_softfloat, gemm_int8, scalesim_os_cycles
from tessera.tb.tensor.feed import F32_SPECIALS, OpStreams, groups, random_bf16, random_f32


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bf16_model_matches_softfloat(seed):
    rng = np.random.default_rng(seed)
    a = random_bf16(rng, (5, 9), 0.15)
    b = random_bf16(rng, (9, 4), 0.15)
    c = random_f32(rng, (5, 4), 0.15)
    assert (gemm_bf16(a, b, c) == gemm_bf16_softfloat(a, b, c)).all()
    assert (gemm_bf16(a, b) == gemm_bf16_softfloat(a, b)).all()
    # any bit patterns at all, subnormal-heavy sums included
    a = rng.integers(0, 1 << 16, (4, 7)).astype(np.uint16)
    b = rng.integers(0, 1 << 16, (7, 3)).astype(np.uint16)
    a[0] &= 0x80FF  # subnormal / zero rows
    assert (gemm_bf16(a, b) == gemm_bf16_softfloat(a, b)).all()


def test_bf16_model_special_cases():
    one, inf, ninf = 0x3F80, 0x7F80, 0xFF80
    a = np.array([[inf, ninf]], dtype=np.uint16)
    b = np.array([[one], [one]], dtype=np.uint16)
    assert gemm_bf16(a, b)[0, 0] == 0x7FC00000  # inf + -inf: canonical NaN
    neg0 = np.array([[0x8000]], dtype=np.uint16)
    pos1 = np.array([[one]], dtype=np.uint16)
    assert gemm_bf16(neg0, pos1, np.array([[0x80000000]], dtype=np.uint32))[0, 0] == 0x80000000
    assert gemm_bf16(neg0, pos1)[0, 0] == 0  # +0 + -0 = +0
    big = np.array([[0x7F7F]], dtype=np.uint16)
    assert gemm_bf16(big, big)[0, 0] == 0x7F800000  # overflow to inf
    assert 0x7F800001 in F32_SPECIALS


def test_int8_model_wraps():
    a = np.full((1, 3), -128, dtype=np.int8)
    b = np.full((3, 1), -128, dtype=np.int8)
    c = np.array([[2**31 - 1]], dtype=np.int32)
    assert gemm_int8(a, b, c)[0, 0] == np.int32((2**31 - 1 + 3 * 16384) - 2**32)


def test_stream_order_example():
    # The worked example of docs/tensor.md: R = C = 2, T = 3, M = 3, N = 4, K = 2.
    assert groups(3, 4, 2, 2, 3) == [[(0, 0), (0, 2), (2, 0)], [(2, 2)]]
    a = np.arange(6, dtype=np.uint16).reshape(3, 2)
    b = np.arange(8, dtype=np.uint16).reshape(2, 4)
    s = OpStreams(a, b, None, "bf16", 2, 2, 3)
    assert list(s.row_order()) == [(0, 0), (0, 2), (2, 0), (1, 0), (1, 2), (2, 2)]
    steps = list(s.ab())
    assert len(steps) == s.steps == 8
    assert steps[0] == (int(a[0, 0]) | int(a[1, 0]) << 16, int(b[0, 0]) | int(b[0, 1]) << 16)
    assert steps[6] == (int(a[2, 0]), int(b[0, 2]) | int(b[0, 3]) << 16)


def test_scalesim_formula():
    assert scalesim_os_cycles(256, 256, 256, 8, 8) == 32 * 32 * (256 + 14) - 1


def test_check_op_rejects_bad_shapes():
    cfg = preset("tiny").tensor
    assert check_op(cfg, 1, 1, 1, "bf16") == 0
    assert check_op(cfg, cfg.max_m, cfg.max_n, cfg.max_k, "int8") == 1
    for args, word in (((0, 1, 1), "m"), ((1, cfg.max_n + 1, 1), "n"), ((1, 1, 0), "k"),
                       ((1, 1, cfg.max_k + 1), "k"), ((1.0, 1, 1), "m")):
        with pytest.raises(ValueError, match=f"^{word} "):
            check_op(cfg, *args)
    with pytest.raises(ValueError, match="dtype"):
        check_op(cfg, 1, 1, 1, "fp8")
    with pytest.raises(ValueError, match="dtype"):
        TensorCore(cfg).check_op(1, 1, 1, 2)


def test_bad_parameters_raise_before_elaboration():
    with pytest.raises(ValueError, match="rows"):
        TensorConfig(rows=0)
    with pytest.raises(ValueError, match="max_m"):
        TensorConfig(max_m=0)
    with pytest.raises(ValueError, match="interleave"):
        ProcessingElement(NumericConfig(fadd_latency=3), interleave=2)
    with pytest.raises(ValueError, match="TensorConfig"):
        SystolicArray("8x8")
    cfg = dataclasses.replace(preset("default").tensor, numeric=NumericConfig(fadd_latency=4))
    assert cfg.interleave == 4
