"""The fabric's host sequence, written once and sans-IO: generators of bus operations (docs/csr.md).

Every function here is a generator. It does no I/O itself: it *yields* operations, and whoever
drives it performs each one and sends the answer back (``value = yield op``). A function's result
is the generator's return value, so sequences compose with ``yield from``::

    run = yield from run_programs(programs, max_cycles=100_000)

The same code thus runs the fabric in the cocotb testbench (the driver is ``Host.run`` in
``tb/fabric/host.py``: AXI4-Lite master, clock, backdoor of the memory model) and on the FPGA
board (:func:`tessera.runtime.board_gemm.run_sync` over the serial port; the cocotb test of the
board's link drives it over a simulated UART). Register map: :mod:`tessera.rtl.fabric.csr_map`.

Operations (tuples; the answer a driver sends back in brackets):

``("read", addr)``  [the 32-bit value]
    Read the CSR (host-port register) at byte address ``addr``.
``("write", addr, value)``  [None]
    Write the 32-bit ``value`` (already masked to 32 bits) to ``addr``.
``("wait", cycles)``  [None]
    Let the fabric run ``cycles`` clock cycles before the next operation. The simulation waits
    that many cycles; the board does nothing (one access over the UART already takes about a
    millisecond, tens of thousands of fabric cycles), so there polls follow each other directly.
``("progress",)``  [None]
    A point, once per ``ACTIVE`` poll of :func:`wait_idle`, where a driver may report progress.
    The simulation driver reads ``CYCLES`` there for its progress file, at most every 0.5 s of
    wall time (when asked to; those reads depend on the wall clock); the board does nothing.
``("mem_write", addr, data)``  [None]
    Put ``data`` (bytes) into the fabric's memory at byte address ``addr`` (the fabric's own
    address). The simulation writes its memory model by backdoor (no simulated time); the board
    writes 32-bit words through the bridge at ``HOST_MEM_BASE + addr`` (``addr`` word-aligned,
    ``data`` padded with zero bytes to whole words).
``("mem_read", addr, nbytes)``  [``nbytes`` bytes]
    Read the fabric's memory: backdoor in the simulation, 32-bit reads through the bridge on the
    board.
``("mem_stats",)``  [``{"read_bytes", "write_bytes"}`` or None]
    The memory's traffic counters so far (bytes the fabric read and wrote over its AXI4 ports),
    where the memory has them (the simulation's model); None on the board.

Polling and its timing: :func:`wait_idle` waits ``poll`` cycles (default :data:`POLL` = 256),
pushes the rest of long programs as their queues drain, reads ``ACTIVE``, yields ``progress``,
and repeats until ``ACTIVE`` reads 0; its watchdog fails once more than ``max_cycles`` cycles have
been waited. :func:`flush` reads ``FLUSH`` right after starting the flush and, while it reads
non-zero, waits :data:`FLUSH_POLL` = 16 cycles and reads it again (timeout in waited cycles).
Every cycle count of the simulation (``tessera gemm``, docs/results.md) was measured with this
exact sequence; changing an operation or a wait changes them.
"""

from __future__ import annotations

from typing import NamedTuple

from tessera.rtl.fabric.csr_map import (
    GLOBAL_COUNTERS,
    ID_VALUE,
    L2_COUNTERS,
    REG,
    TILE_COUNTERS,
    decode_status,
    slice_reg,
    tile_reg,
)

__all__ = [
    "POLL", "FLUSH_POLL", "FabricError", "Flush", "Run",
    "check_id", "clear", "push", "launch", "wait_idle", "run_programs", "cycles", "status", "statuses",
    "counters", "counter_delta", "flush", "gemm_job", "job_cycle_limit", "flush_cycle_limit",
    "job_record",
]

POLL = 256              # cycles between two ACTIVE polls of wait_idle
FLUSH_POLL = 16         # cycles between two FLUSH polls of flush


class FabricError(RuntimeError):
    """The fabric reported an error, did not finish in time, or is not the fabric."""


