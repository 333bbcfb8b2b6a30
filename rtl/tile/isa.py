"""The tile ISA and the tile's internal interfaces, declared once (docs/isa.md).

* :class:`Opcode`, :class:`ErrorCode`, :class:`State`, :class:`Mode`, :class:`Space`,
  :class:`Dtype` -- the enumerations of the ISA and of the status word.
* :data:`XFER`, :data:`MATMUL`, :data:`BARRIER`, :data:`END`, :data:`SYNC` -- the instruction formats
  (128-bit :class:`amaranth.lib.data.FlexibleLayout`; bits not named are reserved, must be 0).
  LOAD and STORE share :data:`XFER`. :data:`INSTRUCTION` is their union, the payload of the
  sequencer's command stream.
* :func:`xfer_desc_layout` -- a LOAD / STORE descriptor as the sequencer hands it to the tensor DMA.
* :func:`matmul_desc_layout` -- a MATMUL descriptor as handed to the tensor-core side
  (operand fetch); its ``m``/``n``/``k``/``dtype``/``accumulate`` map one to one onto the tensor
  core's ``op`` descriptor (:func:`tessera.rtl.tensor.interface.op_layout`).
* :func:`status_layout` -- the sequencer's status word (state, error code, pc).
* :func:`scratchpad_write_layout`, :func:`scratchpad_read_signature` -- the scratchpad's ports.

The runtime (:mod:`tessera.runtime.isa`, the assembler, the GEMM planner) encodes, decodes and checks
with these; the golden model
(``tb/models/tile_isa.py``) has its own copy of the field table, checked against this one by
``tests/test_asm.py``.
"""

from __future__ import annotations

from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "WORD_BITS", "PITCH_BITS", "SYNC_COUNT_BITS", "Opcode", "ErrorCode", "State", "Mode", "Space", "Dtype",
    "ACC_BYTES", "ELEMENT_BYTES", "XFER", "MATMUL", "BARRIER", "END", "SYNC", "HEADER", "INSTRUCTION",
    "FORMATS",
    "VOp", "YMode", "Act", "Reduce", "VFmt", "VECTOR", "vector_desc_layout",
    "xfer_desc_layout", "matmul_desc_layout", "status_layout", "field_table",
    "scratchpad_write_layout", "scratchpad_read_signature",
]

WORD_BITS = 128
ACC_BYTES = 4           # one accumulator element: FP32 or INT32
LOCAL_ADDR_BITS = 24    # scratchpad / accumulator byte addresses (TileConfig allows up to 16 MiB)
PITCH_BITS = 19         # a row pitch in bytes: up to 65535 * 4 rounded up to a word (2^18)


class Opcode(enum.Enum, shape=4):
    LOAD = 1
    STORE = 2
    MATMUL = 3
    BARRIER = 4
    END = 5
    SYNC = 6    # cross-tile barrier (docs/isa.md, "SYNC")
    VECTOR = 7  # vector-engine operation on accumulator regions (docs/isa.md, "VECTOR")


class ErrorCode(enum.Enum, shape=4):
    """In the order the checks are made: the first failing check is reported (docs/isa.md)."""
    NONE = 0
    ILLEGAL_OPCODE = 1
    BAD_FIELD = 2
    BAD_GROUP = 3
    BAD_SIZE = 4
    MISALIGNED = 5
    ADDR_RANGE = 6
    SP_OVERFLOW = 7
    ACC_OVERFLOW = 8
    FAULT = 9


class State(enum.Enum, shape=2):
    IDLE = 0    # after reset or clear, before the first instruction
    RUN = 1     # executing, or waiting for instructions
    DONE = 2    # END retired
    ERROR = 3   # stopped by a malformed instruction or a fault; final until clear


class Mode(enum.Enum, shape=2):
    LOCAL = 0   # this tile reads memory into its own local memory
    SEND = 1    # this tile requests the data for every tile of the group (multicast)
    RECV = 2    # this tile expects the data of a SEND issued by another tile of the group


class Space(enum.Enum, shape=1):
    SP = 0      # scratchpad
    ACC = 1     # accumulator memory


class Dtype(enum.Enum, shape=2):
    BF16 = 0
    INT8 = 1


