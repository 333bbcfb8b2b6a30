"""Golden model of the tile ISA (docs/isa.md): encoding, field validation and error codes.

Pure Python; never imports from ``rtl/``. The field tables below are written from docs/isa.md,
independently of the Amaranth layouts in ``rtl/tile/isa.py``; ``tests/test_asm.py`` checks that
the two agree bit for bit. The assembler (``sim/runtime/asm.py``) uses :func:`check` to refuse what the
hardware would refuse, and the sequencer model (:mod:`tessera.tb.models.tile_seq`) uses it to predict the
error code and the descriptors the RTL must issue.

A configuration is any object with the attributes of ``tessera.rtl.config.FabricConfig`` that
:class:`IsaParams` reads (duck typing), or an :class:`IsaParams` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

WORD_BITS = 128

# Opcodes (bits 3:0 of every instruction word)
OPCODES = {"load": 1, "store": 2, "matmul": 3, "barrier": 4, "end": 5, "sync": 6, "vector": 7}
OPNAMES = {v: k for k, v in OPCODES.items()}

# Error codes, in the order in which the checks are made (the first failing check is reported).
ERRORS = {
    "NONE": 0,
    "ILLEGAL_OPCODE": 1,
    "BAD_FIELD": 2,
    "BAD_GROUP": 3,
    "BAD_SIZE": 4,
    "MISALIGNED": 5,
    "ADDR_RANGE": 6,
    "SP_OVERFLOW": 7,
    "ACC_OVERFLOW": 8,
    "FAULT": 9,
}
ERROR_NAMES = {v: k for k, v in ERRORS.items()}

# Sequencer states reported in the status word.
STATES = {"IDLE": 0, "RUN": 1, "DONE": 2, "ERROR": 3}

MODES = {"local": 0, "send": 1, "recv": 2}      # LOAD.mode; 3 is reserved
SPACES = {"sp": 0, "acc": 1}                     # LOAD/STORE.space
DTYPES = {"bf16": 0, "int8": 1}                  # MATMUL.dtype; 2, 3 reserved
DTYPE_BYTES = {0: 2, 1: 1}
ACC_BYTES = 4                                    # one accumulator element (FP32 or INT32)

# VECTOR's enumerations (docs/isa.md, "VECTOR"): assembly name -> field value
VOPS = {"pass": 0, "add": 1, "sub": 2, "mul": 3, "max": 4, "min": 5, "mask": 6, "iadd": 7}
YMODES = {"region": 0, "row": 1, "col": 2, "imm": 3}
ACTS = {"none": 0, "relu": 1, "gelu": 2, "exp": 3, "recip": 4, "rsqrt": 5}
REDS = {"none": 0, "sum": 1, "max": 2}
VFMTS = {"fp32": 0, "bf16": 1, "bf16t": 2, "int8": 3, "int8t": 4}

# (name, low bit, width); fields not listed are reserved and must be zero.
XFER_FIELDS = [
    ("opcode", 0, 4), ("mode", 4, 2), ("space", 6, 1),
    ("local_addr", 8, 24), ("mem_addr", 32, 32), ("stride", 64, 24), ("rows", 88, 12),
    ("row_bytes", 100, 16), ("x0", 116, 3), ("y0", 119, 3), ("x1", 122, 3), ("y1", 125, 3),
]
MATMUL_FIELDS = [
    ("opcode", 0, 4), ("dtype", 4, 2), ("accumulate", 6, 1),
    ("a_addr", 8, 24), ("b_addr", 32, 24), ("acc_addr", 56, 24),
    ("m", 80, 16), ("n", 96, 16), ("k", 112, 16),
]
BARRIER_FIELDS = [("opcode", 0, 4), ("loads", 4, 1), ("stores", 5, 1), ("matmuls", 6, 1), ("vectors", 7, 1)]
END_FIELDS = [("opcode", 0, 4)]
# SYNC: a rectangle of tiles at the bits of XFER's multicast group
SYNC_FIELDS = [("opcode", 0, 4), ("x0", 116, 3), ("y0", 119, 3), ("x1", 122, 3), ("y1", 125, 3)]
# VECTOR: bit 19 and bits 95:92 are reserved
VECTOR_FIELDS = [
    ("opcode", 0, 4), ("op", 4, 4), ("ymode", 8, 2), ("act", 10, 3), ("red", 13, 2), ("fmt", 15, 3),
    ("itof", 18, 1), ("x_addr", 20, 24), ("d_addr", 44, 24), ("rows", 68, 12), ("cols", 80, 12),
    ("y", 96, 32),
]
FORMATS = {
    1: XFER_FIELDS, 2: XFER_FIELDS, 3: MATMUL_FIELDS, 4: BARRIER_FIELDS, 5: END_FIELDS, 6: SYNC_FIELDS,
    7: VECTOR_FIELDS,
}
SYNC_COUNT_MOD = 256                             # a tile's SYNC counter is 8 bits


def _mask(fields) -> int:
    m = 0
    for _, lo, w in fields:
        m |= ((1 << w) - 1) << lo
    return m


RESERVED = {op: ((1 << WORD_BITS) - 1) & ~_mask(f) for op, f in FORMATS.items()}


@dataclass(frozen=True)
class IsaParams:
    """The configuration values the ISA's checks depend on."""

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
        return cls(
            word_bytes=cfg.tile.word_bytes, scratchpad_bytes=cfg.tile.scratchpad_bytes,
            accumulator_bytes=cfg.tile.accumulator_bytes, addr_bits=cfg.cache.addr_bits,
            mesh_width=cfg.noc.width, mesh_height=cfg.noc.height,
            max_m=cfg.tensor.max_m, max_n=cfg.tensor.max_n, max_k=cfg.tensor.max_k,
        )

    @property
    def nodes(self) -> int:
        return self.mesh_width * self.mesh_height


