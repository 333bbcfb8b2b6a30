"""Verification environment of an L2 slice: request/response codecs, AXI memory, counters.

``CacheEnv(dut, cfg)`` starts the clock, resets, attaches a cocotbext-axi ``AxiRam`` to the
``m_axi_*`` port (random pauses on every channel when ``mem_pause`` > 0, optional error regions:
AXI SLVERR for reads / writes of chosen line addresses), a request ``StreamDriver`` with random
valid gaps and a response monitor with random back-pressure. Responses are delivered to
``on_response(dict, cycle)``; ``env.issue(...)`` queues a request and returns its dict.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiRam

from tessera.rtl.cache.layouts import (
    COUNTERS,
    CacheOp,
    CacheStatus,
    counters_layout,
    request_layout,
    response_layout,
)
from tessera.rtl.config import CacheConfig
from tessera.tb.stream import BackPressure, StreamDriver, StreamMonitor, layout_fields, pack, rng_for, unpack

OP = {op.name: op.value for op in CacheOp}
STATUS = {s.value: s.name for s in CacheStatus}


def cfg_from(params: dict) -> CacheConfig:
    return CacheConfig(**params["cache"])


def pause_gen(rng: random.Random, prob: float):
    while True:
        yield rng.random() < prob


class CacheEnv:
    def __init__(
        self,
        dut,
        cfg: CacheConfig,
        *,
        req_idle=0.0,
        resp_ready=1.0,
        mem_pause=0.0,
        read_error_lines=(),
        write_error_lines=(),
        ram=True,
    ):
        self.dut, self.cfg = dut, cfg
        self.clk = dut.clk
        self.req_fields = layout_fields(request_layout(cfg))
        self.resp_fields = layout_fields(response_layout(cfg))
        self.cnt_fields = layout_fields(counters_layout())
        self.rng = rng_for("env")
        self.on_response = None
        self.responses: list[dict] = []
        self.cycle = 0
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        cocotb.start_soon(self._count())
        self.read_error_lines = set(read_error_lines)
        self.write_error_lines = set(write_error_lines)
        if ram:
            self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=1 << cfg.addr_bits)
            self._wrap_errors()
            if mem_pause > 0:
                prng = rng_for("mem")
                for ch in (
                    self.ram.write_if.aw_channel,
                    self.ram.write_if.w_channel,
                    self.ram.write_if.b_channel,
                    self.ram.read_if.ar_channel,
                    self.ram.read_if.r_channel,
                ):
                    ch.set_pause_generator(pause_gen(random.Random(prng.random()), mem_pause))
        self.driver = StreamDriver(dut, "req", dut.clk, idle_prob=req_idle)
        self.monitor = StreamMonitor(dut, "resp", dut.clk, callback=self._resp)
        self.bp = BackPressure(dut, "resp", dut.clk, ready_prob=resp_ready)

    def _wrap_errors(self):
        lb = self.cfg.line_bytes
        rd, wr = self.ram.read_if, self.ram.write_if
        orig_read, orig_write = rd._read, wr._write

        async def _read(address, length):
            if address // lb in self.read_error_lines:
                raise OSError("injected read error")
            return await orig_read(address, length)

        async def _write(address, data):
            if address // lb in self.write_error_lines:
                raise OSError("injected write error")
            return await orig_write(address, data)

        rd._read, wr._write = _read, _write

    async def _count(self):
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.clk, 2)

    def _resp(self, word, cycle):
        r = unpack(self.resp_fields, word)
        r["status_name"] = STATUS[r["status"]]
        self.responses.append(r)
        if self.on_response is not None:
            self.on_response(r, cycle)

    def request(
        self,
        op: str | int,
        addr: int = 0,
        size: int | None = None,
        data: int = 0,
        mask: int | None = None,
        rid: int = 0,
        dest: int = 0,
    ) -> dict:
        cfg = self.cfg
        if size is None:
            size = (cfg.data_bytes - 1).bit_length()
        if mask is None:
            mask = (1 << cfg.data_bytes) - 1
        return dict(
            op=OP[op] if isinstance(op, str) else op,
            addr=addr,
            size=size,
            data=data,
            mask=mask,
            id=rid,
            dest=dest,
        )

    def issue(self, *args, **kwargs) -> dict:
        r = self.request(*args, **kwargs)
        self.driver.send_nowait(pack(self.req_fields, r))
        return r

    def counters(self) -> dict:
        return unpack(self.cnt_fields, int(self.dut.counters.value))

    async def wait_responses(self, n: int, timeout: int = 100000):
        for _ in range(timeout):
            if len(self.responses) >= n:
                return
            await RisingEdge(self.clk)
        raise AssertionError(f"timeout: {len(self.responses)} of {n} responses after {timeout} cycles")


__all__ = ["CacheEnv", "OP", "STATUS", "COUNTERS", "cfg_from"]
