"""SlicePort + CacheSlice + cocotbext-axi AxiRam (top: tb/fabric/slice_port_top.py).

Request packets (READ: 1 beat, WRITE: head + data, ALLOC: 1 beat) to lines owned by this node, chosen so that
they hit, miss and evict (several tags per set), with random masks, unique ids, the tag's
``quiet`` bit at random (a quiet WRITE or ALLOC that succeeds must send no response; a quiet READ
still answers) and random ``dest`` (one bit: unicast response; several: multicast), driven with
random gaps between beats;
random back-pressure on ``tx``. Every response packet is checked: header (class RESPONSE, port
TILE_PORT, unicast index or multicast mask), head beat (op, status, id echoed, upper bits 0),
READ data against a byte model of memory. A NoC request with op FLUSH must get MALFORMED.
FLUSH pulses arrive in the middle of the traffic; then after a quiet FLUSH and after an
INVALIDATE the AXI memory must equal the model; reads after the INVALIDATE refetch. Counters
(requests, response beats, multicast packets, flush errors) are checked at the end.
"""

from __future__ import annotations

import collections
from dataclasses import replace

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiRam

import tessera.tb
from tessera.rtl.config import preset
from tessera.rtl.fabric.messages import quiet_bit, req_head_layout, resp_head_layout, slice_addr
from tessera.rtl.noc.layouts import beat_layout, header_layout
from tessera.tb.stream import layout_fields, pack, rng_for, unpack

READ, WRITE, FLUSH, ALLOC = 0, 1, 2, 4
OK, MALFORMED = 0, 1


def cfg_from(p):
    cfg = preset(p["preset"])
    return replace(cfg, cache=replace(cfg.cache, addr_bits=p["addr_bits"]))