class VOp(enum.Enum, shape=4):
    """VECTOR ``op``: the binary stage, result = op(x, y) (docs/vector.md)."""
    PASS = 0    # x (no second operand: ``ymode`` and ``y`` must be 0)
    ADD = 1
    SUB = 2     # x - y
    MUL = 3
    MAX = 4
    MIN = 5
    MASK = 6    # x where y > 0, else +0 (the ReLU backward pass)
    IADD = 7    # INT32 x + y, wrapping (no act, red, fmt or itof)


class YMode(enum.Enum, shape=2):
    """VECTOR ``ymode``: where the second operand comes from."""
    REGION = 0  # a rows x cols region of the accumulator memory, laid out like x
    ROW = 1     # cols values at ``y`` (contiguous), broadcast over the rows (a bias)
    COL = 2     # rows values at ``y`` (contiguous), one per row, broadcast over the columns
    IMM = 3     # ``y`` is an FP32 (or INT32) immediate


class Act(enum.Enum, shape=3):
    """VECTOR ``act``: the unary stage applied to the binary stage's result."""
    NONE = 0
    RELU = 1
    GELU = 2
    EXP = 3
    RECIP = 4
    RSQRT = 5


class Reduce(enum.Enum, shape=2):
    """VECTOR ``red``: a row reduction of the unary stage's result (one FP32 per row at ``d``)."""
    NONE = 0
    SUM = 1
    MAX = 2


class VFmt(enum.Enum, shape=3):
    """VECTOR ``fmt``: the output's format, memory and layout."""
    FP32 = 0    # 32-bit words to the accumulator memory, rows x cols at pitch(4 cols)
    BF16 = 1    # BF16 to the scratchpad, rows x cols at pitch(2 cols) (a B operand)
    BF16_T = 2  # BF16 to the scratchpad transposed, cols x rows at pitch(2 rows) (an A operand)
    INT8 = 3    # INT8 to the scratchpad, rows x cols at pitch(cols)
    INT8_T = 4  # INT8 to the scratchpad transposed, cols x rows at pitch(rows)


ELEMENT_BYTES = {Dtype.BF16: 2, Dtype.INT8: 1}     # bytes of one A / B element of each dtype


def _flex(fields: dict) -> data.FlexibleLayout:
    return data.FlexibleLayout(WORD_BITS, {n: data.Field(shape, lo) for n, (shape, lo) in fields.items()})


HEADER = _flex({"opcode": (Opcode, 0)})

XFER = _flex({
    "opcode": (Opcode, 0),
    "mode": (Mode, 4),
    "space": (Space, 6),
    "local_addr": (24, 8),
    "mem_addr": (32, 32),
    "stride": (24, 64),
    "rows": (12, 88),
    "row_bytes": (16, 100),
    "x0": (3, 116), "y0": (3, 119), "x1": (3, 122), "y1": (3, 125),
})

MATMUL = _flex({
    "opcode": (Opcode, 0),
    "dtype": (Dtype, 4),
    "accumulate": (1, 6),
    "a_addr": (24, 8),
    "b_addr": (24, 32),
    "acc_addr": (24, 56),
    "m": (16, 80),
    "n": (16, 96),
    "k": (16, 112),
})

BARRIER = _flex({"opcode": (Opcode, 0), "loads": (1, 4), "stores": (1, 5), "matmuls": (1, 6),
                 "vectors": (1, 7)})

END = _flex({"opcode": (Opcode, 0)})

# The group rectangle sits at the same bits as XFER's multicast group.
SYNC = _flex({"opcode": (Opcode, 0), "x0": (3, 116), "y0": (3, 119), "x1": (3, 122), "y1": (3, 125)})

SYNC_COUNT_BITS = 8     # a tile's SYNC counter (compared modulo 2^8, docs/isa.md)

VECTOR = _flex({
    "opcode": (Opcode, 0),
    "op": (VOp, 4),
    "ymode": (YMode, 8),
    "act": (Act, 10),
    "red": (Reduce, 13),
    "fmt": (VFmt, 15),
    "itof": (1, 18),
    "x_addr": (24, 20),
    "d_addr": (24, 44),
    "rows": (12, 68),
    "cols": (12, 80),
    "y": (32, 96),      # y's byte address (bits 119:96; 127:120 must be 0), or the immediate
})

FORMATS = {Opcode.LOAD: XFER, Opcode.STORE: XFER, Opcode.MATMUL: MATMUL, Opcode.BARRIER: BARRIER,
           Opcode.END: END, Opcode.SYNC: SYNC, Opcode.VECTOR: VECTOR}