class Run(NamedTuple):
    cycles: int                 # the CYCLES counter: cycles in which any tile was active
    statuses: dict              # tile -> decode_status(STATUS)
    polls: int                  # ACTIVE polls until it read 0


class Flush(NamedTuple):
    cycles: int                 # cycles waited until FLUSH read 0 (FLUSH_POLL per busy poll)
    errors: int                 # memory write errors of this flush (FLUSH_ERRORS after - before)


def check_id():
    """Read ``ID``; raise :class:`FabricError` unless it is ``ID_VALUE`` ("TESS")."""
    ident = yield ("read", REG["ID"])
    if ident != ID_VALUE:
        raise FabricError(f"CSR ID reads {ident:#010x}, expected {ID_VALUE:#010x}: not the fabric?")


def clear(t: int):
    """Clear tile ``t`` (CONTROL = 1): empty its queue, state IDLE, pc 0."""
    yield ("write", tile_reg(t, "CONTROL"), 1)


def push(t: int, words, start: int = 0):
    """Push ``words[start:]`` into tile ``t``'s command queue as far as there is room (one QUEUE
    read for the free entries, then CMD0..CMD3 per 128-bit word, CMD3 last); return the new start."""
    free = (yield ("read", tile_reg(t, "QUEUE"))) & 0xFFFF
    end = min(len(words), start + free)
    base = tile_reg(t, "CMD0")
    for w in words[start:end]:
        for i in range(4):
            yield ("write", base + 4 * i, (w >> (32 * i)) & 0xFFFF_FFFF)
    return end


def launch(programs: dict):
    """Clear every tile of ``programs`` (tile -> word list), clear the cycle counter, push as much
    of each program as its queue takes and start those tiles with one START write. Returns tile ->
    words pushed (for :func:`wait_idle`)."""
    tiles = sorted(programs)
    for t in tiles:
        yield from clear(t)
    yield ("write", REG["CYCLES_LO"], 0)
    pos = {}
    for t in tiles:
        pos[t] = yield from push(t, programs[t])
    yield ("write", REG["START"], sum(1 << t for t in tiles))
    return pos


def wait_idle(programs: dict, pos: dict, *, max_cycles: int, poll: int = POLL):
    """Wait until no tile runs: each poll waits ``poll`` cycles, pushes the rest of every program
    not yet wholly queued (``pos``: tile -> words pushed, updated), reads ``ACTIVE`` and yields
    ``progress``. After the poll that reads ``ACTIVE`` = 0, reads CYCLES and every tile's STATUS.
    Raises :class:`FabricError` (with the tiles' statuses) once more than ``max_cycles`` cycles
    have been waited. Returns a :class:`Run`."""
    tiles = sorted(programs)
    waited = polls = 0
    while True:
        yield ("wait", poll)
        waited += poll
        for t in tiles:
            if pos[t] < len(programs[t]):
                pos[t] = yield from push(t, programs[t], pos[t])
        active = yield ("read", REG["ACTIVE"])
        polls += 1
        yield ("progress",)
        if not active:
            break
        if waited > max_cycles:
            states = yield from statuses(tiles)
            raise FabricError(f"fabric still active after {waited} cycles ({polls} polls); tiles {states}")
    total = yield from cycles()
    return Run(total, (yield from statuses(tiles)), polls)


def run_programs(programs: dict, *, max_cycles: int, poll: int = POLL):
    """:func:`launch` then :func:`wait_idle`: clear, load and start every tile of ``programs``
    (tile -> word list) and wait until none is active. Returns a :class:`Run`."""
    pos = yield from launch(programs)
    return (yield from wait_idle(programs, pos, max_cycles=max_cycles, poll=poll))


def cycles():
    """The 64-bit CYCLES counter: CYCLES_LO first (it snapshots the high word), then CYCLES_HI."""
    lo = yield ("read", REG["CYCLES_LO"])
    hi = yield ("read", REG["CYCLES_HI"])
    return (hi << 32) | lo


def status(t: int):
    """Tile ``t``'s STATUS, decoded: ``{"state", "error", "pc"}``."""
    return decode_status((yield ("read", tile_reg(t, "STATUS"))))


