"""Tile ISA assembler / disassembler, and the agreement of rtl/tile/isa.py with the golden ISA model."""

import random

import pytest

from tessera.cli.main import main
from tessera.rtl.config import preset
from tessera.rtl.tile import isa
from tessera.runtime.asm import assemble, disassemble, disassemble_word, read_words, write_words
from tessera.tb.models import tile_isa
from tessera.tb.tile.programs import (
    MALFORMED_KINDS,
    VECTOR_CASES,
    malformed,
    malformed_vector,
    random_program,
    random_vector,
)

PRESETS = ("tiny", "default", "ulx3s")


def test_rtl_layouts_match_model_field_tables():
    for op, layout in isa.FORMATS.items():
        assert isa.field_table(layout) == sorted(tile_isa.FORMATS[op.value], key=lambda r: r[1]), op
        assert isa.reserved_mask(layout) == tile_isa.RESERVED[op.value], op
        assert layout.size == tile_isa.WORD_BITS
    assert {o.name.lower(): o.value for o in isa.Opcode} == tile_isa.OPCODES
    assert {e.name: e.value for e in isa.ErrorCode} == tile_isa.ERRORS
    assert {s.name: s.value for s in isa.State} == tile_isa.STATES
    assert {m.name.lower(): m.value for m in isa.Mode} == tile_isa.MODES
    assert {d.name.lower(): d.value for d in isa.Dtype} == tile_isa.DTYPES
    for enum, table in ((isa.VOp, tile_isa.VOPS), (isa.YMode, tile_isa.YMODES), (isa.Act, tile_isa.ACTS),
                        (isa.Reduce, tile_isa.REDS), (isa.VFmt, tile_isa.VFMTS)):
        assert {e.name.lower().replace("_", ""): e.value for e in enum} == table, enum
    assert isa.reserved_mask(isa.VECTOR) == (1 << 19) | (0xF << 92)


def _md_tables(text: str) -> dict[str, list[list[str]]]:
    """The tables of a markdown text by the heading above them: rows of cells, header dropped."""
    tables, heading = {}, None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and not line.startswith("|---"):
            tables.setdefault(heading, []).append([c.strip().strip("`") for c in line.strip("|").split("|")])
    return {h: rows[1:] for h, rows in tables.items()}


def test_docs_isa_tables_match_the_spec():
    """docs/isa.md's opcode, format and error-code tables say what rtl/tile/isa.py declares."""
    from pathlib import Path

    tables = _md_tables((Path(__file__).parent.parent / "docs" / "isa.md").read_text())
    opcodes = {int(r[0]): r[1] for r in tables["Opcodes"] if r[0].isdigit() and r[1] != "—"}
    assert opcodes == {o.value: o.name.lower() for o in isa.Opcode}
    for heading, ops in [("XFER (LOAD, STORE)", [isa.Opcode.LOAD, isa.Opcode.STORE]),
                         ("MATMUL", [isa.Opcode.MATMUL]), ("BARRIER", [isa.Opcode.BARRIER]),
                         ("END", [isa.Opcode.END]), ("SYNC", [isa.Opcode.SYNC]),
                         ("VECTOR", [isa.Opcode.VECTOR])]:
        documented = []
        for bits, field, _ in tables[heading]:
            if field != "—":
                hi, _, lo = bits.partition(":")
                documented.append((field, int(lo or hi), int(hi) - int(lo or hi) + 1))
        for op in ops:
            assert sorted(documented, key=lambda r: r[1]) == isa.field_table(isa.FORMATS[op]), heading
    errors = {int(r[0]): r[1] for r in tables["Error codes"]}
    assert errors == {e.value: e.name for e in isa.ErrorCode}


@pytest.mark.parametrize("name", PRESETS)
def test_runtime_checks_agree_with_the_golden_model(name):
    """tessera.runtime.isa (read from the spec) and tb/models/tile_isa.py (written from docs/isa.md)
    give the same error code and reason for every word: good programs, every kind of malformed
    word, and words with random fields under each opcode."""
    from tessera.runtime import isa as runtime_isa

    cfg = preset(name)
    p = tile_isa.IsaParams.of(cfg)
    assert runtime_isa.IsaParams.of(cfg).__dict__ == p.__dict__
    rng = random.Random(f"agree:{name}")
    words = random_program(rng, p, 200, sync=True)
    words += [malformed(rng, p, kind) for kind in MALFORMED_KINDS for _ in range(30)]
    for _ in range(3000):              # dense field values: small numbers hit the limits and groups
        op = rng.randrange(16)
        fields = {n: rng.choice([0, 1, 2, 3, 4, 7, 16, rng.randrange(1 << w)])
                  for n, _, w in tile_isa.FORMATS.get(op, []) if n != "opcode"}
        known = op in tile_isa.FORMATS
        words.append(tile_isa.encode(op, **fields) if known else op | rng.getrandbits(124) << 4)
    codes = set()
    for w in words:
        err, reason = runtime_isa.check(w, cfg)
        assert (err.value, reason) == tile_isa.check(w, cfg), hex(w)
        assert runtime_isa.decode(w) == tile_isa.decode(w), hex(w)
        codes.add(err)
    assert codes >= set(isa.ErrorCode) - {isa.ErrorCode.FAULT}, codes   # every check was reached


