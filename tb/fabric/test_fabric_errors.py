"""cocotb: malformed commands and memory errors on some tiles while another tile computes.

Each run starts four tiles together (one START). A *good* tile runs an INT8 GEMM of its own at its
own addresses (LOCAL loads, one MATMUL, STORE of whole 64-byte D rows); a *bad* tile first LOADs
and waits for it (so that it has traffic on the NoC too), then meets a malformed word. The host
polls the failing tiles until they stop and checks that a good tile is still RUNNING at that
moment: the errors fire while other work is in flight.

1. tile 0 good; tiles 1, 2, 3 get an unknown opcode, a scratchpad overflow and a misaligned
   scratchpad address;
2. tile 0 loads A from a region that answers SLVERR (stops with FAULT, the L2 counts a fill
   error); tile 1 gets a memory address out of range; tile 2 good; tile 3 is good too but stores
   D into the SLVERR region (whole lines, so the STORE allocates and never reads): it finishes,
   and the host's flush (``tessera.runtime.host.flush``) reports FLUSH_ERRORS, one per slice
   whose flush met an error, with one WB_ERRORS per line of that D, while tile 2's D is written
   back correctly;
3. all four tiles good, no flush error: the fabric keeps working.

Every good tile's D is bit-exact against the golden model, every failing tile has the documented
error code (docs/isa.md) and its pc on the bad word. Nothing may hang: the ACTIVE watchdog of
``wait_idle``, a poll limit, and the test's time limit (about 8 times the simulated time needed).

The host sequences are the runtime's (:mod:`tessera.runtime.host`: ``launch``, ``status``,
``wait_idle`` polling ACTIVE every 32 cycles, ``flush``), driven by ``Host.run`` (``tb/fabric/host.py``).
"""

from __future__ import annotations

import cocotb
import numpy as np

import tessera.tb
from tessera.rtl.config import fabric_from_dict
from tessera.rtl.fabric.csr_map import REG, slice_reg
from tessera.runtime import host as hs
from tessera.runtime.asm import Program, assemble
from tessera.tb.fabric.run_gemm import start_fabric
from tessera.tb.models.gemm import gemm
from tessera.tb.stream import rng_for

M, N, K = 8, 16, 24                     # D rows of 16 int32 = 64 bytes: one whole L2 line each
AT = {t: (0x1000 + 0x4000 * t, 0x2000 + 0x4000 * t, 0x3000 + 0x4000 * t) for t in range(4)}  # A, B, D
BAD_AT = 0x20000                        # [BAD_AT, BAD_AT + 0x1000) answers SLVERR
ERR = {"ILLEGAL_OPCODE": 1, "BAD_SIZE": 4, "MISALIGNED": 5, "ADDR_RANGE": 6, "SP_OVERFLOW": 7, "FAULT": 9}
MAX_CYCLES = 20_000                     # ACTIVE watchdog per run (a run takes under 1000 cycles)
POLL = 32