def statuses(tiles):
    """:func:`status` of each of ``tiles``, in that order: tile -> status."""
    out = {}
    for t in tiles:
        out[t] = yield from status(t)
    return out


def counters(tiles: int):
    """Every performance counter: the global ones (``GLOBAL_COUNTERS``), then each tile's
    (``TILE_COUNTERS``), then each L2 slice's (``L2_COUNTERS``; one slice per tile), one read each
    in that order. Returns ``{name: value, ..., "tiles": [{...}], "slices": [{...}]}``."""
    out = {}
    for n in GLOBAL_COUNTERS:
        out[n] = yield ("read", REG[n.upper()])
    out["tiles"], out["slices"] = [], []
    for t in range(tiles):
        out["tiles"].append({})
        for n in TILE_COUNTERS:
            out["tiles"][t][n] = yield ("read", tile_reg(t, n.upper()))
    for s in range(tiles):
        out["slices"].append({})
        for n in L2_COUNTERS:
            out["slices"][s][n] = yield ("read", slice_reg(s, n))
    return out


def counter_delta(after, before):
    """Element-wise ``after - before`` of nested counter dicts/lists, modulo 2^32 (pure function)."""
    if isinstance(after, dict):
        return {k: counter_delta(after[k], before[k]) for k in after}
    if isinstance(after, list):
        return [counter_delta(a, b) for a, b in zip(after, before, strict=True)]
    return (after - before) & 0xFFFF_FFFF


def flush(invalidate: bool = True, *, timeout: int = 1_000_000, poll: int = FLUSH_POLL):
    """Write every dirty L2 line back (and invalidate), as docs/csr.md says: read FLUSH_ERRORS,
    pulse FLUSH (op = ``invalidate``), read FLUSH at once and, while it is non-zero, wait ``poll``
    cycles and read it again; then read FLUSH_ERRORS. Returns a :class:`Flush`: the cycles waited
    and the write-back errors of this flush (the counter's increase; a dirty line whose write-back
    the memory refused is lost, so D read back is then not the result). Raises
    :class:`FabricError` once more than ``timeout`` cycles have been waited."""
    errors_before = yield ("read", REG["FLUSH_ERRORS"])
    yield ("write", REG["FLUSH"], 1 | (int(invalidate) << 1))
    waited = 0
    while (yield ("read", REG["FLUSH"])):
        yield ("wait", poll)
        waited += poll
        if waited > timeout:
            raise FabricError(f"L2 flush did not finish in {timeout} cycles")
    errors = ((yield ("read", REG["FLUSH_ERRORS"])) - errors_before) & 0xFFFF_FFFF
    return Flush(waited, errors)