@pytest.mark.parametrize("name", PRESETS)
def test_random_programs_round_trip(name):
    cfg = preset(name)
    rng = random.Random(f"rt:{name}")
    p = tile_isa.IsaParams.of(cfg)
    for _ in range(20):
        words = random_program(rng, p, rng.randrange(1, 60), sync=True)
        text = disassemble(words, cfg)
        assert "# [" not in text, text                # no word flagged as malformed
        assert assemble(text, cfg) == words


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_assembler_refuses_what_hardware_rejects(kind):
    cfg = preset("tiny")
    p = tile_isa.IsaParams.of(cfg)
    rng = random.Random(f"bad:{kind}")
    for _ in range(20):
        word = malformed(rng, p, kind)
        good = random_program(rng, p, 3, end=False)
        text = disassemble(good, cfg) + disassemble([word], cfg, annotate=False) + "end\n"
        with pytest.raises(ValueError, match=rf"^line 4: .*{kind}"):
            assemble(text, cfg)
        # without checking, the malformed word is reproduced exactly
        assert assemble(text, cfg, validate=False) == good + [word, tile_isa.encode(5)]
        assert f"{kind}:" in disassemble([word], cfg)


def test_disassembly_of_raw_words_round_trips():
    rng = random.Random(7)
    for _ in range(2000):
        w = rng.getrandbits(128) & rng.choice((0xF, (1 << 32) - 1, (1 << 128) - 1))
        w = (w & ~0xF) | rng.randrange(16)
        text = disassemble_word(w)
        assert assemble(text, validate=False) == [w], text


_V = "x=0 d=0 rows=1 cols=1"     # a VECTOR's operands, for the error table


@pytest.mark.parametrize(
    "src, match",
    [
        ("frob 1", r"line 1: unknown mnemonic 'frob'"),
        ("end\nload sp=0, mem=0, rows=1", r"line 2: load: missing operand bytes="),
        ("\n\nload sp=0, acc=0, mem=0, rows=1, bytes=4", r"line 3: load: give exactly one of sp= or acc="),
        ("load sp=0, mem=0, rows=1, bytes=4, colour=3", r"line 1: load: unknown operand 'colour'"),
        ("load sp=0, mem=0, rows=1, bytes=4, mode=send", r"line 1: load: mode=send needs the group"),
        ("load sp=0, mem=0, rows=1, bytes=4, x=1", r"line 1: load: x= and y= name a multicast group"),
        ("store acc=0, mem=0, rows=1, bytes=4, mode=send, x=0, y=0", r"line 1: store: unknown operand"),
        ("matmul m=1, n=1, k=1, a=0, b=0, acc=0", r"line 1: matmul: give exactly one dtype"),
        ("matmul bf16 m=1, n=1, k=1, a=0, b=0, acc=0, accumulat", r"unexpected operand 'accumulat'"),
        ("matmul bf16 m=1, n=1, k=99999, a=0, b=0, acc=0", r"line 1: k = 99999 does not fit in 16 bits"),
        ("matmul bf16 m=1, n=1, k=0x1g, a=0, b=0, acc=0", r"k: '0x1g' is not a number"),
        ("barrier loadz", r"barrier: unknown operand 'loadz'"),
        ("end 3", r"end takes no operands"),
        ("load sp=8, mem=0, rows=1, bytes=4", r"line 1: load: MISALIGNED: local_addr = 0x8"),
        ("load sp=0x3ff0, mem=0, rows=2, bytes=16", r"SP_OVERFLOW: scratchpad range ends at 0x4010"),
        ("store acc=0, mem=0xfffffff0, rows=1, bytes=32", r"ADDR_RANGE"),
        ("load acc=0, mem=0, rows=1, bytes=6", r"MISALIGNED: row_bytes = 6 is not a multiple of 4"),
        ("load sp=0, mem=0, rows=1, bytes=4, mode=recv, x=0..2, y=0", r"BAD_GROUP: .*outside the 2x2 mesh"),
        ("matmul int8 m=4, n=4, k=4097, a=0, b=0, acc=0", r"BAD_SIZE: k = 4097 .*allowed: 1..4096"),
        ("sync x=0..2", r"line 1: sync: BAD_GROUP: group x=0..2 y=0..1 is empty or outside the 2x2 mesh"),
        ("sync y=1..0", r"line 1: sync: BAD_GROUP: group x=0..1 y=1..0 is empty"),
        ("sync x=0 y=8", r"line 1: y0 = 8 does not fit in 3 bits"),
        ("sync loads", r"line 1: sync: unexpected operand 'loads'"),
        ("sync mode=send", r"line 1: sync: unknown operand 'mode'; allowed: x, y"),
        ("barrier vectorz", r"unknown operand 'vectorz'; allowed: loads, stores, matmuls, vectors, all"),
        ("vector add, x=0, d=0, rows=1, cols=1", r"line 1: vector: add needs a second operand: y=, yrow="),
        ("vector x=0, d=0, rows=1, cols=1", r"line 1: vector: give exactly one op \(pass, add, sub, mul"),
        (f"vector add mul {_V} imm=1", r"line 1: vector: give exactly one op"),
        (f"vector add {_V} y=0 imm=1", r"vector: give at most one of y=, yrow=, ycol=, imm=, immbits="),
        (f"vector add {_V} act=tanh",
         r"^line 1: vector: act=tanh; allowed: none, relu, gelu, exp, recip, rsqrt"),
        (f"vector add {_V} imm=1 fmt=bf16_t", r"fmt=bf16_t; allowed: fp32, bf16, bf16t, int8, int8t"),
        (f"vector add {_V} imm=1 red=avg", r"red=avg; allowed: none, sum, max"),
        (f"vector add {_V} imm=1e39", r"line 1: imm = 1e39 overflows FP32 .*write inf"),
        (f"vector add {_V} imm=0x10", r"line 1: imm: '0x10' is not a decimal number"),
        (f"vector add {_V} imm=1/3", r"imm: '1/3' is not a decimal number"),
        (f"vector iadd {_V} imm=4294967296",
         r"imm = 4294967296 is out of range for iadd; allowed: -2147483648..4294967295 "),
        (f"vector iadd {_V} imm=-2147483649", r"imm = -2147483649 is out of range for iadd"),
        (f"vector iadd {_V} imm=1.5", r"imm: '1.5' is not a number"),
        (f"vector add {_V} immbits=0x100000000", r"immbits = 0x100000000 does not fit in 32 bits"),
        (f"vector add {_V} imm=1 colour=2", r"vector: unknown operand 'colour'; allowed: act, cols"),
        (f"vector add {_V} imm=1 fast", r"line 1: vector: unexpected operand 'fast'"),
        ("vector add x=0 d=0 rows=1 imm=1", r"line 1: vector: missing operand cols="),
        ("vector add x=0 d=0 rows=1 cols=4096 imm=1", r"line 1: cols = 4096 does not fit in 12 bits"),
        (f"vector pass {_V} y=16",
         r"^line 1: vector: BAD_FIELD: op pass has no second operand: ymode = 0 and y = 0x10"),
        (f"vector iadd {_V} imm=1 act=relu", r"BAD_FIELD: op iadd is INT32 only: act = 1 must be 0"),
        (f"vector iadd {_V} imm=1, itof", r"BAD_FIELD: op iadd is INT32 only: itof = 1 must be 0"),
        (f"vector add {_V} yrow=0x1000000", r"BAD_FIELD: y = 0x1000000 is an address \(ymode row\)"),
        (f"vector add {_V} imm=1 red=sum fmt=bf16",
         r"BAD_FIELD: a reduction writes FP32: red sum needs fmt fp32, not bf16 "),
        ("vector add x=0 d=0 rows=0 cols=4 imm=1", r"vector: BAD_SIZE: rows = 0 and cols = 4 must be"),
        ("vector add x=0 d=0 rows=1 cols=4 ycol=0x8", r"vector: MISALIGNED: y = 0x8 is not a multiple of 16"),
        ("vector add x=0 d=0x3ff0 rows=2 cols=2 imm=1 fmt=int8t",
         r"SP_OVERFLOW: d \(int8t\) ends at 0x4010 >"),
        ("vector add x=0 d=0 rows=2 cols=4 y=0xff0", r"ACC_OVERFLOW: y region ends at 0x1010 > 0x1000"),
        ("vector add x=0 d=0x1000 rows=1 cols=4 imm=1", r"ACC_OVERFLOW: d region ends at 0x1010 > 0x1000"),
        ("vector add x=0xf80 d=0 rows=9 cols=4 imm=1", r"ACC_OVERFLOW: x region ends at 0x1010 > 0x1000"),
        ("vector max x=0 d=0xff0 rows=5 cols=4 imm=1 red=max", r"ACC_OVERFLOW: d region ends at 0x1004"),
    ],
)
def test_assembler_errors_name_the_line(src, match):
    with pytest.raises(ValueError, match=match):
        assemble(src, preset("tiny"))


