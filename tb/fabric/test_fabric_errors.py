"""cocotb: malformed commands and memory errors on one tile while another tile computes.

Tile 0 runs a small GEMM of its own (LOCAL loads, one MATMUL, STORE) while tile 1 gets a program
whose second word is malformed; tile 0 must finish with the right result, tile 1 must stop with
the documented error code (docs/isa.md) and its pc on the bad word. Then tile 0 loads from a
memory region that answers SLVERR: it stops with FAULT and the L2 counts a fill error; the fabric
keeps working (a last clean run passes). Nothing may hang (watchdog in ``run_programs``).
"""

from __future__ import annotations

import cocotb
import numpy as np

import tb
from rtl.config import fabric_from_dict
from sim.asm import Program, assemble
from tb.fabric.host import REG
from tb.fabric.run_gemm import run_programs, start_fabric
from tb.models.gemm import gemm
from tb.stream import rng_for

A_AT, B_AT, D_AT, BAD_AT = 0x1000, 0x3000, 0x5000, 0x20000
ERR = {"ILLEGAL_OPCODE": 1, "BAD_SIZE": 4, "MISALIGNED": 5, "ADDR_RANGE": 6, "SP_OVERFLOW": 7, "FAULT": 9}


def small_gemm(cfg, rng, mem_at=A_AT):
    """A one-tile INT8 GEMM: (program words, a, b, memory image, D address)."""
    w = cfg.tile.word_bytes
    m, n, k = 8, 8, 24
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    p = Program(cfg)
    pitch_m, pitch_n = -(-m // w) * w, -(-n // w) * w
    p.load(sp=0x0, mem=mem_at, rows=k, bytes=m, stride=pitch_m)
    p.load(sp=cfg.tile.scratchpad_bytes // 2, mem=B_AT, rows=k, bytes=n, stride=pitch_n)
    p.barrier("loads")
    p.matmul("int8", m=m, n=n, k=k, a=0, b=cfg.tile.scratchpad_bytes // 2, acc=0)
    p.barrier("matmuls")
    p.store(acc=0, mem=D_AT, rows=m, bytes=4 * n)
    p.end()
    at = np.zeros((k, pitch_m), np.int8)
    at[:, :m] = a.T
    bb = np.zeros((k, pitch_n), np.int8)
    bb[:, :n] = b
    return p.words, a, b, [(mem_at, at.tobytes()), (B_AT, bb.tobytes())]


def bad_words(cfg):
    """(name, program words) of malformed programs: a harmless BARRIER, then the bad word."""
    top = 1 << cfg.cache.addr_bits
    sp = cfg.tile.scratchpad_bytes
    w = cfg.tile.word_bytes
    lines = {
        "ILLEGAL_OPCODE": None,
        "SP_OVERFLOW": f"load sp={sp - w}, mem=0, rows=2, bytes={w}",
        "MISALIGNED": f"load sp=0x8, mem=0, rows=1, bytes={w}",
        "ADDR_RANGE": f"load sp=0, mem={top - w}, rows=2, bytes={w}",
    }
    cases = []
    for name, line in lines.items():
        bad = 7 if line is None else assemble(line, cfg, validate=False)[0]
        cases.append((name, assemble("barrier loads", cfg) + [bad] + assemble("end", cfg)))
    return cases


@cocotb.test()
async def errors_are_contained(dut):
    params = tb.params()
    cfg = fabric_from_dict(params["cfg"])
    rng = np.random.default_rng(rng_for("fabric-errors").randrange(1 << 30))
    params["error_ranges"] = [(BAD_AT, BAD_AT + 0x1000)]
    mem, host = await start_fabric(dut, cfg, params)

    async def good_run(bad_program=None, mem_at=A_AT):
        words, a, b, image = small_gemm(cfg, rng, mem_at)
        for addr, data in image:
            mem.write(addr, data)
        mem.write(D_AT, bytes(8 * 8 * 4 + 0x100))
        programs = {0: list(words)}
        if bad_program is not None:
            programs[1] = bad_program
        _, statuses = await run_programs(dut, host, programs, max_cycles=200_000)
        await host.flush(invalidate=True)
        d = np.frombuffer(mem.read(D_AT, 8 * 8 * 4), np.int32).reshape(8, 8)
        return statuses, d, a, b

    for name, words in bad_words(cfg):
        statuses, d, a, b = await good_run(words)
        assert statuses[0]["state"] == "DONE", f"{name}: tile 0 {statuses[0]}"
        assert np.array_equal(d, gemm(a, b, None, "int8")), f"{name}: tile 0 result wrong"
        assert statuses[1]["state"] == "ERROR", f"{name}: tile 1 {statuses[1]}"
        got = statuses[1]["error"]
        assert got == ERR[name], f"{name}: tile 1 error {got}, want {ERR[name]}"
        assert statuses[1]["pc"] == 1, f"{name}: tile 1 pc {statuses[1]['pc']}"
        dut._log.info("%s on tile 1: contained (tile 0 DONE, bit-exact)", name)

    # An AXI error on tile 0's fill: FAULT on tile 0, counted by the L2; tile 1 unaffected.
    before = sum([await host.read(0x2000 + 0x40 * s + 4 * 7) for s in range(cfg.tiles)])
    statuses, *_ = await good_run(mem_at=BAD_AT)
    after = sum([await host.read(0x2000 + 0x40 * s + 4 * 7) for s in range(cfg.tiles)])
    assert statuses[0]["state"] == "ERROR" and statuses[0]["error"] == ERR["FAULT"], statuses[0]
    assert after > before, "no fill error counted by the L2 slices"
    dut._log.info("AXI SLVERR on a fill: tile 0 FAULT, %d fill errors counted", after - before)

    statuses, d, a, b = await good_run()
    assert statuses[0]["state"] == "DONE" and np.array_equal(d, gemm(a, b, None, "int8"))
    assert await host.read(REG["ACTIVE"]) == 0
