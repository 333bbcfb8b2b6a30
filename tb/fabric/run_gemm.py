"""cocotb: run GEMM jobs on the Verilated fabric as the host would (``tessera gemm``, tests).

Parameters (``tessera.tb.params()``): ``cfg`` (a FabricConfig as a dict), ``jobs`` (list of
``{"dir", "dtype", "multicast"}``; each dir holds ``A.npy``, ``B.npy`` and maybe ``C.npy``),
``mem_latency``, ``mem_bytes_per_cycle``, ``max_cycles`` (watchdog per job, default
:func:`job_cycle_limit`), ``progress`` (a file the CLI watches for its progress bar).

Per job: the runtime (``sim/runtime/gemm_map.py``) plans the GEMM, and the runtime's host
sequence :func:`tessera.runtime.host.gemm_job` runs it, driven by ``Host.run``
(``tb/fabric/host.py``): the inputs go into memory (the host's backdoor into ``AxiMemory``); the
counters are read; every tile is cleared, gets its program through the CSRs and is started; the
host polls ``ACTIVE`` every :data:`~tessera.runtime.host.POLL` = 256 cycles (pushing the rest of
long programs as queue space frees) until no tile runs, reads CYCLES and every tile's status,
reads the counters again, flushes and invalidates the L2 (``flush_errors``: memory write errors of
that flush, from FLUSH_ERRORS) and reads D back from memory. Each job writes ``D.npy`` and
``result.json`` into its dir; checking the statuses and D against the golden model is the
caller's business.

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
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, with_timeout

import tessera.tb
from tessera.rtl.config import fabric_from_dict
from tessera.rtl.fabric.fabric import mem_prefixes
from tessera.runtime.estimate import gemm_cycles
from tessera.runtime.host import (
    check_id,
    flush_cycle_limit,
    gemm_job,
    job_cycle_limit,
    job_record,
    mem_bandwidth,
)
from tessera.tb.common.axi_memory import AxiMemory
from tessera.tb.fabric.host import Host
from tessera.tools.cost import cycle_scale
from tessera.tools.fabric_run import plan_job

CLOCK_NS = 10
START_LIMIT_NS = CLOCK_NS * 1000      # reset and the ID read


def job_time_limit_ns(cfg, run_cycles: int, words: int, bytes_per_cycle=None) -> int:
    """Simulated time one job may take: its run watchdog (``run_cycles``) + the flush limit + host
    accesses (about 20 cycles per instruction word pushed, 50k for clearing, counters, polling)."""
    return CLOCK_NS * (run_cycles + flush_cycle_limit(cfg, bytes_per_cycle) + 20 * words + 50_000)


async def start_fabric(dut, cfg, p):
    """Clock, memory model, host; reset; check the CSR ID. Returns (mem, host)."""
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    # Bandwidth: ``mem_bytes_per_cycle`` over all ports, default one beat (read or write) per port per cycle.
    ports, D, bw = mem_prefixes(cfg), cfg.cache.data_bytes, p.get("mem_bytes_per_cycle")
    mem = AxiMemory(dut, ports, dut.clk, data_bytes=D, latency=p.get("mem_latency", 100),
                    bytes_per_cycle=mem_bandwidth(cfg, bw),
                    error_ranges=[tuple(r) for r in p.get("error_ranges", [])])
    host = Host(dut, mem, progress=p.get("progress"))
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    await host.run(check_id())
    return mem, host


async def run_job(dut, cfg, p, host, work: Path, plan, a, b, c, max_cycles: int, bias=None):
    """One job of ``p["jobs"]`` (planned): :func:`tessera.runtime.host.gemm_job` (memory image,
    counters, run, counters, flush, D) driven by ``host``; writes ``D.npy`` and ``result.json``."""
    expect = gemm_cycles(plan, mem_latency=p.get("mem_latency", 100),
                         mem_bytes_per_cycle=p.get("mem_bytes_per_cycle"))["total"]
    host.progress_job(work.name, round(expect * cycle_scale(cfg)))
    t0, ns0 = time.monotonic(), get_sim_time("ns")
    d, info = await host.run(gemm_job(
        plan, a, b, c, bias=bias, max_cycles=max_cycles,
        flush_timeout=flush_cycle_limit(cfg, p.get("mem_bytes_per_cycle"))))
    np.save(work / "D.npy", d)
    result = job_record(plan, info)
    result["sim_seconds"] = round(time.monotonic() - t0, 3)
    result["sim_cycles"] = int((get_sim_time("ns") - ns0) // CLOCK_NS)
    (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    dut._log.info("job %s: %d cycles, statuses %s, flush errors %d", work.name, info["cycles"],
                  {t: s["state"] for t, s in info["statuses"].items()}, info["flush_errors"])


@cocotb.test()
async def run_jobs(dut):
    p = tessera.tb.params()
    cfg = fabric_from_dict(p["cfg"])
    _, host = await with_timeout(start_fabric(dut, cfg, p), START_LIMIT_NS, "ns")
    for job in p["jobs"]:
        work = Path(job["dir"])
        plan, a, b, c, bias = plan_job(cfg, job)
        m, n, k = plan.m, plan.n, plan.k
        words = sum(len(w) for w in plan.words.values())
        max_cycles = p.get("max_cycles") or job_cycle_limit(
            cfg, m, n, k, elem_bytes=plan.e, mem_latency=p.get("mem_latency", 100),
            bytes_per_cycle=p.get("mem_bytes_per_cycle"))
        limit = job_time_limit_ns(cfg, max_cycles, words, p.get("mem_bytes_per_cycle"))
        await with_timeout(run_job(dut, cfg, p, host, work, plan, a, b, c, max_cycles, bias), limit, "ns")
