"""Scratchpad against a shadow memory: random byte-masked writes and reads on every port.

Reads and writes go to a small set of hot words spread over all banks (so that same-word
read/write collisions and bank conflicts happen often), with random request gaps and random
response back-pressure. A read accepted in the same cycle as a write to its word must return the
old data. A second test measures conflict-free and conflicting read throughput.
"""

from __future__ import annotations

import collections
import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

import tessera.tb
from tessera.rtl.config import preset
from tessera.rtl.tile.isa import scratchpad_write_layout
from tessera.tb.stream import layout_fields, pack, rng_for


async def reset(dut, ports):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.wr__valid.value = 0
    for p in range(ports):
        getattr(dut, f"rd{p}__req__valid").value = 0
        getattr(dut, f"rd{p}__resp__ready").value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


class Bench:
    """Drives every port each cycle and checks responses against a shadow of the memory."""

    def __init__(self, dut, cfg, addrs, *, write_prob, read_prob, ready_prob):
        self.dut, self.cfg = dut, cfg
        self.tile = cfg.tile
        self.ports = self.tile.scratchpad_read_ports
        self.rng = rng_for("spad")
        self.addrs = addrs
        self.write_prob, self.read_prob, self.ready_prob = write_prob, read_prob, ready_prob
        self.wfields = layout_fields(scratchpad_write_layout(self.tile))
        self.shadow: dict[int, int] = collections.defaultdict(int)
        self.expect = [collections.deque() for _ in range(self.ports)]
        self.req = [None] * self.ports          # address on offer per port
        self.wr = None                          # (addr, data, mask) on offer
        self.reads = [0] * self.ports
        self.writes = 0
        self.errors: list[str] = []
        self.cycle = 0
        self.stop = False
        cocotb.start_soon(self._run())

    def _write(self, addr, data, mask):
        old = self.shadow[addr]
        for i in range(self.tile.word_bytes):
            if mask >> i & 1:
                old = (old & ~(0xFF << 8 * i)) | (data & (0xFF << 8 * i))
        self.shadow[addr] = old

    async def _run(self):
        dut, rng, wb = self.dut, self.rng, self.tile.word_bytes
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            # transfers at this edge: reads see the memory before this edge's write
            for p in range(self.ports):
                if self.req[p] is not None and int(getattr(dut, f"rd{p}__req__ready").value):
                    self.expect[p].append((self.req[p], self.shadow[self.req[p]]))
                    self.req[p] = None
            for p in range(self.ports):
                if int(getattr(dut, f"rd{p}__resp__valid").value) and int(
                        getattr(dut, f"rd{p}__resp__ready").value):
                    got = int(getattr(dut, f"rd{p}__resp__payload").value)
                    if not self.expect[p]:
                        self.errors.append(f"cycle {self.cycle}: rd{p} response without a request")
                        continue
                    addr, exp = self.expect[p].popleft()
                    self.reads[p] += 1
                    if got != exp and len(self.errors) < 10:
                        self.errors.append(f"cycle {self.cycle}: rd{p} word {addr:#x}:"
                                           f" expected {exp:#x}, got {got:#x}")
            if self.wr is not None:                     # the write port is always ready
                self._write(*self.wr)
                self.writes += 1
                self.wr = None
            # next cycle's stimulus
            if not self.stop and rng.random() < self.write_prob:
                mask = rng.choice((rng.getrandbits(wb), (1 << wb) - 1))
                self.wr = (rng.choice(self.addrs), rng.getrandbits(8 * wb), mask)
                addr, data, mask = self.wr
                dut.wr__payload.value = pack(self.wfields, {"addr": addr, "data": data, "mask": mask})
                dut.wr__valid.value = 1
            else:
                dut.wr__valid.value = 0
            for p in range(self.ports):
                if self.req[p] is None:                 # a request stays on offer until taken
                    if not self.stop and rng.random() < self.read_prob:
                        self.req[p] = rng.choice(self.addrs)
                        getattr(dut, f"rd{p}__req__payload").value = self.req[p]
                getattr(dut, f"rd{p}__req__valid").value = int(self.req[p] is not None)
                ready = self.ready_prob >= 1 or rng.random() < self.ready_prob
                getattr(dut, f"rd{p}__resp__ready").value = int(ready)

    def check(self):
        pending = sum(len(e) for e in self.expect)
        if pending:
            self.errors.append(f"{pending} requests never answered")
        assert not self.errors, "\n".join(self.errors)


