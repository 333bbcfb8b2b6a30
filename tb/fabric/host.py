"""The host side of the fabric in a cocotb testbench: the driver of :mod:`tessera.runtime.host`.

The host sequence (ID check, clear, push, launch, poll ``ACTIVE``, cycles, status, counters,
flush, a whole GEMM job) is written once, sans-IO, in :mod:`tessera.runtime.host`; the board runs
the same generators (:mod:`tessera.runtime.board_gemm`). ``Host`` is their transport in the
simulation, and :meth:`Host.run` drives one:

* ``read`` / ``write``: cocotbext-axi's ``AxiLiteMaster`` on ``s_axil_*`` (docs/csr.md);
* ``wait``: ``ClockCycles`` of ``dut.clk``;
* ``mem_write`` / ``mem_read`` / ``mem_stats``: the backdoor of the memory model
  (:class:`tessera.tb.common.axi_memory.AxiMemory`: no simulated time), and its byte counters;
* ``progress``: the progress file ``tessera gemm`` watches for its bar (``{"cycles", "expect",
  "job"}``), rewritten with a fresh ``CYCLES`` read when 0.5 s of wall time have passed since the
  last one (the first poll of each job always reports). Those two reads depend on the wall clock,
  so with a progress file the cycle counts may differ by a cycle or two from run to run.

Register map: :mod:`tessera.rtl.fabric.csr_map` (its tables are checked against docs/csr.md by
tests/test_fabric_csr.py).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from tessera.runtime.host import cycles


class Host:
    """The fabric's host port (``dut.s_axil_*``, clock ``dut.clk``) and the memory model ``mem``
    (backdoor; needed by the memory operations only), driving :mod:`tessera.runtime.host` sessions
    with :meth:`run`. ``progress``: path of the progress file (None: no progress reports)."""

    def __init__(self, dut, mem=None, progress: str | Path | None = None):
        self.dut, self.mem = dut, mem
        self.progress = Path(progress) if progress else None
        self._job = {"expect": 1, "job": ""}
        self._last_report = 0.0
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        for side in (self.axil.write_if, self.axil.read_if):
            side.log.setLevel(logging.WARNING)  # one INFO line per access otherwise

    async def read(self, addr: int) -> int:
        return await self.axil.read_dword(addr)

    async def write(self, addr: int, value: int):
        await self.axil.write_dword(addr, value & 0xFFFF_FFFF)

    def progress_job(self, label: str, expect_cycles: int):
        """Name the job the next progress reports are about (and its expected cycles, the bar's
        length); the next ``progress`` operation reports at once."""
        self._job = {"expect": expect_cycles, "job": label}
        self._last_report = 0.0

    async def run(self, session):
        """Drive ``session`` (a :mod:`tessera.runtime.host` generator) to its end; return its result."""
        value = None
        try:
            while True:
                value = await self._do(session.send(value))
        except StopIteration as done:
            return done.value

    async def _do(self, op):
        kind = op[0]
        if kind == "read":
            return await self.axil.read_dword(op[1])
        if kind == "write":
            await self.axil.write_dword(op[1], op[2] & 0xFFFF_FFFF)
        elif kind == "wait":
            await ClockCycles(self.dut.clk, op[1])
        elif kind == "progress":
            if self.progress and time.time() - self._last_report > 0.5:
                self._last_report = time.time()
                cyc = await self.run(cycles())
                self.progress.write_text(json.dumps({"cycles": cyc, **self._job}))
        elif kind == "mem_write":
            self.mem.write(op[1], op[2])
        elif kind == "mem_read":
            return self.mem.read(op[1], op[2])
        elif kind == "mem_stats":
            return {"read_bytes": self.mem.read_bytes, "write_bytes": self.mem.write_bytes}
        else:
            raise ValueError(f"unknown host operation {op!r}")
        return None