def test_syntax_variants():
    cfg = preset("tiny")
    a = assemble("LOAD sp=0x10 mem=0x20 rows=2 bytes=20 stride=32  ; comment\nbarrier all\nEnd", cfg)
    b = assemble("load sp=16, mem=32, rows=2, bytes=20  # stride defaults to the pitch\n"
                 "barrier loads, stores, matmuls, vectors\nend", cfg)
    assert a == b
    f = tile_isa.decode(a[0])
    assert (f["local_addr"], f["mem_addr"], f["rows"], f["row_bytes"], f["stride"]) == (16, 32, 2, 20, 32)


def test_cli_asm_disasm(tmp_path, capsys):
    src = tmp_path / "p.s"
    words = random_program(random.Random(3), tile_isa.IsaParams.of(preset("tiny")), 30, sync=True)
    src.write_text(disassemble(words))
    for ext in (".hex", ".bin"):
        out = tmp_path / f"p{ext}"
        assert main(["asm", str(src), "--preset", "tiny", "-o", str(out)]) == 0
        assert read_words(out) == words
        capsys.readouterr()
        assert main(["disasm", str(out), "--preset", "tiny"]) == 0
        assert capsys.readouterr().out == disassemble(words)
    bad = tmp_path / "bad.s"
    bad.write_text("end\nload sp=1, mem=0, rows=1, bytes=4\n")
    assert main(["asm", str(bad), "--preset", "tiny"]) == 1
    assert "line 2: load: MISALIGNED" in capsys.readouterr().err
    write_words(tmp_path / "w.hex", [0xF])
    assert main(["disasm", str(tmp_path / "w.hex")]) == 0
    assert "ILLEGAL_OPCODE" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["asm", str(src), "--preset", "huge"])
    assert "--preset: unknown preset" in capsys.readouterr().err
    racy = tmp_path / "racy.s"
    racy.write_text("load sp=0, mem=0, rows=4, bytes=32\nmatmul bf16 m=16 n=16 k=4 a=0 b=0x100 acc=0\nend\n")
    assert main(["asm", str(racy), "--preset", "tiny", "-o", str(tmp_path / "r.hex")]) == 0
    assert "warning: instruction 1: matmul [1] races with load [0]" in capsys.readouterr().err
    assert main(["asm", str(racy), "--preset", "tiny", "--strict"]) == 1
    assert "error: instruction 1" in capsys.readouterr().err


