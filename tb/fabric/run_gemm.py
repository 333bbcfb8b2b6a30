"""cocotb: run GEMM jobs on the Verilated fabric as the host would (``tessera gemm``, tests).

Parameters (``tessera.tb.params()``): ``cfg`` (a FabricConfig as a dict), ``jobs`` (list of
``{"dir", "dtype", "multicast"}``; each dir holds ``A.npy``, ``B.npy`` and maybe ``C.npy``),
``mem_latency``, ``mem_bytes_per_cycle``, ``max_cycles`` (watchdog per job, default
:func:`job_cycle_limit`), ``progress`` (a file the CLI watches for its progress bar).

Per job: the runtime (``sim/runtime/gemm_map.py``) plans the GEMM; its inputs go into memory (the
host's backdoor into ``AxiMemory``); every tile is cleared, gets its program through the
CSRs and is started; the host polls ``ACTIVE`` (pushing the rest of long programs as queue space
frees) until no tile runs, checks every tile's status, reads the counters, flushes and
invalidates the L2 (``flush_errors``: memory write errors of that flush, from FLUSH_ERRORS) and
reads D back from memory. Each job writes ``D.npy`` and ``result.json`` into its dir; checking
against the golden model is the caller's business.

Nothing hangs: besides the ACTIVE watchdog (``max_cycles``) and the flush timeout, every job runs
under a simulated-time limit (:func:`job_time_limit_ns`, scaled to its size), so that a host
access the fabric never answers fails the test instead of stalling it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, with_timeout

import tessera.tb
from tessera.rtl.config import fabric_from_dict
from tessera.rtl.fabric.csr_map import ID_VALUE, REG
from tessera.rtl.fabric.fabric import mem_prefixes
from tessera.runtime.gemm_map import plan_gemm
from tessera.tb.common.axi_memory import AxiMemory
from tessera.tb.fabric.host import Host, counter_delta

POLL = 256
CLOCK_NS = 10
START_LIMIT_NS = CLOCK_NS * 1000      # reset and the ID read


def job_cycle_limit(cfg, m: int, n: int, k: int, *, elem_bytes: int = 2, mem_latency: int = 100,
                    bytes_per_cycle: float | None = None) -> int:
    """Cycles a job may keep a tile active before the watchdog fails it: 50x the ideal cycle count
    (every PE busy), plus 10x the time to move its data (A, B, C in, D out) at the memory
    bandwidth, plus 100 memory latencies, plus 20k. (A 1 x 1 x 1 job on ``tiny`` takes about 250
    cycles and may take 26k; 512^3 BF16 on ``default`` about 155k and may take 6.8M.)"""
    ideal = m * n * k / (cfg.tiles * cfg.tensor.rows * cfg.tensor.cols)
    rate = bytes_per_cycle or cfg.mem_ports * cfg.cache.data_bytes
    data = (m * k + k * n) * elem_bytes + 8 * m * n
    return int(50 * ideal + 10 * data / rate) + 100 * mem_latency + 20_000


def flush_cycle_limit(cfg, bytes_per_cycle: float | None = None) -> int:
    """Cycles a flush may take: 4x the time to write the whole L2 back, plus 10k."""
    l2 = cfg.tiles * cfg.cache.sets * cfg.cache.ways * cfg.cache.line_bytes
    rate = bytes_per_cycle or cfg.mem_ports * cfg.cache.data_bytes
    return int(4 * l2 / rate) + 10_000


def job_time_limit_ns(cfg, run_cycles: int, words: int, bytes_per_cycle=None) -> int:
    """Simulated time one job may take: its run watchdog (``run_cycles``) + the flush limit + host
    accesses (about 20 cycles per instruction word pushed, 50k for clearing, counters, polling)."""
    return CLOCK_NS * (run_cycles + flush_cycle_limit(cfg, bytes_per_cycle) + 20 * words + 50_000)


async def start_fabric(dut, cfg, p):
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    # Bandwidth: ``mem_bytes_per_cycle`` over all ports, default one beat (read or write) per port per cycle.
    ports, D, bw = mem_prefixes(cfg), cfg.cache.data_bytes, p.get("mem_bytes_per_cycle")
    mem = AxiMemory(dut, ports, dut.clk, data_bytes=D, latency=p.get("mem_latency", 100),
                    bytes_per_cycle=len(ports) * D if bw is None else bw,
                    error_ranges=[tuple(r) for r in p.get("error_ranges", [])])
    host = Host(dut, cfg.tiles)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    ident = await host.read(REG["ID"])
    assert ident == ID_VALUE, f"CSR ID reads {ident:#x}"
    return mem, host


async def launch(host, programs: dict) -> dict:
    """Clear every tile of ``programs`` (tile -> word list), clear the cycle counter, push as much
    of each program as its queue takes and start those tiles together. Returns tile -> words
    pushed (for :func:`wait_idle`)."""
    tiles = sorted(programs)
    for t in tiles:
        await host.clear(t)
    await host.write(REG["CYCLES_LO"], 0)
    pos = {t: await host.push(t, programs[t]) for t in tiles}
    await host.write(REG["START"], sum(1 << t for t in tiles))
    return pos


async def run_programs(dut, host, programs: dict, *, max_cycles: int, progress=None, expect_cycles=1,
                       label: str = ""):
    """Clear, load and start every tile of ``programs`` (tile -> word list); wait until none is active.

    Returns (cycles, statuses)."""
    pos = await launch(host, programs)
    return await wait_idle(dut, host, programs, pos, max_cycles=max_cycles, progress=progress,
                           expect_cycles=expect_cycles, label=label)


async def wait_idle(dut, host, programs: dict, pos: dict, *, max_cycles: int, progress=None,
                    expect_cycles=1, label: str = "", poll: int = POLL):
    """Poll ACTIVE every ``poll`` cycles (pushing the rest of the programs as queue space frees)
    until no tile runs; fail after ``max_cycles``. Returns (cycles, statuses)."""
    tiles = sorted(programs)
    waited = 0
    last_report = 0.0
    while True:
        await ClockCycles(dut.clk, poll)
        waited += poll
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


async def run_job(dut, cfg, p, mem, host, work: Path, plan, a, b, c, max_cycles: int):
    """One job of ``p["jobs"]`` (planned): memory image, programs, run, counters, flush, D."""
    m, n, k = plan.m, plan.n, plan.k
    for addr, data in plan.pack(a, b, c):
        mem.write(addr, data)
    programs = {t: list(prog.words) for t, prog in plan.programs.items()}
    before = await host.counters()
    mem_before = (mem.read_bytes, mem.write_bytes)
    ideal = m * n * k / (cfg.tiles * cfg.tensor.rows * cfg.tensor.cols)
    cycles, statuses = await run_programs(
        dut, host, programs, max_cycles=max_cycles,
        progress=p.get("progress"), expect_cycles=int(ideal / 0.9) + 1, label=work.name)
    after = await host.counters()
    dram_read = mem.read_bytes - mem_before[0]
    dram_write_run = mem.write_bytes - mem_before[1]
    flush = await host.flush(invalidate=True,
                             timeout=flush_cycle_limit(cfg, p.get("mem_bytes_per_cycle")))
    dram_write = mem.write_bytes - mem_before[1]
    d = plan.unpack(mem.read)
    np.save(work / "D.npy", d)
    delta = counter_delta(after, before)
    result = {
        "cycles": cycles,
        "flush_cycles": flush.cycles,
        "flush_errors": flush.errors,
        "statuses": {str(t): s for t, s in statuses.items()},
        "dram_read_bytes": dram_read,
        "dram_write_bytes": dram_write,
        "dram_write_bytes_during_run": dram_write_run,
        "counters": delta,
        "plan": plan.summary(),
    }
    (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    dut._log.info("job %s: %d cycles, statuses %s, flush errors %d", work.name, cycles,
                  {t: s["state"] for t, s in statuses.items()}, flush.errors)


@cocotb.test()
async def run_jobs(dut):
    p = tessera.tb.params()
    cfg = fabric_from_dict(p["cfg"])
    mem, host = await with_timeout(start_fabric(dut, cfg, p), START_LIMIT_NS, "ns")
    for job in p["jobs"]:
        work = Path(job["dir"])
        a, b = np.load(work / "A.npy"), np.load(work / "B.npy")
        c = np.load(work / "C.npy") if (work / "C.npy").exists() else None
        (m, k), n = a.shape, b.shape[1]
        plan = plan_gemm(cfg, m, n, k, job["dtype"], has_c=c is not None, multicast=job["multicast"])
        words = sum(len(w) for w in plan.words.values())
        max_cycles = p.get("max_cycles") or job_cycle_limit(
            cfg, m, n, k, elem_bytes=plan.e, mem_latency=p.get("mem_latency", 100),
            bytes_per_cycle=p.get("mem_bytes_per_cycle"))
        limit = job_time_limit_ns(cfg, max_cycles, words, p.get("mem_bytes_per_cycle"))
        await with_timeout(run_job(dut, cfg, p, mem, host, work, plan, a, b, c, max_cycles), limit, "ns")
