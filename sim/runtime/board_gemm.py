"""PC side of the fabric on the board: run a GEMM through the UART bridge (rtl/board/fabric_link.py).

Its command line is :mod:`tessera.cli.board_gemm`. The host sequence is the simulation's,
:mod:`tessera.runtime.host` (sans-IO generators of bus operations); this module runs it on the
board: :func:`over_bridge` lowers its operations to the 32-bit reads and writes the bridge
understands (the fabric's memory is block RAM at ``HOST_MEM_BASE + address``; ``wait`` and
``progress`` do nothing, every access over the serial line takes about a millisecond anyway),
and :func:`run_sync` performs those on a :class:`tessera.runtime.board_link.Board`.

:func:`gemm_session` is a GEMM on the board: check the ID, then :func:`tessera.runtime.host.gemm_job`
(the plan of :mod:`tessera.runtime.gemm_map` for the preset; A, B, C into block RAM; clear, load
and start the tiles; poll ``ACTIVE`` while pushing the rest of long programs; flush and invalidate
the L2; read D back), strictly: a tile not DONE or a flush error raises :class:`FabricError`.
The PC runs it with :func:`run_sync` over the serial port, the cocotb test of the board's link
(``tb/synth/test_fabric_link.py``) over a simulated UART; D is compared bit for bit with the golden
model (``tb/models/gemm.py``) by the callers.
"""

from __future__ import annotations

import numpy as np

from tessera.rtl.board.axi_bram import HOST_MEM_BASE
from tessera.runtime.host import FLUSH_POLL, POLL, FabricError, check_id, gemm_job

__all__ = ["FabricError", "gemm_session", "over_bridge", "run_sync"]


def over_bridge(session, tally: dict | None = None):
    """Lower a :mod:`tessera.runtime.host` session to the board bridge's operations.

    A generator yielding only ``("read", addr)`` and ``("write", addr, value)``; returns the
    session's result. ``read`` / ``write`` pass through; ``mem_write`` becomes 32-bit writes at
    ``HOST_MEM_BASE + addr`` (little-endian words, the data padded with zero bytes to a whole
    word), ``mem_read`` 32-bit reads there; ``wait`` and ``progress`` do nothing, and ``mem_stats``
    answers None (the block RAM counts nothing). ``tally``, if given, counts the operations yielded
    (``tally["read"]``, ``tally["write"]``).
    """
    def bus(op):
        if tally is not None:
            tally[op[0]] = tally.get(op[0], 0) + 1
        return (yield op)

    value = None
    while True:
        try:
            op = session.send(value)
        except StopIteration as done:
            return done.value
        kind, value = op[0], None
        if kind in ("read", "write"):
            value = yield from bus(op)
        elif kind == "mem_write":
            addr, data = op[1], bytes(op[2])
            if addr % 4:
                raise ValueError(f"mem_write at {addr:#x}: not word-aligned")
            data += bytes(-len(data) % 4)
            for i, word in enumerate(np.frombuffer(data, dtype="<u4")):
                yield from bus(("write", HOST_MEM_BASE + addr + 4 * i, int(word)))
        elif kind == "mem_read":
            addr, nbytes = op[1], op[2]
            if addr % 4:
                raise ValueError(f"mem_read at {addr:#x}: not word-aligned")
            raw = bytearray()
            for i in range(0, nbytes, 4):
                raw += int((yield from bus(("read", HOST_MEM_BASE + addr + i)))).to_bytes(4, "little")
            value = bytes(raw[:nbytes])
        elif kind not in ("wait", "progress", "mem_stats"):
            raise ValueError(f"unknown host operation {op!r}")


def run_sync(session, board):
    """Run a :mod:`tessera.runtime.host` session on ``board`` (``read32`` / ``write32``, e.g. a
    :class:`tessera.runtime.board_link.Board`), lowered by :func:`over_bridge`; return its result."""
    ops = over_bridge(session)
    value = None
    try:
        while True:
            op = ops.send(value)
            value = board.read32(op[1]) if op[0] == "read" else board.write32(op[1], op[2])
    except StopIteration as done:
        return done.value


def gemm_session(plan, a, b, c=None, *, max_polls: int = 100_000):
    """A GEMM on the board: ``plan`` (a :class:`tessera.runtime.gemm_map.GemmPlan`) on A, B, C.

    :func:`~tessera.runtime.host.check_id`, then :func:`~tessera.runtime.host.gemm_job` (strict,
    no counters), lowered by :func:`over_bridge`: yields only ``("read", addr)`` (send back the
    32-bit value) and ``("write", addr, value)`` (send back None). Returns ``(d, info)``: D as
    :meth:`GemmPlan.unpack` gives it and the job's ``info`` (``cycles``, the fabric's CYCLES
    counter; ``statuses``; ``polls``, the ACTIVE polls; ``flush_cycles``, ``flush_errors``) plus
    ``bus_ops``, the bus operations of the whole session. Raises :class:`FabricError` when the ID
    is wrong, a tile ends in ERROR, the fabric is still active after ``max_polls`` polls of
    ``ACTIVE`` (or the flush after ``max_polls`` polls of ``FLUSH``), or the flush reports memory
    errors.
    """
    def session():
        yield from check_id()
        return (yield from gemm_job(plan, a, b, c, max_cycles=max_polls * POLL,
                                    flush_timeout=max_polls * FLUSH_POLL, read_counters=False, strict=True))

    tally = {}
    d, info = yield from over_bridge(session(), tally)
    return d, {**info, "bus_ops": sum(tally.values())}