def test_docs_examples_assemble():
    """Every ```asm block of docs/isa.md assembles on the default preset and round-trips."""
    import re
    from pathlib import Path

    from tessera.runtime.isa import hazards

    text = (Path(__file__).parent.parent / "docs" / "isa.md").read_text()
    blocks = re.findall(r"```asm\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    cfg = preset("default")
    for block in blocks:
        words = assemble(block, cfg)
        assert assemble(disassemble(words, cfg), cfg) == words
        assert hazards(words, cfg) == [], block
    assert any("\nsync" in b for b in blocks)


@pytest.mark.parametrize(
    "drop, expect",
    [
        (None, []),
        ("barrier loads", ["matmul [2] races with load [0]", "matmul [2] races with load [1]"]),
        ("barrier matmuls", ["store [4] races with matmul [3]", "load [5] races with matmul [3]"]),
        ("barrier stores loads", ["matmul [7] races with load [6]", "matmul [7] races with store [5]"]),
    ],
)
def test_hazard_checker(drop, expect):
    """The ordering rules of docs/isa.md: a missing BARRIER is reported, a present one is not."""
    from tessera.runtime.isa import hazards

    program = [
        "load    sp=0x0000, mem=0x1000, rows=4, bytes=32",       # A^T
        "load    sp=0x1000, mem=0x2000, rows=4, bytes=32",       # B
        "barrier loads",
        "matmul  bf16, m=16, n=16, k=4, a=0x0000, b=0x1000, acc=0x0000",
        "barrier matmuls",
        "store   acc=0x0000, mem=0x3000, rows=16, bytes=64",
        "load    sp=0x0000, mem=0x4000, rows=4, bytes=32",       # reuses A's buffer: after the MATMUL
        "barrier stores loads",
        "matmul  int8, m=16, n=16, k=4, a=0x0000, b=0x1000, acc=0x0000",
        "end",
    ]
    if drop:
        program.remove(drop)
    cfg = preset("tiny")
    found = [msg for _, msg in hazards(assemble("\n".join(program), cfg), cfg)]
    assert [m.split(" on ")[0] for m in found] == expect, found


@pytest.mark.parametrize("name", PRESETS)
def test_matmul_descriptor_fits_tensor_core_op(name):
    """The MATMUL descriptor carries the tensor core's op fields (docs/isa.md, docs/tensor.md)."""
    from amaranth.hdl import Shape

    from tessera.rtl.tensor.interface import DTYPES, op_layout

    cfg = preset(name)
    assert DTYPES == tile_isa.DTYPES
    op = {n: Shape.cast(f.shape).width for n, f in op_layout(cfg.tensor)}
    desc = {n: Shape.cast(f.shape).width for n, f in isa.matmul_desc_layout(cfg)}
    for field in ("m", "n", "k", "dtype", "accumulate"):
        assert desc[field] >= op[field], field
    # every size the ISA accepts is representable in the core's op fields
    p = tile_isa.IsaParams.of(cfg)
    for field, limit in (("m", p.max_m), ("n", p.max_n), ("k", p.max_k)):
        assert limit < (1 << op[field]), field


def test_program_builder():
    from tessera.runtime.asm import Program

    cfg = preset("default")
    p = Program(cfg)
    p.load(sp=0x0000, mem=0x10000, rows=16, bytes=32, stride=32)
    p.load(sp=0x8000, mem=0x20000, rows=16, bytes=32, stride=32, mode="send", x=(0, 3), y=0)
    p.barrier("loads")
    p.matmul("bf16", m=16, n=16, k=16, a=0x0000, b=0x8000, acc=0x0000, accumulate=True)
    p.barrier("matmuls")
    p.store(acc=0x0000, mem=0x30000, rows=16, bytes=64)
    p.end()
    assert assemble(p.text(), cfg) == p.words
    assert p.hazards() == []
    f = tile_isa.decode(p.words[1])
    assert (f["mode"], f["x0"], f["x1"], f["y0"], f["y1"]) == (1, 0, 3, 0, 0)
    assert tile_isa.decode(p.words[3])["accumulate"] == 1
    with pytest.raises(ValueError, match=r"^instruction 7: load: MISALIGNED"):
        p.load(sp=0x8, mem=0, rows=1, bytes=4)
    assert len(p.words) == 7


def test_sync_syntax_and_builder():
    """``sync`` defaults to the whole mesh per axis; the disassembly is canonical; Program.sync."""
    from tessera.runtime.asm import Program

    cfg = preset("tiny")                                   # 2 x 2
    words = assemble("sync\nsync x=1\nsync y=0..1, x=0..0\nSYNC x=1..1 y=1", cfg)
    fields = [(f["x0"], f["x1"], f["y0"], f["y1"]) for f in map(tile_isa.decode, words)]
    assert fields == [(0, 1, 0, 1), (1, 1, 0, 1), (0, 0, 0, 1), (1, 1, 1, 1)]
    assert all(w & 0xF == 6 and tile_isa.check(w, cfg) == (0, "") for w in words)
    assert disassemble_word(words[1]) == "sync    x=1..1, y=0..1"
    assert assemble(disassemble(words, cfg), cfg) == words
    assert assemble("sync", preset("default")) == assemble("sync x=0..3, y=0..3", cfg, validate=False)
    p = Program(preset("default"))
    p.sync().sync(x=(1, 2)).sync(x=(0, 3), y=(2, 2)).sync(y=1)
    assert p.words == assemble("sync x=0..3 y=0..3\nsync x=1..2\nsync y=2, x=0..3\nsync y=1",
                               preset("default"))
    with pytest.raises(ValueError, match=r"^instruction 4: sync: BAD_GROUP"):
        p.sync(x=(2, 4))
    # reserved bits of SYNC: everything but the opcode and the rectangle
    for bit in (4, 7, 64, 115):
        assert tile_isa.check(words[0] | (1 << bit), cfg)[0] == tile_isa.ERRORS["BAD_FIELD"]
        assert disassemble_word(words[0] | (1 << bit)).startswith(".word")
    assert tile_isa.check(0x8, cfg)[0] == tile_isa.ERRORS["ILLEGAL_OPCODE"]


def test_sync_rule_and_model():
    """The SYNC rule modulo 256 (docs/isa.md) and the sequencer model's SYNC bookkeeping."""
    from tessera.tb.models.tile_seq import run

    ok = tile_isa.sync_passes
    full = 0b1111
    assert ok(1, [1, 1, 5, 2], full) and not ok(1, [1, 0, 5, 2], full)
    assert ok(1, [0, 1, 1, 1], 0b1110)                     # node 0 outside the group
    # signed 8-bit difference: ahead by up to 127 passes, 128 or more counts as behind
    assert ok(10, [10 + 127] * 4, full) and not ok(10, [10 + 128] * 4, full)
    # wrap-around: own 255 -> 0; a tile at 255 is behind own 0, a tile at 0 or 1 is not behind 255
    assert not ok(0, [0, 255, 0, 0], full) and ok(255, [0, 1, 255, 255], full) and ok(0, [0, 1, 2, 3], full)
    assert not ok(1, [255, 1, 1, 1], full)

    cfg = preset("tiny")
    text = "load sp=0, mem=0, rows=1, bytes=16\nsync\nmatmul int8 m=4 n=4 k=4 a=0 b=0 acc=0\nsync x=1\nend"
    words = assemble(text, cfg)
    res = run(words, cfg)
    assert [(s.index, s.count, s.mask) for s in res.syncs] == [(1, 1, 0b1111), (3, 2, 0b1010)]
    assert [(i.stream, i.syncs) for i in res.issues] == [("load", 0), ("matmul", 1)]
    assert res.state == tile_isa.STATES["DONE"]
    # held back by tile 2 (still at 0): stops at the first SYNC
    res = run(words, cfg, counts=[1, 1, 0, 1])
    assert res.blocked and (res.state, res.pc, res.consumed) == (tile_isa.STATES["RUN"], 1, 2)
    # tile 2 has caught up; the second SYNC waits only for x = 1 (nodes 1, 3); own node 0 is self
    res = run(words, cfg, counts=[0, 2, 1, 2], node=0)
    assert not res.blocked and res.state == tile_isa.STATES["DONE"]
    res = run(words, cfg, counts=[0, 2, 1, 1], node=0)
    assert res.blocked and res.pc == 3
    # 300 SYNCs: the count wraps
    res = run(assemble("sync\n" * 300 + "end", cfg), cfg)
    assert [s.count for s in res.syncs][254:258] == [255, 0, 1, 2]


def test_sync_is_not_an_access_for_hazards():
    """A SYNC orders nothing local: a LOAD before it still races with a MATMUL after it."""
    from tessera.runtime.isa import hazards

    cfg = preset("tiny")
    racy = assemble("load sp=0, mem=0, rows=4, bytes=32\nsync\nmatmul bf16 m=16 n=16 k=4 a=0 b=0x100 acc=0\n"
                    "end", cfg)
    assert [i for i, _ in hazards(racy, cfg)] == [2]
    fixed = assemble("load sp=0, mem=0, rows=4, bytes=32\nbarrier loads\nsync\n"
                     "matmul bf16 m=16 n=16 k=4 a=0 b=0x100 acc=0\nend", cfg)
    assert hazards(fixed, cfg) == []


# ---- VECTOR ---------------------------------------------------------------------------------------

_HEX = "0x[0-9a-f]+"
VECTOR_MESSAGES = {   # (error code, variant) -> the reason, on ``tiny`` (W = 16, 16 KiB sp, 4 KiB acc)
    ("BAD_FIELD", "reserved"): rf"reserved bits set: {_HEX}",
    ("BAD_FIELD", "op"): r"op (8|9|1[0-5]) is reserved",
    ("BAD_FIELD", "act"): r"act [67] is reserved",
    ("BAD_FIELD", "red"): r"red 3 is reserved",
    ("BAD_FIELD", "fmt"): r"fmt [5-7] is reserved",
    ("BAD_FIELD", "pass_y"): rf"op pass has no second operand: ymode = [0-3] and y = {_HEX} must be 0",
    ("BAD_FIELD", "y_high"): rf"y = {_HEX} is an address \(ymode (region|row|col)\): bits 31:24 must be 0",
    ("BAD_FIELD", "iadd"): r"op iadd is INT32 only: (act|red|fmt|itof) = [1-5] must be 0",
    ("BAD_FIELD", "red_fmt"): r"a reduction writes FP32: red (sum|max) needs fmt fp32, not (bf16|int8)t?",
    ("BAD_SIZE", "rows"): r"rows = 0 and cols = \d+ must be at least 1",
    ("BAD_SIZE", "cols"): r"rows = \d+ and cols = 0 must be at least 1",
    ("MISALIGNED", "x_addr"): rf"x_addr = {_HEX} is not a multiple of 16 bytes",
    ("MISALIGNED", "d_addr"): rf"d_addr = {_HEX} is not a multiple of 16 bytes",
    ("MISALIGNED", "y"): rf"y = {_HEX} is not a multiple of 16 bytes",
    **{("SP_OVERFLOW", f): rf"d \({f}\) ends at {_HEX} > 0x4000" for f in ("bf16", "bf16t", "int8", "int8t")},
    ("ACC_OVERFLOW", "x"): rf"x region ends at {_HEX} > 0x1000",
    **{("ACC_OVERFLOW", c): rf"y region ends at {_HEX} > 0x1000" for c in ("y_region", "y_row", "y_col")},
    **{("ACC_OVERFLOW", c): rf"d region ends at {_HEX} > 0x1000" for c in ("d_fp32", "d_red")},
}


def test_vector_messages_cover_every_case():
    assert set(VECTOR_MESSAGES) == {(k, c) for k, cases in VECTOR_CASES.items() for c in cases}


@pytest.mark.parametrize("kind, case", sorted(VECTOR_MESSAGES))
def test_vector_checks_and_messages(kind, case):
    """Every VECTOR check: the golden model and tessera.runtime.isa give its code and the same
    message; the assembler refuses the word naming the line and the code; unchecked, it is kept."""
    import re

    from tessera.runtime import isa as runtime_isa

    cfg = preset("tiny")
    p = tile_isa.IsaParams.of(cfg)
    rng = random.Random(f"vcase:{kind}:{case}")
    for _ in range(25):
        word = malformed_vector(rng, p, kind, case)
        code, reason = tile_isa.check(word, cfg)
        assert code == tile_isa.ERRORS[kind] and re.fullmatch(VECTOR_MESSAGES[kind, case], reason), reason
        err, reason2 = runtime_isa.check(word, cfg)
        assert (err.value, reason2) == (code, reason)
        text = disassemble_word(word)
        with pytest.raises(ValueError, match=rf"^line 1: (vector|\.word): {kind}: {re.escape(reason)}"):
            assemble(text, cfg)
        assert assemble(text, cfg, validate=False) == [word]


@pytest.mark.parametrize(
    "line, kind",
    [
        ("vector pass x=8 d=8 rows=0 cols=1 y=0x10", "BAD_FIELD"),          # BAD_FIELD before BAD_SIZE
        ("vector add x=8 d=0 rows=0 cols=1 imm=1", "BAD_SIZE"),             # BAD_SIZE before MISALIGNED
        ("vector add x=8 d=0 rows=1 cols=1 ycol=0x2000", "MISALIGNED"),     # MISALIGNED before ACC_OVERFLOW
        ("vector add x=0xff0 d=0x3ff0 rows=2 cols=4 imm=1 fmt=bf16", "SP_OVERFLOW"),   # before ACC_OVERFLOW
        ("vector add x=0 d=0 rows=1 cols=1 immbits=0xff000008", "NONE"),    # an immediate is not an address
        ("vector pass x=0 d=0 rows=1 cols=1 act=exp", "NONE"),
        ("vector mask x=0 d=0x3fe0 rows=16 cols=2 y=0xf00 fmt=int8t", "NONE"),   # ends exactly at the top
        ("vector add x=0 d=0 rows=4095 cols=1 imm=1", "ACC_OVERFLOW"),
        ("vector add x=0 d=0 rows=1 cols=4095 imm=1 red=sum", "ACC_OVERFLOW"),    # x: 4 * 4095 bytes
        ("vector add x=0 d=0xff0 rows=4 cols=1 imm=1 red=sum", "NONE"),     # d: 4 bytes per row
    ],
)
def test_vector_check_order(line, kind):
    from tessera.runtime import isa as runtime_isa

    cfg = preset("tiny")
    (word,) = assemble(line, cfg, validate=False)
    assert runtime_isa.check(word, cfg)[0].name == kind
    assert tile_isa.check(word, cfg)[0] == tile_isa.ERRORS[kind]


@pytest.mark.parametrize("name", PRESETS)
def test_vector_round_trip(name):
    """Well-formed VECTOR words: disassembly -> assembly gives the same word (every preset); any
    VECTOR word (random fields, possibly malformed) round-trips without the checks."""
    cfg = preset(name)
    p = tile_isa.IsaParams.of(cfg)
    rng = random.Random(f"vrt:{name}")
    for _ in range(2000):
        word = random_vector(rng, p)
        text = disassemble_word(word)
        assert text.startswith("vector  ") and assemble(text, cfg) == [word], text
    for _ in range(2000):
        fields = {n: rng.choice([0, 1, 3, rng.randrange(1 << w)]) for n, _, w in tile_isa.VECTOR_FIELDS
                  if n != "opcode"}
        word = tile_isa.encode(7, **fields) | rng.choice((0, 0, 0, 1 << 19, 1 << 93))
        text = disassemble_word(word)
        assert assemble(text, validate=False) == [word], text


def test_vector_immediates():
    """imm= is rounded once, exactly, to the nearest FP32 (ties to even); iadd takes an INT32;
    immbits= is the raw pattern; the disassembly prints immbits= with the value as a comment."""
    import numpy as np

    cfg = preset("tiny")

    def y(imm, op="mul"):
        (word,) = assemble(f"vector {op}, x=0, d=0, rows=1, cols=1, imm={imm}", cfg)
        return word >> 96

    assert y("1") == y("1.0") == y("+1e0") == 0x3F800000
    assert y("0.1") == 0x3DCCCCCD and y("-0") == 0x80000000 and y("0") == 0
    assert y("inf") == 0x7F800000 and y("-inf") == 0xFF800000 and y("nan") == 0x7FC00000
    assert y("1e-45") == 1 and y("7e-46") == 0 and y("1.1754944e-38") == 0x00800000
    assert y("1.000000059604644775390625") == 0x3F800000        # 1 + 2^-24: a tie, to even (down)
    assert y("1.000000178813934326171875") == 0x3F800002        # 1 + 3 * 2^-24: a tie, to even (up)
    # just above the tie: one rounding gives 1 + 2^-23; through a float64 it would round twice, to 1
    above = "1.000000059604644775390625000000827180612553027674871408692069962853565812110900878906250"
    assert y(above) == 0x3F800001
    assert int(np.float32(float(above)).view(np.uint32)) == 0x3F800000
    assert y("3.4028235e38") == 0x7F7FFFFF and y("340282356779733661637539395458142568447") == 0x7F7FFFFF
    with pytest.raises(ValueError, match="overflows FP32"):     # the tie above the largest: to infinity
        y("340282356779733661637539395458142568448")
    with pytest.raises(ValueError, match="overflows FP32"):     # (refused from its exponent, at once)
        y("1e999999999")
    assert y("-1e-999999999") == 0x80000000 and y("7.1e-46") == 1    # (above half the smallest subnormal)
    assert y("-1", "iadd") == 0xFFFFFFFF and y("-2147483648", "iadd") == 0x80000000
    assert y("4294967295", "iadd") == 0xFFFFFFFF and y("0x7fff_ffff", "iadd") == 0x7FFFFFFF

    (word,) = assemble("vector iadd, x=0, d=0x10, rows=2, cols=3, imm=-5", cfg)
    assert disassemble_word(word) == ("vector  iadd, x=0x0000, d=0x0010, rows=2, cols=3, immbits=0xfffffffb"
                                      "  # -5")
    (word,) = assemble("vector mul, x=0, d=0, rows=1, cols=1, immbits=0x3dcccccd, itof, fmt=int8", cfg)
    assert disassemble_word(word) == ("vector  mul, x=0x0000, d=0x0000, rows=1, cols=1, immbits=0x3dcccccd,"
                                      " fmt=int8, itof  # 0.1")
    (word,) = assemble("vector max, x=0, d=0, rows=1, cols=1, immbits=0x7fc00001", cfg)
    assert disassemble_word(word).endswith("immbits=0x7fc00001  # nan")
    # the comment of any finite FP32 assembles back to it
    rng = random.Random(5)
    for _ in range(3000):
        bits = rng.getrandbits(32)
        if bits >> 23 & 0xFF == 0xFF:
            continue
        (word,) = assemble(f"vector add, x=0, d=0, rows=1, cols=1, immbits={bits}", cfg)
        value = disassemble_word(word).split("# ")[1]
        assert y(value, "add") == bits, value


def test_vector_syntax_and_builder():
    from tessera.runtime.asm import Program

    cfg = preset("tiny")
    words = assemble("vector add, x=0x100, d=0x2000, rows=4, cols=8, yrow=0x200, act=relu, fmt=bf16t\n"
                     "VECTOR PASS x=0 d=0 rows=1 cols=1\n"
                     "vector sub x=0 d=0 rows=2 cols=2 y=0x40 act=gelu red=max\n"
                     "vector mask x=0 d=0 rows=2 cols=2 ycol=0x40 fmt=fp32 itof\n"
                     "barrier vectors\nbarrier all", cfg)
    f = [tile_isa.decode(w) for w in words]
    assert (f[0]["op"], f[0]["ymode"], f[0]["y"], f[0]["act"], f[0]["fmt"]) == (1, 1, 0x200, 1, 2)
    assert (f[0]["x_addr"], f[0]["d_addr"], f[0]["rows"], f[0]["cols"]) == (0x100, 0x2000, 4, 8)
    assert (f[1]["op"], f[1]["ymode"], f[1]["y"]) == (0, 0, 0)
    assert (f[2]["op"], f[2]["ymode"], f[2]["act"], f[2]["red"]) == (2, 0, 2, 2)
    assert (f[3]["op"], f[3]["ymode"], f[3]["itof"]) == (6, 2, 1)
    assert f[4] == {"opcode": 4, "loads": 0, "stores": 0, "matmuls": 0, "vectors": 1}
    assert f[5] == {"opcode": 4, "loads": 1, "stores": 1, "matmuls": 1, "vectors": 1}
    assert disassemble_word(words[0]) == ("vector  add, x=0x0100, d=0x2000, rows=4, cols=8, yrow=0x0200,"
                                          " act=relu, fmt=bf16t")
    assert disassemble_word(words[1]) == "vector  pass, x=0x0000, d=0x0000, rows=1, cols=1"
    assert disassemble_word(words[4]) == "barrier vectors"

    p = Program(cfg)
    p.vector("add", x=0x100, d=0x2000, rows=4, cols=8, yrow=0x200, act="relu", fmt="bf16t")
    p.vector("pass", x=0, d=0, rows=1, cols=1)
    one = dict(x=0, d=0, rows=1, cols=1)
    p.vector("mul", **one, imm=0.1).vector("mul", **one, imm=1 + 2 ** -24)     # (a tie: to even)
    p.vector("mul", **one, imm=-0.0).vector("max", **one, imm=float("-inf"))
    p.vector("iadd", **one, imm=-1).vector("add", **one, immbits=0x3F800000)
    p.vector("mul", **one, imm=2, itof=True, fmt="int8t")
    p.barrier("vectors")
    assert p.words[:2] == words[:2] and p.words[-1] == words[4]
    assert [w >> 96 for w in p.words[2:9]] == [0x3DCCCCCD, 0x3F800000, 0x80000000, 0xFF800000, 0xFFFFFFFF,
                                             0x3F800000, 0x40000000]
    assert tile_isa.decode(p.words[8])["fmt"] == 4 and tile_isa.decode(p.words[8])["itof"] == 1
    assert assemble(p.text(), cfg) == p.words
    with pytest.raises(ValueError, match=r"^instruction 10: vector: ACC_OVERFLOW: x region ends at 0x1010"):
        p.vector("pass", x=0xff0, d=0, rows=2, cols=1)
    with pytest.raises(ValueError, match=r"^instruction 10: vector: give at most one of"):
        p.vector("add", x=0, d=0, rows=1, cols=1, y=0, imm=1.0)


_VECTOR_PROGRAM = [
    "load    acc=0x0000, mem=0x1000, rows=4, bytes=64",      # x
    "load    acc=0x0400, mem=0x2000, rows=1, bytes=64",      # a bias row
    "load    sp=0x1000, mem=0x3000, rows=16, bytes=32",      # B of the MATMUL
    "barrier loads",
    "vector  add, x=0x0000, d=0x0000, rows=4, cols=16, yrow=0x0400, act=relu, fmt=bf16t",   # A^T: sp 0..0x100
    "barrier vectors",
    "matmul  bf16, m=4, n=16, k=16, a=0x0000, b=0x1000, acc=0x0800",
    "barrier matmuls",
    "vector  pass, x=0x0800, d=0x0c00, rows=4, cols=16, act=exp",          # reads the MATMUL's D
    "vector  mul, x=0x0c00, d=0x0c00, rows=4, cols=16, imm=0.5",           # VECTOR after VECTOR: in order
    "barrier vectors",
    "store   acc=0x0c00, mem=0x4000, rows=4, bytes=64",
    "load    acc=0x0800, mem=0x5000, rows=4, bytes=64",      # overwrites D, which the VECTOR has read
    "end",
]


@pytest.mark.parametrize(
    "drop, expect",
    [
        (None, []),
        ("barrier loads", ["vector [3] races with load [0]", "vector [3] races with load [1]",
                           "matmul [5] races with load [2]"]),
        ("barrier vectors", ["matmul [5] races with vector [4]"]),       # the first one
        ("barrier matmuls", ["vector [7] races with matmul [6]", "load [11] races with matmul [6]"]),
    ],
)
def test_vector_hazards(drop, expect):
    """The hazard rules of VECTOR (docs/isa.md): LOAD -> VECTOR needs `barrier loads`, VECTOR ->
    MATMUL and VECTOR -> STORE / LOAD need `barrier vectors`, MATMUL -> VECTOR `barrier matmuls`;
    VECTOR -> VECTOR nothing."""
    from tessera.runtime.isa import hazards

    program = list(_VECTOR_PROGRAM)
    if drop:
        program.remove(drop)
    cfg = preset("tiny")
    found = [msg for _, msg in hazards(assemble("\n".join(program), cfg), cfg)]
    assert [m.split(" on ")[0] for m in found] == expect, found
    if expect:
        assert f"put '{drop}' between them" in found[0]


def test_vector_hazards_before_store_and_load():
    from tessera.runtime.isa import hazards

    program = list(_VECTOR_PROGRAM)
    del program[10]                                          # the second `barrier vectors`
    cfg = preset("tiny")
    found = [msg.split(" on ")[0] for _, msg in hazards(assemble("\n".join(program), cfg), cfg)]
    assert found == ["store [10] races with vector [8]", "store [10] races with vector [9]",
                     "load [11] races with vector [8]"], found
    # the immediate is not an access; a reduction writes rows words; a scratchpad format writes sp
    (w,) = assemble("vector add, x=0x100, d=0x2000, rows=4, cols=8, imm=1, fmt=int8t", cfg)
    from tessera.runtime.isa import decode, regions

    assert regions(decode(w), 16) == ([("acc", 0x100, 0x180)], [("sp", 0x2000, 0x2080)])
    (w,) = assemble("vector sub, x=0x100, d=0x200, rows=4, cols=8, ycol=0x300, red=sum", cfg)
    assert regions(decode(w), 16) == ([("acc", 0x100, 0x180), ("acc", 0x300, 0x310)], [("acc", 0x200, 0x210)])
