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
OPCODES = {"load": 1, "store": 2, "matmul": 3, "barrier": 4, "end": 5, "sync": 6}
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
BARRIER_FIELDS = [("opcode", 0, 4), ("loads", 4, 1), ("stores", 5, 1), ("matmuls", 6, 1)]
END_FIELDS = [("opcode", 0, 4)]
# SYNC: a rectangle of tiles at the bits of XFER's multicast group
SYNC_FIELDS = [("opcode", 0, 4), ("x0", 116, 3), ("y0", 119, 3), ("x1", 122, 3), ("y1", 125, 3)]
FORMATS = {
    1: XFER_FIELDS, 2: XFER_FIELDS, 3: MATMUL_FIELDS, 4: BARRIER_FIELDS, 5: END_FIELDS, 6: SYNC_FIELDS,
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
    return 0, ""


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
