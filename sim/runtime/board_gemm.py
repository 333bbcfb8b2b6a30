"""PC side of the fabric on the board: run a GEMM through the UART bridge (rtl/board/fabric_link.py).

Its command line is :mod:`tessera.cli.board_gemm`. The same runtime as the simulation
(:mod:`tessera.runtime.gemm_map`) plans the GEMM for the preset; the host
writes A, B (and C) into the board's block RAM at ``HOST_MEM_BASE + address``, clears and loads
every tile's command queue through the CSRs (docs/csr.md), starts them, polls ``ACTIVE`` while
pushing the rest of long programs, flushes the L2, reads D back and compares it bit for bit with
the golden model (``tb/models/gemm.py``).

:func:`gemm_session` is that host sequence written once as a generator of bus operations, so that
the PC (:func:`run_sync`, over the serial port) and the cocotb test of the board's link
(``tb/synth/test_fabric_link.py``, over a simulated UART) run the same code.
"""

from __future__ import annotations

import numpy as np

from tessera.rtl.board.axi_bram import HOST_MEM_BASE
from tessera.rtl.fabric.csr_map import ID_VALUE, REG, decode_status, tile_reg

__all__ = ["FabricError", "gemm_session", "run_sync"]


class FabricError(RuntimeError):
    """The fabric reported an error, or did not finish."""


def gemm_session(plan, a, b, c=None, *, max_polls: int = 100_000):
    """Generator of bus operations running ``plan`` (a :class:`tessera.runtime.gemm_map.GemmPlan`) on A, B, C.

    Yields ``("read", addr)`` (send back the 32-bit value) and ``("write", addr, value)`` (send
    back None). Returns ``(d, info)``: D as :meth:`GemmPlan.unpack` gives it and a dict with
    ``cycles`` (the fabric's CYCLES counter), ``statuses``, ``polls``, ``bus_ops``. Raises
    :class:`FabricError` when a tile ends in ERROR or the fabric is still active after
    ``max_polls`` polls.
    """
    ops = 0

    def rd(addr):
        nonlocal ops
        ops += 1
        return (yield ("read", addr))

    def wr(addr, value):
        nonlocal ops
        ops += 1
        yield ("write", addr, value & 0xFFFF_FFFF)

    ident = yield from rd(REG["ID"])
    if ident != ID_VALUE:
        raise FabricError(f"CSR ID reads {ident:#010x}, expected {ID_VALUE:#010x}: not the fabric bitstream?")
    for addr, blob in plan.pack(a, b, c):
        blob = bytes(blob) + bytes(-len(blob) % 4)
        for i, (word,) in enumerate(np.frombuffer(blob, dtype="<u4").reshape(-1, 1)):
            yield from wr(HOST_MEM_BASE + addr + 4 * i, int(word))
    programs = {t: list(p.words) for t, p in plan.programs.items()}
    tiles = sorted(programs)
    pos = dict.fromkeys(tiles, 0)

    def push(t):
        free = (yield from rd(tile_reg(t, "QUEUE"))) & 0xFFFF
        end = min(len(programs[t]), pos[t] + free)
        for w in programs[t][pos[t]:end]:
            for i in range(4):
                yield from wr(tile_reg(t, "CMD0") + 4 * i, w >> (32 * i))
        pos[t] = end

    for t in tiles:
        yield from wr(tile_reg(t, "CONTROL"), 1)  # clear
    yield from wr(REG["CYCLES_LO"], 0)
    for t in tiles:
        yield from push(t)
    yield from wr(REG["START"], sum(1 << t for t in tiles))
    polls = 0
    while True:
        for t in tiles:
            if pos[t] < len(programs[t]):
                yield from push(t)
        if not (yield from rd(REG["ACTIVE"])):
            break
        polls += 1
        if polls > max_polls:
            raise FabricError(f"fabric still active after {polls} polls")
    lo = yield from rd(REG["CYCLES_LO"])
    hi = yield from rd(REG["CYCLES_HI"])
    statuses = {}
    for t in tiles:
        v = yield from rd(tile_reg(t, "STATUS"))
        statuses[t] = decode_status(v)
    bad = {t: s for t, s in statuses.items() if s["state"] != "DONE"}
    if bad:
        raise FabricError(f"tiles did not finish cleanly: {bad}")
    yield from wr(REG["FLUSH"], 3)  # write back and invalidate
    while (yield from rd(REG["FLUSH"])):
        polls += 1
        if polls > max_polls:
            raise FabricError("L2 flush did not finish")
    flush_errors = yield from rd(REG["FLUSH_ERRORS"])
    if flush_errors:
        raise FabricError(f"L2 flush reported {flush_errors} memory errors")
    raw = bytearray()
    nbytes = plan.m * plan.d_pitch
    for i in range(0, nbytes, 4):
        raw += int((yield from rd(HOST_MEM_BASE + plan.d_addr + i))).to_bytes(4, "little")
    d = plan.unpack(lambda addr, n: raw[addr - plan.d_addr:addr - plan.d_addr + n])
    return d, {"cycles": (hi << 32) | lo, "statuses": statuses, "polls": polls, "bus_ops": ops}


def run_sync(session, board):
    """Drive a :func:`gemm_session` with ``board.read32`` / ``board.write32``; return its result."""
    value = None
    try:
        while True:
            op = session.send(value)
            value = board.read32(op[1]) if op[0] == "read" else board.write32(op[1], op[2])
    except StopIteration as done:
        return done.value
