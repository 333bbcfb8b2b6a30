"""cocotb side of ``tessera bench cache``: replay a request list, count cycles, write JSON.

Parameters: ``cache`` (CacheConfig fields), ``requests`` (path of a JSON list of
``[op, addr, mask, data]`` word requests, op 0 READ, 1 WRITE, 4 ALLOC of the line of ``addr``),
``serial``, ``latency``, ``out`` (result file name).
The memory is :class:`tessera.tb.common.axi_memory.AxiMemory` with a fixed latency, pipelined, AR / AW / W
always ready (``eager_wready``), no bandwidth limit; its counters count only the measured phases
(``counting``). Responses are always taken. Read data is checked against a shadow memory (``data_errors``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

import tessera.tb
from tessera.rtl.cache.layouts import CacheOp, CacheStatus, counters_layout, request_layout, response_layout
from tessera.rtl.config import CacheConfig
from tessera.tb.common.axi_memory import AxiMemory
from tessera.tb.stream import StreamDriver, StreamMonitor, layout_fields, pack, unpack


@cocotb.test()
async def bench(dut):
    p = tessera.tb.params()
    cfg = CacheConfig(**p["cache"])
    D = cfg.data_bytes
    lo = (D - 1).bit_length()
    reqs = json.loads(Path(p["requests"]).read_text())
    rf, sf = layout_fields(request_layout(cfg)), layout_fields(response_layout(cfg))
    cf = layout_fields(counters_layout())
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    mem = AxiMemory(dut, "m_axi", dut.clk, data_bytes=D, latency=p["latency"], eager_wready=True,
                    counting=False)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    cycle = [0]

    async def tick():
        while True:
            await RisingEdge(dut.clk)
            cycle[0] += 1

    cocotb.start_soon(tick())
    accept, done, resps = {}, {}, {}
    ids = 1 << cfg.id_bits
    StreamMonitor(
        dut, "req", dut.clk, callback=lambda w, c: accept.setdefault(unpack(rf, w)["id"], []).append(cycle[0])
    )

    def on_resp(w, c):
        r = unpack(sf, w)
        done.setdefault(r["id"], []).append(cycle[0])
        resps.setdefault(r["id"], []).append(r)

    StreamMonitor(dut, "resp", dut.clk, callback=on_resp)
    dut.resp__ready.value = 1
    drv = StreamDriver(dut, "req", dut.clk)
    # Expected read data from a shadow memory, computed in request order (same-line order is kept).
    shadow: dict[int, int] = {}
    expected = []
    words = []
    ALLOC = CacheOp.ALLOC.value
    for i, (op, addr, mask, data) in enumerate(reqs):
        words.append(pack(rf, dict(op=int(op), size=lo, addr=addr, mask=mask, data=data, id=i % ids)))
        wa = addr // D
        if op == ALLOC:
            first = (addr - addr % cfg.line_bytes) // D
            for k in range(cfg.beats_per_line):
                shadow[first + k] = 0
            expected.append(None)
        elif op:
            old = shadow.get(wa, 0)
            for b in range(D):
                if (mask >> b) & 1:
                    old = (old & ~(0xFF << (8 * b))) | (data & (0xFF << (8 * b)))
            shadow[wa] = old
            expected.append(None)
        else:
            expected.append(shadow.get(wa, 0))
    await ClockCycles(dut.clk, cfg.sets + 4)  # tags being cleared after reset
    warm = json.loads(Path(p["warm"]).read_text()) if p.get("warm") else []
    if warm:  # bring the working set in, then forget these requests
        drv.extend(
            pack(rf, dict(op=0, size=lo, addr=a, mask=(1 << D) - 1, id=i % ids))
            for i, (_, a, _, _) in enumerate(warm)
        )
        while sum(len(v) for v in done.values()) < len(warm):
            await RisingEdge(dut.clk)
        await ClockCycles(dut.clk, 2)
        accept.clear()
        done.clear()
        resps.clear()
    base = unpack(cf, int(dut.counters.value))
    mem.counting = True
    start = cycle[0]
    n = len(words)
    got = 0
    if p["serial"]:
        for w in words:
            drv.send_nowait(w)
            target = got + 1
            while sum(len(v) for v in done.values()) < target:
                await RisingEdge(dut.clk)
            got = target
    else:
        drv.extend(words)
        while sum(len(v) for v in done.values()) < n:
            await RisingEdge(dut.clk)
    end = cycle[0]
    while mem.outstanding:  # the rest of a line answered early still counts as bytes read
        await RisingEdge(dut.clk)
    mem.counting = False
    after = unpack(cf, int(dut.counters.value))
    c = {k: after[k] - base[k] for k in after}
    # Latencies and data, matched per id in order.
    lat_hit, lat_miss, data_errors, status_errors = [], [], 0, 0
    for i in range(n):
        rid = i % ids
        a, d, r = accept[rid].pop(0), done[rid].pop(0), resps[rid].pop(0)
        (lat_hit if r["hit"] else lat_miss).append(d - a)
        if r["status"] != CacheStatus.OK.value:
            status_errors += 1
        if expected[i] is not None and r["data"] != expected[i]:
            data_errors += 1
    r_bytes, w_bytes = mem.r_beats * D, mem.w_beats * D
    cycles = end - start + 1
    # Final flush, reported separately.
    mem.counting = True
    fw0 = mem.w_beats
    drv.send_nowait(pack(rf, dict(op=2, id=0)))
    while sum(len(v) for v in done.values()) < 1:
        await RisingEdge(dut.clk)
    flush_bytes = (mem.w_beats - fw0) * D
    result = {
        "accesses": c["requests"],
        "hits": c["hits"],
        "misses": c["misses"],
        "secondary_misses": c["secondary_misses"],
        "evictions": c["evictions"],
        "writebacks": c["writebacks"],
        "cycles": cycles,
        "hit_latency": max(lat_hit) if lat_hit else None,
        "hit_latency_min": min(lat_hit) if lat_hit else None,
        "miss_latency_mean": round(sum(lat_miss) / len(lat_miss), 2) if lat_miss else None,
        "bytes_read_from_memory": r_bytes,
        "bytes_written_to_memory": w_bytes,
        "read_bandwidth_fraction": round(r_bytes / (cycles * D), 4),
        "requests_per_cycle": round(n / cycles, 4),
        "max_outstanding_misses": mem.max_outstanding,
        "mean_outstanding_misses": round(mem.mean_outstanding, 2),
        "fill_errors": c["fill_errors"],
        "wb_errors": c["wb_errors"],
        "final_flush_writebacks": unpack(cf, int(dut.counters.value))["flush_writebacks"]
        - after["flush_writebacks"],
        "final_flush_bytes_written": flush_bytes,
        "data_errors": data_errors,
        "status_errors": status_errors,
    }
    Path(os.environ["TESSERA_RUN_DIR"], p["out"]).write_text(json.dumps(result, indent=1))
    assert data_errors == 0 and status_errors == 0, result
