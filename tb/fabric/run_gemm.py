"""cocotb: run GEMM jobs on the Verilated fabric as the host would (``tessera gemm``, tests).

Parameters (``tb.params()``): ``cfg`` (a FabricConfig as a dict), ``jobs`` (list of
``{"dir", "dtype", "multicast"}``; each dir holds ``A.npy``, ``B.npy`` and maybe ``C.npy``),
``mem_latency``, ``mem_bytes_per_cycle``, ``max_cycles`` (watchdog per job), ``progress``
(a file the CLI watches for its progress bar).

Per job: the runtime (``sim/gemm_map.py``) plans the GEMM; its inputs go into memory (the
host's backdoor into ``FabricMemory``); every tile is cleared, gets its program through the
CSRs and is started; the host polls ``ACTIVE`` (pushing the rest of long programs as queue space
frees) until no tile runs, checks every tile's status, reads the counters, flushes and
invalidates the L2 and reads D back from memory. Each job writes ``D.npy`` and ``result.json``
into its dir; checking against the golden model is the caller's business.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

import tb
from rtl.config import fabric_from_dict
from rtl.fabric.fabric import mem_prefixes
from sim.gemm_map import plan_gemm
from tb.fabric.host import REG, Host, counter_delta
from tb.fabric.memory import FabricMemory

POLL = 256


async def start_fabric(dut, cfg, p):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    mem = FabricMemory(dut, mem_prefixes(cfg), dut.clk, data_bytes=cfg.cache.data_bytes,
                       latency=p.get("mem_latency", 100), bytes_per_cycle=p.get("mem_bytes_per_cycle"),
                       error_ranges=[tuple(r) for r in p.get("error_ranges", [])])
    host = Host(dut, cfg.tiles)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    ident = await host.read(REG["ID"])
    assert ident == 0x54455353, f"CSR ID reads {ident:#x}"
    return mem, host


async def run_programs(dut, host, programs: dict, *, max_cycles: int, progress=None, expect_cycles=1,
                       label: str = ""):
    """Clear, load and start every tile of ``programs`` (tile -> word list); wait until none is active.

    Returns (cycles, statuses)."""
    tiles = sorted(programs)
    for t in tiles:
        await host.clear(t)
    await host.write(REG["CYCLES_LO"], 0)
    pos = {t: await host.push(t, programs[t]) for t in tiles}
    await host.write(REG["START"], sum(1 << t for t in tiles))
    waited = 0
    last_report = 0.0
    while True:
        await ClockCycles(dut.clk, POLL)
        waited += POLL
        for t in tiles:
            if pos[t] < len(programs[t]):
                pos[t] = await host.push(t, programs[t], pos[t])
        active = await host.read(REG["ACTIVE"])
        if progress and time.time() - last_report > 0.5:
            last_report = time.time()
            cyc = await host.cycles()
            Path(progress).write_text(json.dumps({"cycles": cyc, "expect": expect_cycles, "job": label}))
        if not active:
            break
        if waited > max_cycles:
            states = [await host.status(t) for t in tiles]
            raise AssertionError(f"fabric still active after {waited} cycles; tiles {states}")
    cycles = await host.cycles()
    statuses = {t: await host.status(t) for t in tiles}
    return cycles, statuses


@cocotb.test()
async def run_jobs(dut):
    p = tb.params()
    cfg = fabric_from_dict(p["cfg"])
    mem, host = await start_fabric(dut, cfg, p)
    for job in p["jobs"]:
        work = Path(job["dir"])
        a, b = np.load(work / "A.npy"), np.load(work / "B.npy")
        c = np.load(work / "C.npy") if (work / "C.npy").exists() else None
        m, k = a.shape
        n = b.shape[1]
        plan = plan_gemm(cfg, m, n, k, job["dtype"], has_c=c is not None, multicast=job["multicast"])
        for addr, data in plan.pack(a, b, c):
            mem.write(addr, data)
        programs = {t: list(prog.words) for t, prog in plan.programs.items()}
        before = await host.counters()
        mem_before = (mem.read_bytes, mem.write_bytes)
        ideal = m * n * k / (cfg.tiles * cfg.tensor.rows * cfg.tensor.cols)
        cycles, statuses = await run_programs(
            dut, host, programs, max_cycles=p.get("max_cycles", int(50 * ideal) + 200_000),
            progress=p.get("progress"), expect_cycles=int(ideal / 0.9) + 1, label=work.name)
        after = await host.counters()
        dram_read = mem.read_bytes - mem_before[0]
        dram_write_run = mem.write_bytes - mem_before[1]
        flush_cycles = await host.flush(invalidate=True)
        dram_write = mem.write_bytes - mem_before[1]
        d = plan.unpack(mem.read)
        np.save(work / "D.npy", d)
        delta = counter_delta(after, before)
        result = {
            "cycles": cycles,
            "flush_cycles": flush_cycles,
            "statuses": {str(t): s for t, s in statuses.items()},
            "dram_read_bytes": dram_read,
            "dram_write_bytes": dram_write,
            "dram_write_bytes_during_run": dram_write_run,
            "counters": delta,
            "plan": plan.summary(),
        }
        (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        dut._log.info("job %s: %d cycles, statuses %s", work.name, cycles,
                      {t: s["state"] for t, s in statuses.items()})
