"""Interfaces of the tensor core, declared once: payload layouts, dtype codes, the Python API.

Everything another block needs to talk to :class:`tessera.rtl.tensor.tensor_core.TensorCore` is here:

* :func:`op_layout` -- the operation descriptor (M, N, K, dtype, accumulate).
* :func:`a_layout` / :func:`b_layout` -- one operand step: ``rows`` lanes of A, ``cols`` lanes of B.
* :func:`c_layout` -- one row of C values (``cols`` lanes of 32 bits) for accumulate mode.
* :func:`d_layout` -- one row of results with its position (``row``, ``col``) and ``last``.
* :data:`STEP_CONTROL` -- the control bits that travel through the array with each step.
* :func:`check_op` -- the Python API's validation: ``ValueError`` for a shape the core rejects.

The order of beats on each stream is specified in ``docs/tensor.md``.
"""

from __future__ import annotations

from amaranth.lib import data

from tessera.rtl.config import TensorConfig

__all__ = [
    "DTYPE_BF16", "DTYPE_INT8", "DTYPES", "STEP_CONTROL", "BUBBLE_A", "BUBBLE_B",
    "op_layout", "a_layout", "b_layout", "c_layout", "d_layout", "check_op", "field_bits",
]

DTYPE_BF16 = 0
DTYPE_INT8 = 1
DTYPES = {"bf16": DTYPE_BF16, "int8": DTYPE_INT8}

# Operands of a bubble step: -0.0 x +0.0 = -0.0 and x + -0.0 == x for every x (RNE), and the
# low bytes are 0 for INT8, so a bubble leaves every accumulator unchanged in both dtypes.
BUBBLE_A = 0x8000
BUBBLE_B = 0x0000

# Control bits of one step, travelling with the A operands along each array row.
#   first: the k == 0 step of a slot; the PE swaps its accumulator with its chain buffer
#   zero:  start from +0 instead of the buffered C value (overwrite mode)
#   int8:  the step's dtype (selects the accumulation loop's output)
STEP_CONTROL = data.StructLayout({"first": 1, "zero": 1, "int8": 1})


def field_bits(limit: int) -> int:
    """Width of a descriptor field holding 0..limit (and so also values above it, to reject)."""
    return max(1, int(limit).bit_length())


def op_layout(cfg: TensorConfig) -> data.StructLayout:
    return data.StructLayout({
        "m": field_bits(cfg.max_m),
        "n": field_bits(cfg.max_n),
        "k": field_bits(cfg.max_k),
        "dtype": 2,
        "accumulate": 1,
    })


def a_layout(cfg: TensorConfig) -> data.ArrayLayout:
    """Lane i (bits 16i..16i+15): A[row0 + i, k] as bf16 bits, or int8 in the low byte."""
    return data.ArrayLayout(16, cfg.rows)


def b_layout(cfg: TensorConfig) -> data.ArrayLayout:
    """Lane j: B[k, col0 + j] as bf16 bits, or int8 in the low byte."""
    return data.ArrayLayout(16, cfg.cols)


def c_layout(cfg: TensorConfig) -> data.ArrayLayout:
    """Lane j: C[row, col0 + j] as FP32 bits or int32."""
    return data.ArrayLayout(32, cfg.cols)


def d_layout(cfg: TensorConfig) -> data.StructLayout:
    """Lane j of ``data``: D[row, col + j]; lanes with col + j >= N are unspecified."""
    return data.StructLayout({
        "data": data.ArrayLayout(32, cfg.cols),
        "row": field_bits(cfg.max_m),
        "col": field_bits(cfg.max_n),
        "last": 1,
    })


def check_op(cfg: TensorConfig, m: int, n: int, k: int, dtype="bf16") -> int:
    """Validate one operation for the core ``cfg``; return the dtype code.

    Raises ``ValueError`` naming the offending argument for a shape the core rejects (the RTL
    rejects the same descriptors with its ``error`` flag).
    """
    for name, value, limit in (("m", m, cfg.max_m), ("n", n, cfg.max_n), ("k", k, cfg.max_k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, not {value!r}")
        if not 1 <= value <= limit:
            raise ValueError(f"{name} = {value} is out of range; allowed: 1..{limit}")
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype = {dtype!r} is not allowed; allowed: {', '.join(DTYPES)}")
        return DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise ValueError(f"dtype = {dtype!r} is not allowed; allowed: {', '.join(DTYPES)}")
    return int(dtype)