def small_gemm(cfg, rng, a_at, b_at, d_at):
    """A one-tile INT8 GEMM: (program words, a, b, memory image (A^T, B, zeroed D), D address)."""
    w = cfg.tile.word_bytes
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    b = rng.integers(-128, 128, (K, N), dtype=np.int8)
    p = Program(cfg)
    pitch_m, pitch_n = -(-M // w) * w, -(-N // w) * w
    half = cfg.tile.scratchpad_bytes // 2
    p.load(sp=0x0, mem=a_at, rows=K, bytes=M, stride=pitch_m)
    p.load(sp=half, mem=b_at, rows=K, bytes=N, stride=pitch_n)
    p.barrier("loads")
    p.matmul("int8", m=M, n=N, k=K, a=0, b=half, acc=0)
    p.barrier("matmuls")
    p.store(acc=0, mem=d_at, rows=M, bytes=4 * N)
    p.end()
    at = np.zeros((K, pitch_m), np.int8)
    at[:, :M] = a.T
    bb = np.zeros((K, pitch_n), np.int8)
    bb[:, :N] = b
    image = [(a_at, at.tobytes()), (b_at, bb.tobytes()), (d_at, bytes(4 * M * N))]
    return list(p.words), a, b, image, d_at


def bad_program(cfg, name, tile):
    """(program words, pc of the bad word): a valid LOAD of the tile's A area and its BARRIER,
    then the malformed word ``name``, then END."""
    top = 1 << cfg.cache.addr_bits
    sp = cfg.tile.scratchpad_bytes
    w = cfg.tile.word_bytes
    line = {
        "ILLEGAL_OPCODE": None,
        "SP_OVERFLOW": f"load sp={sp - w}, mem=0, rows=2, bytes={w}",
        "MISALIGNED": f"load sp=0x8, mem=0, rows=1, bytes={w}",
        "ADDR_RANGE": f"load sp=0, mem={top - w}, rows=2, bytes={w}",
    }[name]
    prefix = assemble(f"load sp=0, mem={AT[tile][0]}, rows={K}, bytes={w}\nbarrier loads", cfg)
    bad = 8 if line is None else assemble(line, cfg, validate=False)[0]     # opcode 8: illegal
    return prefix + [bad] + assemble("end", cfg), len(prefix)


@cocotb.test(timeout_time=300, timeout_unit="us")     # about 40 us of simulated time are needed
async def errors_are_contained(dut):
    params = tessera.tb.params()
    cfg = fabric_from_dict(params["cfg"])
    assert cfg.tiles >= 4, "needs four tiles"
    rng = np.random.default_rng(rng_for("fabric-errors").randrange(1 << 30))
    params["error_ranges"] = [(BAD_AT, BAD_AT + 0x1000)]
    mem, host = await start_fabric(dut, cfg, params)

    async def l2_count(name):
        return sum([await host.read(slice_reg(s, name))
                    for s in range(cfg.tiles)])

    async def run(programs, images, watch, witness):
        """Run ``programs`` (tile -> words); poll the tiles ``watch`` until all have stopped and
        return the state of tile ``witness`` at that moment; then wait and flush.
        Returns (statuses, flush, witness state)."""
        for image in images:
            for addr, data in image:
                mem.write(addr, data)
        pos = await host.run(hs.launch(programs))
        pending = set(watch)
        for _ in range(2000):           # an AXI-Lite read takes a few cycles
            pending = {t for t in pending
                       if (await host.run(hs.status(t)))["state"] not in ("ERROR", "DONE")}
            if not pending:
                break
        assert not pending, f"tiles {pending} still running after 2000 status polls"
        witness_state = (await host.run(hs.status(witness)))["state"]
        idle = await host.run(hs.wait_idle(programs, pos, max_cycles=MAX_CYCLES, poll=POLL))
        return idle.statuses, await host.run(hs.flush(invalidate=True)), witness_state

    def result(d_at):
        return np.frombuffer(mem.read(d_at, 4 * M * N), np.int32).reshape(M, N)

    def gemm_on(t, a_at=None, d_at=None):
        a0, b0, d0 = AT[t]
        return small_gemm(cfg, rng, a0 if a_at is None else a_at, b0, d0 if d_at is None else d_at)

    def check_bad(statuses, t, name, pc=None):
        st = statuses[t]
        assert st["state"] == "ERROR", f"{name}: tile {t} {st}"
        assert st["error"] == ERR[name], f"{name}: tile {t} error {st['error']}, want {ERR[name]}"
        assert pc is None or st["pc"] == pc, f"{name}: tile {t} pc {st['pc']}, want {pc}"

    def check_good(statuses, t, words, a, b, d_at, what):
        assert statuses[t]["state"] == "DONE", f"{what}: tile {t} {statuses[t]}"
        assert statuses[t]["pc"] == len(words) - 1, f"{what}: tile {t} {statuses[t]}"
        assert np.array_equal(result(d_at), gemm(a, b, None, "int8")), f"{what}: tile {t} result wrong"

    # -- 1. malformed commands on tiles 1, 2, 3 while tile 0 computes ---------------------------
    w0, a0, b0, image0, d0 = gemm_on(0)
    cases = {1: "ILLEGAL_OPCODE", 2: "SP_OVERFLOW", 3: "MISALIGNED"}
    bad = {t: bad_program(cfg, name, t) for t, name in cases.items()}
    statuses, flush, state0 = await run({0: w0, **{t: w for t, (w, _) in bad.items()}}, [image0],
                                        watch=cases, witness=0)
    assert state0 == "RUN", f"tile 0 was {state0}, not RUN, when tiles 1..3 had stopped"
    check_good(statuses, 0, w0, a0, b0, d0, "malformed commands")
    for t, name in cases.items():
        check_bad(statuses, t, name, bad[t][1])
    assert flush.errors == 0, f"{flush.errors} flush errors"
    dut._log.info("%s on tiles 1..3 while tile 0 ran: contained, tile 0 DONE and bit-exact",
                  ", ".join(cases.values()))

    # -- 2. SLVERR on a fill (tile 0), address out of range (tile 1), SLVERR on a write-back
    #       (tile 3), while tile 2 computes ----------------------------------------------------------
    fills_before, wb_before = await l2_count("fill_errors"), await l2_count("wb_errors")
    w0, *_ = gemm_on(0, a_at=BAD_AT)
    w1, pc1 = bad_program(cfg, "ADDR_RANGE", 1)
    w2, a2, b2, image2, d2 = gemm_on(2)
    w3, a3, b3, image3, d3 = gemm_on(3, d_at=BAD_AT + 0x800)
    statuses, flush, state2 = await run({0: w0, 1: w1, 2: w2, 3: w3}, [image2, image3], watch=(0, 1),
                                        witness=2)
    fills = await l2_count("fill_errors") - fills_before
    wb_errors = await l2_count("wb_errors") - wb_before
    assert state2 == "RUN", f"tile 2 was {state2}, not RUN, when tiles 0 and 1 had stopped"
    check_bad(statuses, 0, "FAULT")             # pc: wherever the sequencer was when the fill failed
    assert fills > 0, "no fill error counted by the L2 slices"
    check_bad(statuses, 1, "ADDR_RANGE", pc1)
    check_good(statuses, 2, w2, a2, b2, d2, "memory errors")
    assert statuses[3]["state"] == "DONE", f"tile 3 {statuses[3]}"
    line = cfg.cache.line_bytes
    lines = range(d3 // line, (d3 + 4 * M * N) // line)
    slices = len({ln % cfg.tiles for ln in lines})          # line-interleaved (docs/fabric.md)
    # FLUSH_ERRORS counts the slices whose flush met a write-back error; WB_ERRORS each line
    assert flush.errors == slices, f"flush reported {flush.errors} errors, want one per slice: {slices}"
    assert wb_errors == len(lines), f"{wb_errors} write-back errors counted, want {len(lines)}"
    assert not any(mem.read(d3, 4 * M * N)), "the memory took a write it refused"
    dut._log.info("SLVERR on a fill: tile 0 FAULT (%d fill errors); ADDR_RANGE on tile 1; SLVERR on "
                  "tile 3's write-back: flush reports %d errors (%d lines); tile 2 DONE, bit-exact",
                  fills, flush.errors, wb_errors)

    # -- 3. the fabric keeps working ----------------------------------------------------------------
    runs = {t: gemm_on(t) for t in range(4)}
    statuses, flush, _ = await run({t: r[0] for t, r in runs.items()}, [r[3] for r in runs.values()],
                                   watch=(), witness=0)
    for t, (w, a, b, _, d_at) in runs.items():
        check_good(statuses, t, w, a, b, d_at, "clean run")
    assert flush.errors == 0, f"{flush.errors} flush errors on a clean run"
    assert await host.read(REG["ACTIVE"]) == 0
