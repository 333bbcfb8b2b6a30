"""Tile ISA assembler / disassembler, and the agreement of rtl/tile/isa.py with the golden ISA model."""

import random

import pytest

from tessera.cli.main import main
from tessera.rtl.config import preset
from tessera.rtl.tile import isa
from tessera.runtime.asm import assemble, disassemble, disassemble_word, read_words, write_words
from tessera.tb.models import tile_isa
from tessera.tb.tile.programs import MALFORMED_KINDS, malformed, random_program

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
                         ("END", [isa.Opcode.END]), ("SYNC", [isa.Opcode.SYNC])]:
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
        assert "#" not in text, text                  # no word flagged as malformed
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
    ],
)
def test_assembler_errors_name_the_line(src, match):
    with pytest.raises(ValueError, match=match):
        assemble(src, preset("tiny"))


def test_syntax_variants():
    cfg = preset("tiny")
    a = assemble("LOAD sp=0x10 mem=0x20 rows=2 bytes=20 stride=32  ; comment\nbarrier all\nEnd", cfg)
    b = assemble("load sp=16, mem=32, rows=2, bytes=20  # stride defaults to the pitch\n"
                 "barrier loads, stores, matmuls\nend", cfg)
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
    assert tile_isa.check(0x7, cfg)[0] == tile_isa.ERRORS["ILLEGAL_OPCODE"]


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
