"""The tile ISA for software: decode, validity checks and hazards of instruction words.

Everything here is read from the one specification, :mod:`tessera.rtl.tile.isa` (opcodes, field
layouts, modes, spaces, dtypes, VECTOR's enumerations, error codes), so the assembler, the GEMM
planner and the host use the encodings the RTL decodes. The rules of :func:`check` are those of
docs/isa.md ("Errors"), made in the sequencer's order; the golden model
(``tb/models/tile_isa.py``) states them again, independently, and ``tests/test_asm.py`` checks
that the two agree word for word.

A configuration is a ``FabricConfig``, None (the default preset's limits) or an :class:`IsaParams`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera.rtl.tile.isa import (
    ACC_BYTES,
    ELEMENT_BYTES,
    FORMATS,
    Act,
    Dtype,
    ErrorCode,
    Mode,
    Opcode,
    Reduce,
    Space,
    VFmt,
    VOp,
    YMode,
    field_table,
    reserved_mask,
)

__all__ = ["MODES", "SPACES", "DTYPES", "VOPS", "YMODES", "ACTS", "REDS", "VFMTS", "FIELDS", "RESERVED",
           "IsaParams", "decode", "check", "pitch", "matmul_pitches", "vector_pitches", "regions", "hazards"]

MODES = {m.name.lower(): m.value for m in Mode}          # assembly names -> field values
SPACES = {s.name.lower(): s.value for s in Space}
DTYPES = {d.name.lower(): d.value for d in Dtype}
# VECTOR: op, ymode, act, red, fmt (``bf16t``, ``int8t`` for the transposed formats)
VOPS = {v.name.lower(): v.value for v in VOp}
YMODES = {v.name.lower(): v.value for v in YMode}
ACTS = {v.name.lower(): v.value for v in Act}
REDS = {v.name.lower(): v.value for v in Reduce}
VFMTS = {v.name.lower().replace("_", ""): v.value for v in VFmt}
FIELDS = {op.value: field_table(layout) for op, layout in FORMATS.items()}      # opcode -> (name, lo, width)
RESERVED = {op.value: reserved_mask(layout) for op, layout in FORMATS.items()}  # opcode -> must-be-zero bits
_ELEMENT_BYTES = {d.value: n for d, n in ELEMENT_BYTES.items()}
_XFER = (Opcode.LOAD.value, Opcode.STORE.value)


@dataclass(frozen=True)
class IsaParams:
    """The configuration values the checks depend on (defaults: the ``default`` preset's)."""

    word_bytes: int = 16
    scratchpad_bytes: int = 64 * 1024
    accumulator_bytes: int = 16 * 1024
    addr_bits: int = 32
    mesh_width: int = 4
    mesh_height: int = 4
    max_m: int = 4096
    max_n: int = 4096
    max_k: int = 4096

    @classmethod
    def of(cls, cfg) -> IsaParams:
        if isinstance(cfg, IsaParams):
            return cfg
        if cfg is None:
            return cls()
        return cls(word_bytes=cfg.tile.word_bytes, scratchpad_bytes=cfg.tile.scratchpad_bytes,
                   accumulator_bytes=cfg.tile.accumulator_bytes, addr_bits=cfg.cache.addr_bits,
                   mesh_width=cfg.noc.width, mesh_height=cfg.noc.height,
                   max_m=cfg.tensor.max_m, max_n=cfg.tensor.max_n, max_k=cfg.tensor.max_k)


def decode(word: int) -> dict:
    """Field values of ``word`` by its opcode's format (only ``opcode`` for an unknown opcode)."""
    op = word & 0xF
    return {name: (word >> lo) & ((1 << w) - 1) for name, lo, w in FIELDS.get(op, [("opcode", 0, 4)])}


def pitch(row_bytes: int, word_bytes: int) -> int:
    """Bytes between consecutive rows in scratchpad or accumulator memory: rounded up to a word."""
    return -(-row_bytes // word_bytes) * word_bytes


def matmul_pitches(f: dict, wb: int) -> tuple[int, int, int]:
    """Row pitches of A^T (K rows of M elements), B (K rows of N) and D (M rows of N words)."""
    esz = _ELEMENT_BYTES[f["dtype"]]
    return pitch(f["m"] * esz, wb), pitch(f["n"] * esz, wb), pitch(f["n"] * ACC_BYTES, wb)


def _vector_y_is_address(f: dict) -> bool:
    return f["op"] != VOp.PASS.value and f["ymode"] != YMode.IMM.value


def vector_pitches(f: dict, wb: int) -> tuple[int, int]:
    """(x_pitch, d_pitch) of a VECTOR: x's row pitch (also a REGION y's and an FP32 output's) and the
    output's row pitch for ``fmt`` (a transposed output is ``cols`` rows of ``rows`` elements)."""
    rows, cols = f["rows"], f["cols"]
    out = {VFmt.FP32: ACC_BYTES * cols, VFmt.BF16: 2 * cols, VFmt.BF16_T: 2 * rows,
           VFmt.INT8: cols, VFmt.INT8_T: rows}[VFmt(f["fmt"])]
    return pitch(ACC_BYTES * cols, wb), pitch(out, wb)


def _vector_regions(f: dict, wb: int):
    """(x, y or None, d) of a VECTOR as (space, start, end)."""
    rows, cols = f["rows"], f["cols"]
    xp, dp = vector_pitches(f, wb)
    x = ("acc", f["x_addr"], f["x_addr"] + rows * xp)
    y = None
    if _vector_y_is_address(f):
        size = {YMode.REGION: rows * xp, YMode.ROW: ACC_BYTES * cols, YMode.COL: ACC_BYTES * rows}
        y = ("acc", f["y"], f["y"] + size[YMode(f["ymode"])])
    if f["red"] != Reduce.NONE.value:
        d = ("acc", f["d_addr"], f["d_addr"] + ACC_BYTES * rows)
    else:
        fmt = VFmt(f["fmt"])
        n = cols if fmt in (VFmt.BF16_T, VFmt.INT8_T) else rows
        d = ("acc" if fmt == VFmt.FP32 else "sp", f["d_addr"], f["d_addr"] + n * dp)
    return x, y, d


def regions(f: dict, wb: int) -> tuple[list, list]:
    """(reads, writes) of one decoded (well-formed) instruction: lists of (space, start, end) byte
    ranges."""
    op = f["opcode"]
    if op in _XFER:
        space = "acc" if f["space"] == Space.ACC.value else "sp"
        region = (space, f["local_addr"], f["local_addr"] + f["rows"] * pitch(f["row_bytes"], wb))
        return ([], [region]) if op == Opcode.LOAD.value else ([region], [])
    if op == Opcode.MATMUL.value:
        ap, bp, dp = matmul_pitches(f, wb)
        a = ("sp", f["a_addr"], f["a_addr"] + f["k"] * ap)
        b = ("sp", f["b_addr"], f["b_addr"] + f["k"] * bp)
        d = ("acc", f["acc_addr"], f["acc_addr"] + f["m"] * dp)
        return ([a, b, d] if f["accumulate"] else [a, b]), [d]
    if op == Opcode.VECTOR.value:
        x, y, d = _vector_regions(f, wb)
        return [x] + ([y] if y else []), [d]
    return [], []


def check(word: int, cfg=None) -> tuple[ErrorCode, str]:
    """(error code, reason) of one word, the first failing check in the sequencer's order;
    (``ErrorCode.NONE``, "") when the hardware accepts it."""
    p = IsaParams.of(cfg)
    op = word & 0xF
    if op not in FIELDS:
        return ErrorCode.ILLEGAL_OPCODE, f"unknown opcode {op}"
    if word & RESERVED[op]:
        return ErrorCode.BAD_FIELD, f"reserved bits set: {word & RESERVED[op]:#x}"
    f = decode(word)
    if op in _XFER:
        return _check_xfer(f, p)
    if op == Opcode.SYNC.value:
        return _check_group(f, p)
    if op == Opcode.MATMUL.value:
        return _check_matmul(f, p)
    if op == Opcode.VECTOR.value:
        return _check_vector(f, p)
    return ErrorCode.NONE, ""


def _check_group(f: dict, p: IsaParams) -> tuple[ErrorCode, str]:
    x0, y0, x1, y1 = f["x0"], f["y0"], f["x1"], f["y1"]
    if x0 > x1 or y0 > y1 or x1 >= p.mesh_width or y1 >= p.mesh_height:
        return ErrorCode.BAD_GROUP, (f"group x={x0}..{x1} y={y0}..{y1} is empty or outside"
                                     f" the {p.mesh_width}x{p.mesh_height} mesh")
    return ErrorCode.NONE, ""


def _misaligned(f: dict, names, wb: int):
    for name in names:
        if f[name] % wb:
            return ErrorCode.MISALIGNED, f"{name} = {f[name]:#x} is not a multiple of {wb} bytes"
    return None


def _check_xfer(f: dict, p: IsaParams) -> tuple[ErrorCode, str]:
    load = f["opcode"] == Opcode.LOAD.value
    if load and f["mode"] not in MODES.values():
        return ErrorCode.BAD_FIELD, f"mode {f['mode']} is reserved"
    if not load and f["mode"] != Mode.LOCAL.value:
        return ErrorCode.BAD_FIELD, "a STORE cannot multicast (mode must be local)"
    acc = f["space"] == Space.ACC.value
    if not load and not acc:
        return ErrorCode.BAD_FIELD, "a STORE reads the accumulator memory (space must be acc)"
    if f["mode"] == Mode.LOCAL.value:
        if any(f[k] for k in ("x0", "y0", "x1", "y1")):
            return ErrorCode.BAD_FIELD, "a local transfer has no multicast group (x0..y1 must be 0)"
    elif (bad := _check_group(f, p))[0] != ErrorCode.NONE:
        return bad
    rows, rb = f["rows"], f["row_bytes"]
    if rows == 0 or rb == 0:
        return ErrorCode.BAD_SIZE, f"rows = {rows} and row_bytes = {rb} must be at least 1"
    if bad := _misaligned(f, ("local_addr", "mem_addr", "stride"), p.word_bytes):
        return bad
    if acc and rb % ACC_BYTES:
        return ErrorCode.MISALIGNED, f"row_bytes = {rb} is not a multiple of {ACC_BYTES} (accumulator)"
    end = f["mem_addr"] + (rows - 1) * f["stride"] + rb
    if end > (1 << p.addr_bits):
        return ErrorCode.ADDR_RANGE, f"memory range ends at {end:#x}, beyond {p.addr_bits}-bit addresses"
    top = f["local_addr"] + rows * pitch(rb, p.word_bytes)
    if acc and top > p.accumulator_bytes:
        return ErrorCode.ACC_OVERFLOW, f"accumulator range ends at {top:#x} > {p.accumulator_bytes:#x}"
    if not acc and top > p.scratchpad_bytes:
        return ErrorCode.SP_OVERFLOW, f"scratchpad range ends at {top:#x} > {p.scratchpad_bytes:#x}"
    return ErrorCode.NONE, ""


def _check_matmul(f: dict, p: IsaParams) -> tuple[ErrorCode, str]:
    if f["dtype"] not in _ELEMENT_BYTES:
        return ErrorCode.BAD_FIELD, f"dtype {f['dtype']} is reserved"
    for name, limit in (("m", p.max_m), ("n", p.max_n), ("k", p.max_k)):
        if not 1 <= f[name] <= limit:
            return ErrorCode.BAD_SIZE, f"{name} = {f[name]} is out of range; allowed: 1..{limit}"
    if bad := _misaligned(f, ("a_addr", "b_addr", "acc_addr"), p.word_bytes):
        return bad
    reads, (d,) = regions(f, p.word_bytes)
    for name, (_, _, top) in zip("AB", reads, strict=False):
        if top > p.scratchpad_bytes:
            return ErrorCode.SP_OVERFLOW, f"{name} tile ends at {top:#x} > {p.scratchpad_bytes:#x}"
    if d[2] > p.accumulator_bytes:
        return ErrorCode.ACC_OVERFLOW, f"accumulator tile ends at {d[2]:#x} > {p.accumulator_bytes:#x}"
    return ErrorCode.NONE, ""


def _name(table: dict, value: int) -> str:
    return next((k for k, v in table.items() if v == value), str(value))


def _check_vector(f: dict, p: IsaParams) -> tuple[ErrorCode, str]:
    for name, table in (("op", VOPS), ("act", ACTS), ("red", REDS), ("fmt", VFMTS)):
        if f[name] not in table.values():
            return ErrorCode.BAD_FIELD, f"{name} {f[name]} is reserved"
    op, ymode, y = VOp(f["op"]), f["ymode"], f["y"]
    if op == VOp.PASS:
        if ymode or y:
            return ErrorCode.BAD_FIELD, (f"op pass has no second operand: ymode = {ymode} and y = {y:#x}"
                                         " must be 0")
    elif ymode != YMode.IMM.value and y >> 24:
        return ErrorCode.BAD_FIELD, (f"y = {y:#x} is an address (ymode {_name(YMODES, ymode)}):"
                                     " bits 31:24 must be 0")
    if op == VOp.IADD:
        for name in ("act", "red", "fmt", "itof"):
            if f[name]:
                return ErrorCode.BAD_FIELD, f"op iadd is INT32 only: {name} = {f[name]} must be 0"
    if f["red"] != Reduce.NONE.value and f["fmt"] != VFmt.FP32.value:
        return ErrorCode.BAD_FIELD, (f"a reduction writes FP32: red {_name(REDS, f['red'])} needs fmt fp32,"
                                     f" not {_name(VFMTS, f['fmt'])}")
    if f["rows"] == 0 or f["cols"] == 0:
        return ErrorCode.BAD_SIZE, f"rows = {f['rows']} and cols = {f['cols']} must be at least 1"
    names = ("x_addr", "d_addr", "y") if _vector_y_is_address(f) else ("x_addr", "d_addr")
    if bad := _misaligned(f, names, p.word_bytes):
        return bad
    x, y_region, d = _vector_regions(f, p.word_bytes)
    if d[0] == "sp" and d[2] > p.scratchpad_bytes:
        return ErrorCode.SP_OVERFLOW, (f"d ({_name(VFMTS, f['fmt'])}) ends at {d[2]:#x}"
                                       f" > {p.scratchpad_bytes:#x}")
    for name, region in (("x", x), ("y", y_region), ("d", d)):
        if region and region[0] == "acc" and region[2] > p.accumulator_bytes:
            return ErrorCode.ACC_OVERFLOW, f"{name} region ends at {region[2]:#x} > {p.accumulator_bytes:#x}"
    return ErrorCode.NONE, ""


_CLASSES = {Opcode.LOAD.value: "load", Opcode.STORE.value: "store", Opcode.MATMUL.value: "matmul",
            Opcode.VECTOR.value: "vector"}
_BARRIER_FLAGS = {"load": "loads", "store": "stores", "matmul": "matmuls", "vector": "vectors"}


def hazards(words, cfg=None) -> list[tuple[int, str]]:
    """Ordering mistakes of a program: (instruction index, message) for every access that may race
    with an outstanding operation of another class that no BARRIER separates it from.

    The rules of docs/isa.md ("Ordering and hazard rules"): each class (LOAD, STORE, MATMUL,
    VECTOR) executes in order, the classes run concurrently, and a BARRIER on a class waits for all of its
    outstanding operations; a SYNC is not an access and orders nothing local (the cross-tile
    rule, BARRIER then SYNC before a SEND reuses a buffer, spans programs and is not checked
    here). The sequencer does not check this; the assembler can (``tessera asm --strict``).
    Checking stops at the first malformed word or END.
    """
    p = IsaParams.of(cfg)
    pending: dict[str, list] = {c: [] for c in _CLASSES.values()}   # not yet covered by a barrier
    found = []
    for i, word in enumerate(words):
        f = decode(word)
        op = f["opcode"]
        if check(word, p)[0] != ErrorCode.NONE or op == Opcode.END.value:
            break
        if op == Opcode.BARRIER.value:
            for c, flag in _BARRIER_FLAGS.items():
                if f[flag]:
                    pending[c].clear()
        if op not in _CLASSES:
            continue                          # BARRIER, or SYNC: not an access
        cls = _CLASSES[op]
        reads, writes = regions(f, p.word_bytes)
        for other in (c for c in pending if c != cls):          # same class: in order
            for j, o_reads, o_writes in pending[other]:
                hit = _race(reads, writes, o_reads, o_writes)
                if hit:
                    found.append((i, f"{cls} [{i}] races with {other} [{j}] on {hit}; "
                                     f"put 'barrier {other}s' between them"))
        pending[cls].append((i, reads, writes))
    return found


def _race(reads, writes, o_reads, o_writes) -> str | None:
    """The first overlap of a read with an outstanding write, or of a write with any outstanding
    access, as text (``sp 0x0..0x20``); None if there is none."""
    pairs = [(r, w) for r in reads for w in o_writes] + [(w, x) for w in writes for x in o_writes + o_reads]
    for (space, lo1, hi1), (space2, lo2, hi2) in pairs:
        if space == space2 and lo1 < hi2 and lo2 < hi1:
            return f"{space} {max(lo1, lo2):#x}..{min(hi1, hi2):#x}"
    return None