class Bench:
    def __init__(self, dut, cfg, node, p):
        self.dut, self.cfg, self.node, self.p = dut, cfg, node, p
        self.W, self.L, self.nodes = cfg.cache.data_bytes, cfg.cache.line_bytes, cfg.noc.nodes
        self.rng = rng_for("sliceport")
        self.f_beat = layout_fields(beat_layout(cfg.noc))
        self.f_hdr = layout_fields(header_layout(cfg.noc))
        self.f_req = layout_fields(req_head_layout(cfg))
        self.f_resp = layout_fields(resp_head_layout(cfg))
        self.resp_bits = sum(w for _, w in self.f_resp)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=1 << cfg.cache.addr_bits)
        self.model: dict[int, int] = {}     # global word address -> word
        self.errors: list[str] = []
        self.cycle = 0
        self.pending: dict[int, dict] = {}  # id -> expected response
        self.next_id = 1
        self.queue: collections.deque = collections.deque()   # packets (lists of beats) to send
        self.cur = None
        self.offered = False
        self.rx_part = None                  # head of a READ response, waiting for its data beat
        self.sent_packets = self.resp_beats = self.mcast = 0
        self.flushes = 0
        self.flush_on = False
        self.flush_prob = 0.0
        self.flush_req = None                # a FLUSH (0) / INVALIDATE (1) pulse to give
        sets = cfg.cache.sets
        # slice lines g (global line g * nodes + node): 3 hot sets with 8 tags each, plus random lines
        self.lines = [s + sets * t for s in self.rng.sample(range(sets), 3) for t in range(8)]
        self.lines += self.rng.sample(range(sets * 8), 24)
        top = (1 << cfg.cache.addr_bits) // (self.L * self.nodes)
        assert max(self.lines) < top, "addr_bits too small for the lines of the test"
        self.touched: set[int] = set()
        cocotb.start_soon(self._run())

    def err(self, msg):
        if len(self.errors) < 20:
            self.errors.append(f"cycle {self.cycle}: {msg}")

    def gaddr(self, g, w):
        return (g * self.nodes + self.node) * self.L + w * self.W

    def init_memory(self):
        """Random contents for every line the test uses (the memory sees slice addresses)."""
        for g in self.lines:
            for w in range(self.L // self.W):
                a = self.gaddr(g, w)
                v = self.rng.getrandbits(8 * self.W)
                self.model[a] = v
                self.ram.write(slice_addr(self.cfg, a), v.to_bytes(self.W, "little"))

    def mem_word(self, a):
        return int.from_bytes(self.ram.read(slice_addr(self.cfg, a), self.W), "little")

    # ------------------------------------------------------------------ stimulus
    def request(self, op, reads_only=False):
        rng = self.rng
        g = rng.choice(self.lines)
        a = self.gaddr(g, rng.randrange(self.L // self.W))
        if rng.random() < 0.5:
            dest = 1 << rng.randrange(self.nodes)
        else:
            dest = 0
            while bin(dest).count("1") < 2:
                dest = rng.randint(1, (1 << self.nodes) - 1)
        qb = quiet_bit(self.cfg)
        quiet = rng.random() < 0.3
        rid = self.next_id | quiet << qb
        self.next_id = (self.next_id + 1) % (1 << qb) or 1
        mask = rng.choice(((1 << self.W) - 1, rng.getrandbits(self.W)))
        head = pack(self.f_req, {"op": op, "addr": a, "mask": mask, "id": rid, "dest": dest})
        hdr = pack(self.f_hdr, {"cls": 0, "mcast": 0, "port": 1, "dest": self.node,
                                "src": rng.randrange(self.nodes)})
        beats = [pack(self.f_beat, {"data": head, "last": int(op != WRITE), "hdr": hdr})]
        exp = {"op": op, "status": OK, "dest": dest, "addr": a}
        if op == WRITE:
            data = rng.getrandbits(8 * self.W)
            beats.append(pack(self.f_beat, {"data": data, "last": 1, "hdr": rng.getrandbits(8)}))
            old = self.model[a]
            bm = sum(0xFF << 8 * i for i in range(self.W) if mask >> i & 1)
            self.model[a] = (old & ~bm) | (data & bm)
            self.touched.add(a)
        elif op == READ:
            exp["data"] = self.model[a]
        elif op == ALLOC:                               # the whole line: zero, dirty
            base = a - a % self.L
            for w in range(self.L // self.W):
                self.model[base + w * self.W] = 0
                self.touched.add(base + w * self.W)
        else:                                           # FLUSH on the NoC: answered MALFORMED, op 7
            exp.update(op=7, status=MALFORMED)
        if not (quiet and op in (WRITE, ALLOC)):
            self.pending[rid] = exp
        self.queue.append(beats)

    def traffic(self, n, reads_only=False):
        for _ in range(n):
            r = self.rng.random()
            if reads_only or r < 0.55:
                self.request(READ)
            elif r < 0.94:
                self.request(WRITE)
            elif r < 0.98:
                self.request(ALLOC)
            else:
                self.request(FLUSH)

    # ------------------------------------------------------------------ the cycle loop
    async def _run(self):
        dut, rng, p = self.dut, self.rng, self.p
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            if self.offered and int(dut.rx__ready.value):
                self.offered = False
                self.cur.pop(0)
                if not self.cur:
                    self.cur = None
                    self.sent_packets += 1
            if int(dut.tx__valid.value) and int(dut.tx__ready.value):
                self.on_tx(int(dut.tx__payload.value))
            # drive
            if self.cur is None and self.queue:
                self.cur = self.queue.popleft()
            if self.cur is not None and not self.offered and rng.random() >= p["rx_idle"]:
                dut.rx__payload.value = self.cur[0]
                self.offered = True
            dut.rx__valid.value = int(self.offered)
            dut.tx__ready.value = int(rng.random() < p["tx_ready"])
            pulse = self.flush_prob > 0 and not int(dut.flush_busy.value) and rng.random() < self.flush_prob
            op = 0
            if self.flush_req is not None:
                pulse, op, self.flush_req = True, self.flush_req, None
            dut.flush.value = int(pulse)
            dut.flush_op.value = op
            if pulse:
                self.flushes += 1

    def on_tx(self, word):
        b = unpack(self.f_beat, word)
        hdr = unpack(self.f_hdr, b["hdr"])
        self.resp_beats += 1
        if self.rx_part is not None:
            exp, h0 = self.rx_part
            self.rx_part = None
            if not b["last"] or hdr["cls"] != 1 or b["data"] != exp["data"]:
                self.err(f"READ data {exp['addr']:#x}: got {b['data']:#x} last {b['last']},"
                         f" expected {exp['data']:#x}")
            return
        h = unpack(self.f_resp, b["data"])
        if b["data"] >> self.resp_bits:
            self.err("response head: bits above the head layout are not zero")
        exp = self.pending.pop(h["id"], None)
        if exp is None:
            self.err(f"response with unknown id {h['id']:#x}")
            return
        if (h["op"], h["status"]) != (exp["op"], exp["status"]):
            self.err(f"id {h['id']:#x}: op {h['op']} status {h['status']},"
                     f" expected {exp['op']} {exp['status']}")
        dest = exp["dest"]
        uni = bin(dest).count("1") == 1
        want = {"cls": 1, "port": 0, "mcast": int(not uni), "dest": dest.bit_length() - 1 if uni else dest}
        got = {k: hdr[k] for k in want}
        if got != want:
            self.err(f"id {h['id']:#x}: header {got}, expected {want}")
        if not uni:
            self.mcast += 1
        if b["last"] != int(exp["op"] != READ):
            self.err(f"id {h['id']:#x}: head last = {b['last']}")
        if exp["op"] == READ:
            self.rx_part = (exp, h)

    async def drain(self, timeout=50000):
        start = self.cycle
        while self.pending or self.queue or self.cur is not None:
            await RisingEdge(self.dut.clk)
            if self.cycle - start > timeout:
                self.err(f"timeout: {len(self.pending)} responses missing")
                return

    async def flush(self, op):
        """Pulse ``flush`` (through the cycle loop) and wait until ``flush_busy`` falls."""
        dut = self.dut
        while int(dut.flush_busy.value):
            await RisingEdge(dut.clk)
        self.flush_req = op
        while self.flush_req is not None:
            await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        if not int(dut.flush_busy.value):
            self.err("flush_busy did not rise after a flush pulse")
        n = 0
        while int(dut.flush_busy.value):
            await RisingEdge(dut.clk)
            n += 1
            if n > 100000:
                self.err("flush never finished")
                return

    def check_memory(self, what):
        bad = [a for a in sorted(self.model) if self.mem_word(a) != self.model[a]]
        for a in bad[:5]:
            self.err(f"after {what}: memory word {a:#x} = {self.mem_word(a):#x}, expected {self.model[a]:#x}")
        return len(bad)


@cocotb.test()
async def slice_port_traffic(dut):
    p = tessera.tb.params()
    cfg = cfg_from(p)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.rx__valid.value = 0
    dut.tx__ready.value = 0
    dut.flush.value = 0
    dut.flush_op.value = 0
    bench = Bench(dut, cfg, p["node"], p)
    bench.init_memory()
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    # 1: traffic with FLUSH pulses in the middle of it
    bench.flush_prob = 0.01
    bench.traffic(p["requests"])
    await bench.drain()
    bench.flush_prob = 0.0
    await ClockCycles(dut.clk, 2)
    mid_flushes = bench.flushes
    # 2: a quiet FLUSH: memory = model
    await bench.flush(0)
    bench.check_memory("FLUSH")
    # 3: more traffic, INVALIDATE, memory = model; then reads (all misses) against the model
    bench.traffic(p["requests"])
    await bench.drain()
    await bench.flush(1)
    bench.check_memory("INVALIDATE")
    bench.traffic(p["requests"] // 2, reads_only=True)
    await bench.drain()
    await ClockCycles(dut.clk, 5)

    for name, exp in (("requests", bench.sent_packets), ("resp_flits", bench.resp_beats),
                      ("mcast_packets", bench.mcast), ("flush_errors", 0)):
        got = int(getattr(dut, name).value)
        if got != exp:
            bench.err(f"counter {name} = {got}, expected {exp}")
    print(f"[slice_port] {bench.cycle} cycles, {bench.sent_packets} request packets,"
          f" {bench.resp_beats} response beats, {bench.mcast} multicast,"
          f" {mid_flushes} flushes during traffic")
    if mid_flushes == 0:
        bench.err("no flush happened during traffic")
    assert not bench.errors, "\n".join(bench.errors)