INSTRUCTION = data.UnionLayout({
    "raw": WORD_BITS, "header": HEADER, "xfer": XFER, "matmul": MATMUL, "barrier": BARRIER, "end": END,
    "sync": SYNC, "vector": VECTOR,
})


def field_table(layout) -> list[tuple[str, int, int]]:
    """(name, low bit, width) of every field of ``layout``, low bit first."""
    from amaranth.hdl import Shape

    rows = [(name, f.offset, Shape.cast(f.shape).width) for name, f in layout]
    return sorted(rows, key=lambda r: r[1])


def reserved_mask(layout) -> int:
    """Bits of a format that no field names: they must be zero in a valid instruction."""
    used = 0
    for _, lo, w in field_table(layout):
        used |= ((1 << w) - 1) << lo
    return ((1 << WORD_BITS) - 1) & ~used


def xfer_desc_layout(cfg) -> data.StructLayout:
    """A LOAD or STORE for the tensor DMA (``cfg``: a FabricConfig).

    ``pitch`` is the byte distance between rows in local memory (``row_bytes`` rounded up to a
    word); ``dest`` is the multicast group as a node bitmask (node = y * width + x), 0 for LOCAL.
    A STORE always has ``mode`` LOCAL and ``space`` ACC.
    """
    return data.StructLayout({
        "mode": Mode,
        "space": Space,
        "local_addr": LOCAL_ADDR_BITS,
        "pitch": PITCH_BITS,
        "mem_addr": 32,
        "stride": 24,
        "rows": 12,
        "row_bytes": 16,
        "dest": cfg.noc.nodes,
    })


def matmul_desc_layout(cfg) -> data.StructLayout:
    """A MATMUL for the tensor-core side (``cfg``: a FabricConfig).

    A is stored transposed (K rows of M elements, row pitch ``a_pitch``), B as K rows of N
    elements (``b_pitch``), the accumulator tile as M rows of N 32-bit elements (``acc_pitch``);
    pitches in bytes, addresses are byte addresses.
    """
    return data.StructLayout({
        "dtype": Dtype,
        "accumulate": 1,
        "m": 16,
        "n": 16,
        "k": 16,
        "a_addr": LOCAL_ADDR_BITS,
        "b_addr": LOCAL_ADDR_BITS,
        "acc_addr": LOCAL_ADDR_BITS,
        "a_pitch": PITCH_BITS,
        "b_pitch": PITCH_BITS,
        "acc_pitch": PITCH_BITS,
    })


def vector_desc_layout(cfg) -> data.StructLayout:
    """A VECTOR for the vector engine (``cfg``: a FabricConfig): the instruction's fields, checked,
    with ``x_pitch`` = pitch(4 cols) (x, a REGION y and an FP32 output) and ``d_pitch``, the output's
    row pitch for ``fmt`` (bytes; for a reduction, unused)."""
    return data.StructLayout({
        "op": VOp, "ymode": YMode, "act": Act, "red": Reduce, "fmt": VFmt, "itof": 1,
        "x_addr": LOCAL_ADDR_BITS, "d_addr": LOCAL_ADDR_BITS, "y": 32,
        "rows": 12, "cols": 12,
        "x_pitch": PITCH_BITS, "d_pitch": PITCH_BITS,
    })


def status_layout() -> data.StructLayout:
    """``pc``: index (from 0, counted since reset or clear) of the instruction being executed;
    in ERROR the faulting instruction, in DONE the END."""
    return data.StructLayout({"state": State, "error": ErrorCode, "pc": 16})


def scratchpad_write_layout(tile) -> data.StructLayout:
    """One byte-masked word write (``tile``: a TileConfig); ``addr`` is a word address."""
    return data.StructLayout({
        "addr": (tile.scratchpad_words - 1).bit_length(),
        "data": tile.word_bytes * 8,
        "mask": tile.word_bytes,
    })


def scratchpad_read_signature(tile) -> wiring.Signature:
    """A scratchpad read port as its user sees it: ``req`` (word address) out, ``resp`` (word) in."""
    return wiring.Signature({
        "req": Out(stream.Signature((tile.scratchpad_words - 1).bit_length())),
        "resp": In(stream.Signature(tile.word_bytes * 8)),
    })
