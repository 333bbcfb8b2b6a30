"""The host side of the fabric in a cocotb testbench: CSR access over AXI4-Lite (docs/csr.md).

``Host`` wraps cocotbext-axi's ``AxiLiteMaster`` on ``s_axil_*`` with the register map: push a
program into a tile's command queue, start tiles, wait for them, flush the L2 (with its write-back
errors), read status and counters. Register map: :mod:`tessera.rtl.fabric.csr_map` (its tables are
checked against docs/csr.md by tests/test_fabric_csr.py).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from tessera.rtl.fabric.csr_map import (
    GLOBAL_COUNTERS,
    L2_COUNTERS,
    REG,
    TILE_COUNTERS,
    decode_status,
    slice_reg,
    tile_reg,
)


class Flush(NamedTuple):
    cycles: int                 # cycles polled until FLUSH read 0
    errors: int                 # memory write errors of this flush (FLUSH_ERRORS after - before)


class Host:
    def __init__(self, dut, tiles: int):
        self.dut, self.tiles = dut, tiles
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        for side in (self.axil.write_if, self.axil.read_if):
            side.log.setLevel(logging.WARNING)  # one INFO line per access otherwise

    async def read(self, addr: int) -> int:
        return await self.axil.read_dword(addr)

    async def write(self, addr: int, value: int):
        await self.axil.write_dword(addr, value & 0xFFFF_FFFF)

    async def status(self, t: int) -> dict:
        v = await self.read(tile_reg(t, "STATUS"))
        return decode_status(v)

    async def push(self, t: int, words, start: int = 0) -> int:
        """Push ``words[start:]`` into tile ``t``'s queue as far as there is room; return the new start."""
        free = (await self.read(tile_reg(t, "QUEUE"))) & 0xFFFF
        end = min(len(words), start + free)
        base = tile_reg(t, "CMD0")
        for w in words[start:end]:
            for i in range(4):
                await self.write(base + 4 * i, (w >> (32 * i)) & 0xFFFF_FFFF)
        return end

    async def clear(self, t: int):
        await self.write(tile_reg(t, "CONTROL"), 1)

    async def cycles(self) -> int:
        lo = await self.read(REG["CYCLES_LO"])
        hi = await self.read(REG["CYCLES_HI"])
        return (hi << 32) | lo

    async def counters(self) -> dict:
        out = {n: await self.read(REG[n.upper()]) for n in GLOBAL_COUNTERS}
        out["tiles"], out["slices"] = [], []
        for t in range(self.tiles):
            out["tiles"].append({n: await self.read(tile_reg(t, n.upper())) for n in TILE_COUNTERS})
        for s in range(self.tiles):           # one L2 slice per tile
            out["slices"].append({n: await self.read(slice_reg(s, n)) for n in L2_COUNTERS})
        return out

    async def flush(self, invalidate: bool = True, timeout: int = 1_000_000) -> Flush:
        """Write every dirty L2 line back (and invalidate), as docs/csr.md says: pulse FLUSH, poll
        it (every 16 cycles) until it reads 0, then read FLUSH_ERRORS. Returns the cycles polled
        and the write-back errors of this flush (the counter's increase; a dirty line whose
        write-back the memory refused is lost, so D read back is then not the result). Raises
        ``TimeoutError`` after ``timeout`` cycles."""
        errors_before = await self.read(REG["FLUSH_ERRORS"])
        await self.write(REG["FLUSH"], 1 | (int(invalidate) << 1))
        waited = 0
        while await self.read(REG["FLUSH"]):
            await ClockCycles(self.dut.clk, 16)
            waited += 16
            if waited > timeout:
                raise TimeoutError(f"L2 flush did not finish in {timeout} cycles")
        errors = (await self.read(REG["FLUSH_ERRORS"]) - errors_before) & 0xFFFF_FFFF
        return Flush(waited, errors)


def counter_delta(after, before):
    """Element-wise ``after - before`` of nested counter dicts/lists, modulo 2^32."""
    if isinstance(after, dict):
        return {k: counter_delta(after[k], before[k]) for k in after}
    if isinstance(after, list):
        return [counter_delta(a, b) for a, b in zip(after, before, strict=True)]
    return (after - before) & 0xFFFF_FFFF