def hot_addresses(rng, tile, n):
    words, banks = tile.scratchpad_words, tile.scratchpad_banks
    per = words // banks
    out = set()
    for b in range(banks):                      # both ends of every bank, and random words
        out |= {b * per, b * per + per - 1}
    while len(out) < n:
        out.add(rng.randrange(words))
    return sorted(out)


@cocotb.test()
async def random_traffic(dut):
    p = tessera.tb.params()
    cfg = preset(p["preset"])
    await reset(dut, cfg.tile.scratchpad_read_ports)
    rng = rng_for("phases")
    bench = Bench(dut, cfg, [0], write_prob=0, read_prob=0, ready_prob=1.0)
    for phase in range(p["phases"]):
        bench.addrs = hot_addresses(rng, cfg.tile, rng.choice((8, 32, 200)))
        bench.write_prob = rng.choice((0.2, 0.6, 1.0))
        bench.read_prob = rng.choice((0.3, 0.8, 1.0))
        bench.ready_prob = rng.choice((0.3, 0.7, 1.0))
        bench.stop = False
        await ClockCycles(dut.clk, p["cycles"])
        bench.stop = True                           # drain: no new requests, take every response
        await ClockCycles(dut.clk, 50)
        bench.ready_prob = 1.0
        await ClockCycles(dut.clk, 10)
        bench.check()
        dut._log.info(f"phase {phase}: {len(bench.addrs)} hot words, {bench.writes} writes,"
                      f" reads per port {bench.reads}")
    assert min(bench.reads) > 0 and bench.writes > 0


@cocotb.test()
async def read_throughput(dut):
    """Streams on every port: conflict-free (one bank each) and all in one bank."""
    p = tessera.tb.params()
    cfg = preset(p["preset"])
    tile = cfg.tile
    ports = tile.scratchpad_read_ports
    await reset(dut, ports)
    per = tile.scratchpad_words // tile.scratchpad_banks
    n = p["stream_words"]
    results = {}
    placements = (("separate_banks", lambda q: q % tile.scratchpad_banks), ("same_bank", lambda q: 0))
    for label, bank_of_port in placements:
        for q in range(ports):
            getattr(dut, f"rd{q}__resp__ready").value = 1
        got = [0] * ports
        sent = [0] * ports
        start = None
        cycles = 0
        while min(got) < n and cycles < 20 * n:
            await RisingEdge(dut.clk)
            cycles += 1
            for q in range(ports):
                if int(getattr(dut, f"rd{q}__resp__valid").value):
                    got[q] += 1
                req = getattr(dut, f"rd{q}__req__valid"), getattr(dut, f"rd{q}__req__ready")
                if int(req[0].value) and int(req[1].value):
                    sent[q] += 1
                    if start is None:
                        start = cycles - 1
                if sent[q] < n:
                    getattr(dut, f"rd{q}__req__payload").value = bank_of_port(q) * per + sent[q] % per
                    getattr(dut, f"rd{q}__req__valid").value = 1
                else:
                    getattr(dut, f"rd{q}__req__valid").value = 0
        results[label] = {"words_per_port": n, "ports": ports, "cycles": cycles - (start or 0)}
        for q in range(ports):
            getattr(dut, f"rd{q}__req__valid").value = 0
        await ClockCycles(dut.clk, 5)
    dut._log.info(f"throughput: {results}")
    with open(os.path.join(os.environ["TESSERA_RUN_DIR"], "scratchpad_throughput.json"), "w") as f:
        json.dump(results, f)
    sep, same = results["separate_banks"]["cycles"], results["same_bank"]["cycles"]
    if tile.scratchpad_banks >= ports:
        assert sep <= n + 3, f"conflict-free streams took {sep} cycles for {n} words per port"
    assert same <= ports * n + 3, f"same-bank streams took {same} cycles for {ports} x {n} words"