def gemm_job(plan, a, b, c=None, *, max_cycles: int, flush_timeout: int, poll: int = POLL,
             read_counters: bool = True, strict: bool = False, bias=None):
    """One GEMM on the fabric, planned by :func:`tessera.runtime.gemm_map.plan_gemm`, on A, B (and C,
    and the epilogue's ``bias`` when the plan has one).

    The sequence: ``mem_write`` the memory image (:meth:`GemmPlan.pack`); read every counter
    (``read_counters``); ``mem_stats``; :func:`run_programs` (watchdog ``max_cycles``, ACTIVE
    polled every ``poll`` cycles); read the counters again; ``mem_stats``; :func:`flush` with
    invalidate (``flush_timeout``); ``mem_stats``; ``mem_read`` D. With ``strict``, raises
    :class:`FabricError` when a tile did not end DONE (before flushing) or the flush reported
    memory errors; otherwise they are only reported. The ID is not checked (:func:`check_id`).

    Returns ``(d, info)``: D as :meth:`GemmPlan.unpack` gives it, and ``info`` with ``cycles``,
    ``flush_cycles``, ``flush_errors``, ``statuses`` (tile -> status), ``polls`` (ACTIVE polls);
    where the memory has counters, ``dram_read_bytes`` (during the run), ``dram_write_bytes`` (run
    and flush) and ``dram_write_bytes_during_run``; with ``read_counters``, ``counters`` (the
    increase of :func:`counters` over the run).
    """
    for addr, data in plan.pack(a, b, c, bias):
        yield ("mem_write", addr, bytes(data))
    tiles = plan.cfg.tiles
    before = (yield from counters(tiles)) if read_counters else None
    mem0 = yield ("mem_stats",)
    programs = {t: list(p.words) for t, p in plan.programs.items()}
    run = yield from run_programs(programs, max_cycles=max_cycles, poll=poll)
    if strict:
        bad = {t: s for t, s in run.statuses.items() if s["state"] != "DONE"}
        if bad:
            raise FabricError(f"tiles did not finish cleanly: {bad}")
    after = (yield from counters(tiles)) if read_counters else None
    mem1 = yield ("mem_stats",)
    fl = yield from flush(invalidate=True, timeout=flush_timeout)
    if strict and fl.errors:
        raise FabricError(f"L2 flush reported {fl.errors} memory write errors")
    mem2 = yield ("mem_stats",)
    raw = yield ("mem_read", plan.d_addr, plan.m * plan.d_pitch)
    d = plan.unpack(lambda addr, n: raw[addr - plan.d_addr:addr - plan.d_addr + n])
    info = {"cycles": run.cycles, "flush_cycles": fl.cycles, "flush_errors": fl.errors,
            "statuses": run.statuses, "polls": run.polls}
    if mem0 is not None:
        info["dram_read_bytes"] = mem1["read_bytes"] - mem0["read_bytes"]
        info["dram_write_bytes"] = mem2["write_bytes"] - mem0["write_bytes"]
        info["dram_write_bytes_during_run"] = mem1["write_bytes"] - mem0["write_bytes"]
    if read_counters:
        info["counters"] = counter_delta(after, before)
    return d, info


def mem_bandwidth(cfg, bytes_per_cycle: float | None = None) -> float:
    """The memory's bandwidth over all ports in bytes per cycle: ``bytes_per_cycle``, or by default
    one beat (``cache.data_bytes``) per port per cycle, as both simulation engines model it."""
    return bytes_per_cycle or cfg.mem_ports * cfg.cache.data_bytes


def job_cycle_limit(cfg, m: int, n: int, k: int, *, elem_bytes: int = 2, mem_latency: int = 100,
                    bytes_per_cycle: float | None = None) -> int:
    """Cycles a job may keep a tile active before the watchdog fails it: 50x the ideal cycle count
    (every PE busy), plus 10x the time to move its data (A, B, C in, D out) at the memory
    bandwidth, plus 100 memory latencies, plus 20k. (A 1 x 1 x 1 job on ``tiny`` takes about 250
    cycles and may take 26k; 512^3 BF16 on ``default`` about 155k and may take 6.8M.)"""
    ideal = m * n * k / (cfg.tiles * cfg.tensor.rows * cfg.tensor.cols)
    rate = mem_bandwidth(cfg, bytes_per_cycle)
    data = (m * k + k * n) * elem_bytes + 8 * m * n
    return int(50 * ideal + 10 * data / rate) + 100 * mem_latency + 20_000


def flush_cycle_limit(cfg, bytes_per_cycle: float | None = None) -> int:
    """Cycles a flush may take: 4x the time to write the whole L2 back, plus 10k."""
    l2 = cfg.tiles * cfg.cache.sets * cfg.cache.ways * cfg.cache.line_bytes
    rate = mem_bandwidth(cfg, bytes_per_cycle)
    return int(4 * l2 / rate) + 10_000


def job_record(plan, info: dict) -> dict:
    """The JSON record of one :func:`gemm_job` (its ``info``, the statuses keyed by strings, and
    the plan's summary), as both simulation engines write it to ``result.json``."""
    rec = {k: info[k] for k in ("cycles", "flush_cycles", "flush_errors")}
    rec["statuses"] = {str(t): s for t, s in info["statuses"].items()}
    for k in ("dram_read_bytes", "dram_write_bytes", "dram_write_bytes_during_run", "counters"):
        rec[k] = info[k]
    rec["plan"] = plan.summary()
    return rec
