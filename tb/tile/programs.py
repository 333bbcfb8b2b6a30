"""Random tile programs for the testbenches: valid instructions, and malformed ones of each error kind.

Built on the golden ISA model (:mod:`tessera.tb.models.tile_isa`); every generated malformed word is
checked to produce the error code it was made for.
"""

from __future__ import annotations

import random

from tessera.tb.models.tile_isa import (
    ACTS,
    ERRORS,
    OPCODES,
    REDS,
    VFMTS,
    VOPS,
    YMODES,
    IsaParams,
    check,
    decode,
    encode,
    matmul_extents,
    pitch,
    vector_regions,
    vector_y_is_address,
)

OP = OPCODES


def _aligned(rng: random.Random, lo: int, hi: int, wb: int) -> int:
    """A multiple of ``wb`` in [lo, hi]; one of the ends a quarter of the time (boundary cases)."""
    first, last = -(-lo // wb), hi // wb
    if rng.random() < 0.25:
        return rng.choice((first, last)) * wb
    return rng.randrange(first, last + 1) * wb


def random_xfer(rng: random.Random, p: IsaParams, *, load: bool) -> int:
    wb = p.word_bytes
    space = rng.choice((0, 1)) if load else 1
    size = p.accumulator_bytes if space else p.scratchpad_bytes
    row_bytes = rng.choice((rng.randrange(1, 3 * wb), rng.randrange(1, 9) * wb))
    if space:
        row_bytes = -(-row_bytes // 4) * 4
    pt = pitch(row_bytes, wb)
    rows = rng.randrange(1, max(2, min(size // pt, 24) + 1))
    local = _aligned(rng, 0, size - rows * pt, wb)
    stride = _aligned(rng, row_bytes, row_bytes + 4 * wb, wb)
    mem = _aligned(rng, 0, min((1 << p.addr_bits) - 1 - rows * stride, 1 << 20), wb)
    v = dict(space=space, local_addr=local, mem_addr=mem, stride=stride, rows=rows, row_bytes=row_bytes)
    if load and rng.random() < 0.4:
        v["mode"] = rng.choice((1, 2))
        v["x0"] = rng.randrange(p.mesh_width)
        v["x1"] = rng.randrange(v["x0"], p.mesh_width)
        v["y0"] = rng.randrange(p.mesh_height)
        v["y1"] = rng.randrange(v["y0"], p.mesh_height)
    word = encode(OP["load" if load else "store"], **v)
    assert check(word, p) == (0, ""), check(word, p)
    return word


def random_matmul(rng: random.Random, p: IsaParams) -> int:
    wb = p.word_bytes
    for _ in range(1000):
        dtype = rng.choice((0, 1))
        m, n, k = (rng.randrange(1, 40) for _ in range(3))
        f = dict(dtype=dtype, accumulate=rng.choice((0, 1)), m=m, n=n, k=k)
        esz = 2 if dtype == 0 else 1
        a_sz, b_sz, d_sz = k * pitch(m * esz, wb), k * pitch(n * esz, wb), m * pitch(n * 4, wb)
        if a_sz > p.scratchpad_bytes or b_sz > p.scratchpad_bytes or d_sz > p.accumulator_bytes:
            continue
        f["a_addr"] = _aligned(rng, 0, p.scratchpad_bytes - a_sz, wb)
        f["b_addr"] = _aligned(rng, 0, p.scratchpad_bytes - b_sz, wb)
        f["acc_addr"] = _aligned(rng, 0, p.accumulator_bytes - d_sz, wb)
        word = encode(OP["matmul"], **f)
        assert check(word, p) == (0, ""), check(word, p)
        return word
    raise RuntimeError("no MATMUL fits this configuration")


def random_vector(rng: random.Random, p: IsaParams) -> int:
    """A valid VECTOR: every op, ymode, act, reduction and output format, regions placed at random
    (at the ends of their memory a quarter of the time)."""
    wb = p.word_bytes
    for _ in range(1000):
        op = rng.choice(list(VOPS.values()))
        f = dict(op=op, rows=rng.choice((rng.randrange(1, 9), rng.randrange(1, 40))),
                 cols=rng.choice((rng.randrange(1, 9), rng.randrange(1, 40))))
        if op != VOPS["iadd"]:
            f["act"] = rng.choice(list(ACTS.values()))
            f["red"] = rng.choice((0, 0, REDS["sum"], REDS["max"]))
            f["fmt"] = 0 if f["red"] else rng.choice(list(VFMTS.values()))
            f["itof"] = rng.random() < 0.3
        if op != VOPS["pass"]:
            f["ymode"] = rng.choice(list(YMODES.values()))
            if f["ymode"] == YMODES["imm"]:
                f["y"] = rng.choice((rng.getrandbits(32), 0x3F800000, 0, 0x80000000, 0x7F800000, 0xFFFFFFFF))
        # the regions' sizes at address 0 tell how far each may move
        x, y, d = vector_regions(decode(encode(OP["vector"], **f)), wb)
        acc, sp = p.accumulator_bytes, p.scratchpad_bytes
        if x[2] > acc or (y and y[2] > acc) or d[2] > (acc if d[0] == "acc" else sp):
            continue
        f["x_addr"] = _aligned(rng, 0, acc - x[2], wb)
        if y:
            f["y"] = _aligned(rng, 0, acc - y[2], wb)
        f["d_addr"] = _aligned(rng, 0, (acc if d[0] == "acc" else sp) - d[2], wb)
        word = encode(OP["vector"], **f)
        assert check(word, p) == (0, ""), check(word, p)
        return word
    raise RuntimeError("no VECTOR fits this configuration")


def random_barrier(rng: random.Random) -> int:
    return encode(OP["barrier"], loads=rng.random() < 0.7, stores=rng.random() < 0.4,
                  matmuls=rng.random() < 0.5, vectors=rng.random() < 0.5)


def random_sync(rng: random.Random, p: IsaParams) -> int:
    """A SYNC with a random non-empty rectangle of the mesh (the whole mesh a quarter of the time)."""
    if rng.random() < 0.25:
        x0, x1, y0, y1 = 0, p.mesh_width - 1, 0, p.mesh_height - 1
    else:
        x0, y0 = rng.randrange(p.mesh_width), rng.randrange(p.mesh_height)
        x1, y1 = rng.randrange(x0, p.mesh_width), rng.randrange(y0, p.mesh_height)
    word = encode(OP["sync"], x0=x0, x1=x1, y0=y0, y1=y1)
    assert check(word, p) == (0, ""), check(word, p)
    return word


def random_instruction(rng: random.Random, p: IsaParams, *, sync: bool = False) -> int:
    """A valid instruction (LOAD, STORE, MATMUL, VECTOR or BARRIER; with ``sync`` also SYNC)."""
    kinds = ("load", "store", "matmul", "vector", "barrier", "sync")
    kind = rng.choices(kinds, weights=(4, 2, 3, 3, 2, 2 if sync else 0))[0]
    if kind == "sync":
        return random_sync(rng, p)
    if kind == "vector":
        return random_vector(rng, p)
    if kind == "load":
        return random_xfer(rng, p, load=True)
    if kind == "store":
        return random_xfer(rng, p, load=False)
    if kind == "matmul":
        return random_matmul(rng, p)
    return random_barrier(rng)


def random_program(rng: random.Random, p: IsaParams, length: int, *, end: bool = True,
                   sync: bool = False) -> list[int]:
    words = [random_instruction(rng, p, sync=sync) for _ in range(length)]
    return words + [encode(OP["end"])] if end else words


def _set(word: int, lo: int, w: int, value: int) -> int:
    return (word & ~(((1 << w) - 1) << lo)) | ((value & ((1 << w) - 1)) << lo)


def malformed(rng: random.Random, p: IsaParams, kind: str) -> int:
    """A word that the hardware must reject with error ``kind`` (a key of ERRORS)."""
    wb = p.word_bytes
    for _ in range(1000):
        if kind == "ILLEGAL_OPCODE":
            word = rng.choice((0, 8, 9, 12, 15)) | (rng.getrandbits(124) << 4)
        elif kind in VECTOR_KINDS and rng.random() < 0.3:
            word = malformed_vector(rng, p, kind)
        elif kind == "BAD_FIELD":
            base = random_instruction(rng, p, sync=True) if rng.random() < 0.8 else encode(OP["end"])
            op = base & 0xF
            choice = rng.randrange(3)
            if op == OP["load"] and choice == 0:
                word = _set(base, 4, 2, 3)                       # mode 3
            elif op == OP["store"] and choice == 0:
                word = _set(base, 6, 1, 0)                       # STORE from the scratchpad
            elif op == OP["matmul"] and choice == 0:
                word = _set(base, 4, 2, rng.choice((2, 3)))      # reserved dtype
            else:
                reserved = {1: [7], 2: [4, 5, 7] + list(range(116, 128)), 3: [7],
                            4: list(range(8, 128)), 5: list(range(4, 128)), 6: list(range(4, 116)),
                            7: [19, 92, 93, 94, 95]}[op]
                word = base | (1 << rng.choice(reserved))
        elif kind == "BAD_GROUP":
            if rng.random() < 0.3:
                word = random_sync(rng, p)
            else:
                word = _set(random_xfer(rng, p, load=True), 4, 2, rng.choice((1, 2)))
            x0, x1 = rng.randrange(8), rng.randrange(8)
            y0, y1 = rng.randrange(8), rng.randrange(8)
            for lo, v in ((116, x0), (119, y0), (122, x1), (125, y1)):
                word = _set(word, lo, 3, v)
        elif kind == "BAD_SIZE":
            base = rng.choice((random_xfer(rng, p, load=True), random_xfer(rng, p, load=False),
                               random_matmul(rng, p)))
            if base & 0xF == OP["matmul"]:
                lo = rng.choice((80, 96, 112))
                limit = {80: p.max_m, 96: p.max_n, 112: p.max_k}[lo]
                value = 0 if rng.random() < 0.5 or limit >= 0xFFFF else rng.randrange(limit + 1, 1 << 16)
                word = _set(base, lo, 16, value)
            else:
                word = _set(base, 88, 12, 0) if rng.random() < 0.5 else _set(base, 100, 16, 0)
        elif kind == "MISALIGNED":
            base = rng.choice((random_xfer(rng, p, load=True), random_matmul(rng, p)))
            lo = rng.choice((8, 32, 64)) if base & 0xF != OP["matmul"] else rng.choice((8, 32, 56))
            word = base + (rng.randrange(1, wb) << lo)
        elif kind == "ADDR_RANGE":
            base = random_xfer(rng, p, load=rng.random() < 0.5)
            word = _set(base, 32, 32, ((1 << 32) - rng.randrange(1, 64) * wb) & ((1 << p.addr_bits) - 1))
            word = _set(word, 64, 24, rng.randrange(1, 1 << 10) * wb)
            word = _set(word, 88, 12, rng.randrange(2, 64))
        elif kind in ("SP_OVERFLOW", "ACC_OVERFLOW"):
            # a valid instruction moved up until its region ends one word (or more) past the top
            sp = kind == "SP_OVERFLOW"
            if rng.random() < 0.5:
                base = random_matmul(rng, p)
                f = decode(base)
                a_top, b_top, acc_top = matmul_extents(f, wb)
                lo, addr, top = rng.choice(((8, f["a_addr"], a_top), (32, f["b_addr"], b_top))) if sp \
                    else (56, f["acc_addr"], acc_top)
            else:
                base = random_xfer(rng, p, load=sp)
                if sp:
                    base = _set(base, 6, 1, 0)
                f = decode(base)
                lo, addr = 8, f["local_addr"]
                top = addr + f["rows"] * pitch(f["row_bytes"], wb)
            size = p.scratchpad_bytes if sp else p.accumulator_bytes
            over = wb * (1 if rng.random() < 0.5 else rng.randrange(1, 64))
            word = _set(base, lo, 24, addr + size - top + over)
        else:
            raise ValueError(f"unknown error kind {kind!r}")
        if check(word, p)[0] == ERRORS[kind]:
            return word
    raise RuntimeError(f"could not make a {kind} word for {p}")


# Every way a VECTOR can fail, by error code (docs/isa.md, "Error codes"): the variants of
# :func:`malformed_vector`.
VECTOR_CASES = {
    "BAD_FIELD": ("reserved", "op", "act", "red", "fmt", "pass_y", "y_high", "iadd", "red_fmt"),
    "BAD_SIZE": ("rows", "cols"),
    "MISALIGNED": ("x_addr", "d_addr", "y"),
    "SP_OVERFLOW": ("bf16", "bf16t", "int8", "int8t"),
    "ACC_OVERFLOW": ("x", "y_region", "y_row", "y_col", "d_fp32", "d_red"),
}
VECTOR_KINDS = tuple(VECTOR_CASES)


def _vector_base(case: str, f: dict) -> bool:
    """Whether a valid VECTOR ``f`` can be made into variant ``case`` by changing one field."""
    if case in ("y", "y_region", "y_row", "y_col"):
        return vector_y_is_address(f) and case in ("y", f"y_{_name(YMODES, f['ymode'])}")
    if case in VFMTS:
        return not f["red"] and f["fmt"] == VFMTS[case]
    if case == "d_fp32":
        return not f["red"] and f["fmt"] == VFMTS["fp32"]
    if case == "d_red":
        return bool(f["red"])
    if case == "red_fmt":
        return f["op"] != VOPS["iadd"]
    return True


def _name(table: dict, value: int) -> str:
    return next(k for k, v in table.items() if v == value)


def _break_field(rng: random.Random, word: int, case: str) -> int:
    """``word`` with the field of BAD_FIELD variant ``case`` made invalid."""
    if case == "reserved":
        return word | 1 << rng.choice((19, 92, 93, 94, 95))
    if case == "op":
        return _set(word, 4, 4, rng.randrange(8, 16))
    if case == "act":
        return _set(word, 10, 3, rng.choice((6, 7)))
    if case == "red":
        return _set(word, 13, 2, 3)
    if case == "fmt":
        return _set(word, 15, 3, rng.randrange(5, 8))
    if case == "pass_y":                                        # pass with a second operand
        y, ymode = rng.choice((0, rng.getrandbits(32))), rng.randrange(4)
        ymode = ymode if ymode or y else rng.randrange(1, 4)
        return _set(_set(_set(word, 4, 4, VOPS["pass"]), 96, 32, y), 8, 2, ymode)
    if case == "y_high":                                        # an address with bits 31:24 set
        word = _set(_set(word, 4, 4, rng.randrange(1, 8)), 8, 2, rng.randrange(3))
        return _set(word, 120, 8, rng.randrange(1, 256))
    if case == "iadd":                                          # iadd with act / red / fmt / itof
        lo, w, top = rng.choice(((10, 3, 5), (13, 2, 2), (15, 3, 4), (18, 1, 1)))     # (valid values)
        return _set(_set(word, 4, 4, VOPS["iadd"]), lo, w, rng.randint(1, top))
    return _set(_set(word, 13, 2, rng.randrange(1, 3)), 15, 3, rng.randrange(1, 5))   # red_fmt


def malformed_vector(rng: random.Random, p: IsaParams, kind: str, case: str | None = None) -> int:
    """A VECTOR that the hardware must reject with ``kind`` (a key of VECTOR_CASES), made by
    ``case`` (one of its variants; by default a random one)."""
    wb = p.word_bytes
    case = case or rng.choice(VECTOR_CASES[kind])
    for _ in range(1000):
        word = random_vector(rng, p)
        f = decode(word)
        if not _vector_base(case, f):
            continue
        if kind == "BAD_FIELD":
            word = _break_field(rng, word, case)
        elif kind == "BAD_SIZE":
            word = _set(word, 68 if case == "rows" else 80, 12, 0)
        elif kind == "MISALIGNED":
            lo, w = {"x_addr": (20, 24), "d_addr": (44, 24), "y": (96, 32)}[case]
            word = _set(word, lo, w, ((word >> lo) + rng.randrange(1, wb)) & ((1 << w) - 1))
        else:   # SP_OVERFLOW / ACC_OVERFLOW: a region moved until it ends one word (or more) past the top
            x, y, d = vector_regions(f, wb)
            lo, (_, start, end) = (20, x) if case == "x" else (96, y) if case.startswith("y") else (44, d)
            size = p.scratchpad_bytes if kind == "SP_OVERFLOW" else p.accumulator_bytes
            over = wb * (1 if rng.random() < 0.5 else rng.randrange(1, 64))
            word = _set(word, lo, 24, start + size - end + over)
        if check(word, p)[0] == ERRORS[kind]:
            return word
    raise RuntimeError(f"could not make a {kind} ({case}) VECTOR for {p}")


def malformed_sync(rng: random.Random, p: IsaParams, kind: str) -> int:
    """A SYNC that the hardware must reject with ``kind``: BAD_FIELD (a reserved bit set, the
    rectangle possibly bad as well: BAD_FIELD is checked first) or BAD_GROUP."""
    for _ in range(1000):
        word = random_sync(rng, p)
        if kind == "BAD_FIELD":
            word |= 1 << rng.randrange(4, 116)
            if rng.random() < 0.3:
                word = _set(word, 116, 12, rng.getrandbits(12))
        elif kind == "BAD_GROUP":
            word = _set(word, 116, 12, rng.getrandbits(12))
        else:
            raise ValueError(f"a SYNC cannot have error {kind!r}")
        if check(word, p)[0] == ERRORS[kind]:
            return word
    raise RuntimeError(f"could not make a {kind} SYNC for {p}")


MALFORMED_KINDS = [k for k in ERRORS if k not in ("NONE", "FAULT")]