def opcode_of(word: int) -> int:
    return word & 0xF


def decode(word: int) -> dict:
    """Fields of ``word`` by its opcode's format (``{"opcode": op}`` only for an unknown opcode)."""
    op = opcode_of(word)
    fields = FORMATS.get(op, [("opcode", 0, 4)])
    return {name: (word >> lo) & ((1 << w) - 1) for name, lo, w in fields}


def encode(opcode: int, **values) -> int:
    """Pack field values into a word (no validation; values are truncated to their width)."""
    fields = FORMATS[opcode]
    names = {n for n, _, _ in fields}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))} for opcode {opcode}")
    word = opcode
    for name, lo, w in fields:
        if name != "opcode":
            word |= (int(values.get(name, 0)) & ((1 << w) - 1)) << lo
    return word


def pitch(row_bytes: int, word_bytes: int) -> int:
    """Bytes between consecutive rows of a tile in scratchpad or accumulator memory."""
    return -(-row_bytes // word_bytes) * word_bytes


def check(word: int, cfg=None) -> tuple[int, str]:
    """(error code, reason) for one instruction word; (0, "") when the hardware accepts it."""
    p = IsaParams.of(cfg)
    op = opcode_of(word)
    if op not in FORMATS:
        return ERRORS["ILLEGAL_OPCODE"], f"unknown opcode {op}"
    if word & RESERVED[op]:
        return ERRORS["BAD_FIELD"], f"reserved bits set: {word & RESERVED[op]:#x}"
    f = decode(word)
    wb = p.word_bytes
    if op in (1, 2):
        load = op == 1
        if load and f["mode"] == 3:
            return ERRORS["BAD_FIELD"], "mode 3 is reserved"
        if not load and f["mode"] != 0:
            return ERRORS["BAD_FIELD"], "a STORE cannot multicast (mode must be local)"
        if not load and f["space"] != SPACES["acc"]:
            return ERRORS["BAD_FIELD"], "a STORE reads the accumulator memory (space must be acc)"
        group = (f["x0"], f["y0"], f["x1"], f["y1"])
        if f["mode"] == 0:
            if any(group):
                return ERRORS["BAD_FIELD"], "a local transfer has no multicast group (x0..y1 must be 0)"
        else:
            bad = _bad_group(f, p)
            if bad:
                return bad
        rows, rb = f["rows"], f["row_bytes"]
        if rows == 0 or rb == 0:
            return ERRORS["BAD_SIZE"], f"rows = {rows} and row_bytes = {rb} must be at least 1"
        for name in ("local_addr", "mem_addr", "stride"):
            if f[name] % wb:
                return ERRORS["MISALIGNED"], f"{name} = {f[name]:#x} is not a multiple of {wb} bytes"
        acc = f["space"] == SPACES["acc"]
        if acc and rb % ACC_BYTES:
            return ERRORS["MISALIGNED"], f"row_bytes = {rb} is not a multiple of {ACC_BYTES} (accumulator)"
        end = f["mem_addr"] + (rows - 1) * f["stride"] + rb
        if end > (1 << p.addr_bits):
            return ERRORS["ADDR_RANGE"], f"memory range ends at {end:#x}, beyond {p.addr_bits}-bit addresses"
        top = f["local_addr"] + rows * pitch(rb, wb)
        if acc and top > p.accumulator_bytes:
            return ERRORS["ACC_OVERFLOW"], f"accumulator range ends at {top:#x} > {p.accumulator_bytes:#x}"
        if not acc and top > p.scratchpad_bytes:
            return ERRORS["SP_OVERFLOW"], f"scratchpad range ends at {top:#x} > {p.scratchpad_bytes:#x}"
        return 0, ""
    if op == OPCODES["sync"]:
        return _bad_group(f, p) or (0, "")
    if op == 3:
        if f["dtype"] not in DTYPE_BYTES:
            return ERRORS["BAD_FIELD"], f"dtype {f['dtype']} is reserved"
        for name, limit in (("m", p.max_m), ("n", p.max_n), ("k", p.max_k)):
            if not 1 <= f[name] <= limit:
                return ERRORS["BAD_SIZE"], f"{name} = {f[name]} is out of range; allowed: 1..{limit}"
        for name in ("a_addr", "b_addr", "acc_addr"):
            if f[name] % wb:
                return ERRORS["MISALIGNED"], f"{name} = {f[name]:#x} is not a multiple of {wb} bytes"
        a_top, b_top, acc_top = matmul_extents(f, wb)
        for name, top in (("A", a_top), ("B", b_top)):
            if top > p.scratchpad_bytes:
                return ERRORS["SP_OVERFLOW"], f"{name} tile ends at {top:#x} > {p.scratchpad_bytes:#x}"
        if acc_top > p.accumulator_bytes:
            return ERRORS["ACC_OVERFLOW"], f"accumulator tile ends at {acc_top:#x} > {p.accumulator_bytes:#x}"
        return 0, ""
    if op == OPCODES["vector"]:
        return _check_vector(f, p)
    return 0, ""


def _name(table: dict, value: int) -> str:
    return next((k for k, v in table.items() if v == value), str(value))


def _check_vector(f: dict, p: IsaParams) -> tuple[int, str]:
    """The VECTOR checks of docs/isa.md, in order (the first failing one is reported)."""
    bad = ERRORS["BAD_FIELD"]
    for name, table in (("op", VOPS), ("act", ACTS), ("red", REDS), ("fmt", VFMTS)):
        if f[name] not in table.values():
            return bad, f"{name} {f[name]} is reserved"
    op, ymode, y = f["op"], f["ymode"], f["y"]
    if op == VOPS["pass"]:
        if ymode or y:
            return bad, f"op pass has no second operand: ymode = {ymode} and y = {y:#x} must be 0"
    elif ymode != YMODES["imm"] and y >> 24:
        return bad, f"y = {y:#x} is an address (ymode {_name(YMODES, ymode)}): bits 31:24 must be 0"
    if op == VOPS["iadd"]:
        for name in ("act", "red", "fmt", "itof"):
            if f[name]:
                return bad, f"op iadd is INT32 only: {name} = {f[name]} must be 0"
    if f["red"] and f["fmt"] != VFMTS["fp32"]:
        return bad, (f"a reduction writes FP32: red {_name(REDS, f['red'])} needs fmt fp32,"
                     f" not {_name(VFMTS, f['fmt'])}")
    rows, cols = f["rows"], f["cols"]
    if rows == 0 or cols == 0:
        return ERRORS["BAD_SIZE"], f"rows = {rows} and cols = {cols} must be at least 1"
    wb = p.word_bytes
    names = ("x_addr", "d_addr", "y") if vector_y_is_address(f) else ("x_addr", "d_addr")
    for name in names:
        if f[name] % wb:
            return ERRORS["MISALIGNED"], f"{name} = {f[name]:#x} is not a multiple of {wb} bytes"
    x, y_region, d = vector_regions(f, wb)
    if d[0] == "sp" and d[2] > p.scratchpad_bytes:
        return ERRORS["SP_OVERFLOW"], (f"d ({_name(VFMTS, f['fmt'])}) ends at {d[2]:#x}"
                                       f" > {p.scratchpad_bytes:#x}")
    for name, region in (("x", x), ("y", y_region), ("d", d)):
        if region and region[0] == "acc" and region[2] > p.accumulator_bytes:
            return ERRORS["ACC_OVERFLOW"], (f"{name} region ends at {region[2]:#x}"
                                            f" > {p.accumulator_bytes:#x}")
    return 0, ""


def vector_y_is_address(f: dict) -> bool:
    """A VECTOR's ``y`` is the byte address of a second operand in the accumulator memory."""
    return f["op"] != VOPS["pass"] and f["ymode"] != YMODES["imm"]


def vector_pitches(f: dict, wb: int) -> tuple[int, int]:
    """(x_pitch, d_pitch) of a VECTOR: the row pitch of x (and of a REGION y and an FP32 output),
    and the output's row pitch for its ``fmt`` (a transposed output has ``cols`` rows of ``rows``)."""
    rows, cols = f["rows"], f["cols"]
    out_row_bytes = {0: ACC_BYTES * cols, 1: 2 * cols, 2: 2 * rows, 3: cols, 4: rows}[f["fmt"]]
    return pitch(ACC_BYTES * cols, wb), pitch(out_row_bytes, wb)


def vector_regions(f: dict, wb: int) -> tuple[tuple, tuple | None, tuple]:
    """(x, y, d) of a well-formed VECTOR as (space, start, end) byte ranges; y is None when there is
    no second operand in memory (op pass, or an immediate)."""
    rows, cols = f["rows"], f["cols"]
    xp, dp = vector_pitches(f, wb)
    x = ("acc", f["x_addr"], f["x_addr"] + rows * xp)
    y = None
    if vector_y_is_address(f):
        size = {0: rows * xp, 1: ACC_BYTES * cols, 2: ACC_BYTES * rows}[f["ymode"]]
        y = ("acc", f["y"], f["y"] + size)
    if f["red"]:
        d = ("acc", f["d_addr"], f["d_addr"] + ACC_BYTES * rows)
    else:
        transposed = f["fmt"] in (VFMTS["bf16t"], VFMTS["int8t"])
        space = "acc" if f["fmt"] == VFMTS["fp32"] else "sp"
        d = (space, f["d_addr"], f["d_addr"] + (cols if transposed else rows) * dp)
    return x, y, d


def _bad_group(f: dict, p: IsaParams) -> tuple[int, str] | None:
    """BAD_GROUP for a SEND / RECV / SYNC rectangle that is empty or leaves the mesh."""
    x0, y0, x1, y1 = f["x0"], f["y0"], f["x1"], f["y1"]
    if x0 > x1 or y0 > y1 or x1 >= p.mesh_width or y1 >= p.mesh_height:
        return ERRORS["BAD_GROUP"], (f"group x={x0}..{x1} y={y0}..{y1} is empty or outside"
                                     f" the {p.mesh_width}x{p.mesh_height} mesh")
    return None


def rect_mask(f: dict, width: int) -> int:
    """Node bitmask (node = y * width + x) of the rectangle x0..x1 x y0..y1 of ``f``."""
    mask = 0
    for y in range(f["y0"], f["y1"] + 1):
        for x in range(f["x0"], f["x1"] + 1):
            mask |= 1 << (y * width + x)
    return mask


def sync_passes(own: int, counts, mask: int) -> bool:
    """The SYNC rule: a SYNC whose tile has count ``own`` (after its own increment) may retire
    when every node t of ``mask`` has ``(counts[t] - own) mod 256``, read as a signed 8-bit
    number, >= 0 (t has executed at least as many SYNCs). ``counts``: a sequence indexed by node."""
    for t, c in enumerate(counts):
        if mask >> t & 1:
            d = (c - own) % SYNC_COUNT_MOD
            if d >= SYNC_COUNT_MOD // 2:
                return False
    return True


def matmul_pitches(f: dict, wb: int) -> tuple[int, int, int]:
    """Row pitches of A^T (K rows of M elements), B (K rows of N) and D (M rows of N words)."""
    esz = DTYPE_BYTES[f["dtype"]]
    return pitch(f["m"] * esz, wb), pitch(f["n"] * esz, wb), pitch(f["n"] * ACC_BYTES, wb)


def matmul_extents(f: dict, wb: int) -> tuple[int, int, int]:
    """End addresses (exclusive) of the A, B and accumulator regions of a MATMUL."""
    ap, bp, dp = matmul_pitches(f, wb)
    return f["a_addr"] + f["k"] * ap, f["b_addr"] + f["k"] * bp, f["acc_addr"] + f["m"] * dp


def group_mask(f: dict, width: int) -> int:
    """Node bitmask (node = y * width + x) of a LOAD's multicast rectangle; 0 for a local LOAD."""
    if f["mode"] == 0:
        return 0
    return rect_mask(f, width)
