"""TensorDma alone: the testbench plays the network, the L2 slices, the other tiles and the memories.

* A memory of random words answers every READ request beat (checked in order against the LOAD
  semantics: address, owner, tag, dest) with a 2-beat response after a random delay (so
  responses come out of order across slices), if the request's ``dest`` includes this tile.
* RECV LOADs get their data injected as if from another tile's SEND, at random times, often
  before the DMA has taken the RECV descriptor.
* Every scratchpad / accumulator write (space, word, data, mask) is checked against the set of
  expected writes; every ``load_done`` pulse must come after all writes of that LOAD, in order.
* STOREs: the WRITE / ALLOC packets are checked in order (address, owner, mask, data from a
  preloaded accumulator model, ALLOC before every fully covered line, the tag's ``quiet`` bit on
  every packet but the last WRITE of each row's line segment). Acknowledged ones are answered
  after a random delay; quiet ones only when they draw an error status. ``store_done`` must come
  after the last acknowledgement.
* A few responses carry an error status: each must give one ``fault`` pulse (the word is not
  written, but counted). Random back-pressure on tx, sp_wr, acc_wr, acc_rd and random gaps on rx.
"""

from __future__ import annotations

import collections

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

import tessera.tb
from tessera.rtl.config import preset
from tessera.rtl.fabric.messages import req_head_layout, resp_head_layout, tag_layout
from tessera.rtl.noc.layouts import beat_layout, header_layout
from tessera.rtl.tile.isa import scratchpad_write_layout, xfer_desc_layout
from tessera.tb.stream import layout_fields, pack, rng_for, unpack

# Layouts come from the contract modules (messages, isa, noc), never from the DMA itself.

READ, WRITE, ALLOC = 0, 1, 4
OK, FILL_ERROR, WB_ERROR = 0, 2, 3
LOCAL, SEND, RECV = 0, 1, 2
SP, ACC = 0, 1


# Cycles the bench keeps sampling the outputs after the last completion (fault is registered).
DRAIN_CYCLES = 8


class Bench:
    def __init__(self, dut, cfg, node, p):
        self.dut, self.cfg, self.node = dut, cfg, node
        t = cfg.tile
        self.W, self.L, self.nodes = t.word_bytes, cfg.cache.line_bytes, cfg.noc.nodes
        self.own = 1 << node
        self.rng = rng_for("dma")
        self.p = p
        self.f_desc = layout_fields(xfer_desc_layout(cfg))
        self.f_beat = layout_fields(beat_layout(cfg.noc))
        self.f_hdr = layout_fields(header_layout(cfg.noc))
        self.f_req = layout_fields(req_head_layout(cfg))
        self.f_resp = layout_fields(resp_head_layout(cfg))
        self.f_tag = layout_fields(tag_layout(cfg))
        # sp_wr and acc_wr: (addr, data, mask), addr wide enough for either memory
        self.f_wr = {"sp_wr": layout_fields(scratchpad_write_layout(t)),
                     "acc_wr": [("addr", max(1, (t.accumulator_words - 1).bit_length())),
                                ("data", 8 * t.word_bytes), ("mask", t.word_bytes)]}
        self.mem: dict[int, int] = {}
        self.acc = [self.rng.getrandbits(8 * self.W) for _ in range(t.accumulator_words)]
        self.errors: list[str] = []
        self.cycle = 0
        # LOADs
        self.loads: list[dict] = []          # every LOAD descriptor, in order
        self.load_next = 0                   # next LOAD to offer
        self.load_offer = None
        self.loads_done = 0
        self.exp_reads: collections.deque = collections.deque()
        self.exp_writes: collections.Counter = collections.Counter()
        self.pending_writes = collections.Counter()   # LOAD index -> writes not yet seen
        self.pending_errs = collections.Counter()     # LOAD index -> error responses not yet delivered
        self.write_owner: dict[tuple, collections.deque] = collections.defaultdict(collections.deque)
        self.recv_injected: set[int] = set()
        self.load_issued = collections.Counter()      # LOAD index -> READ requests seen
        # STOREs
        self.stores: list[dict] = []
        self.store_next = 0
        self.store_offer = None
        self.stores_done = 0
        self.exp_store_pkts: collections.deque = collections.deque()
        self.store_resps_due = collections.Counter()  # STORE index -> responses not yet delivered
        self.store_pkt_owner: collections.deque = collections.deque()
        self.tx_partial = None                        # a WRITE head waiting for its data beat
        # network
        self.future: list[tuple[int, list[int], dict]] = []   # (ready cycle, beats, info)
        self.rx_pkt = None
        self.rx_info = None
        self.rx_offered = False
        self.faults_expected = 0
        self.faults = 0
        self.read_requests = self.write_requests = self.alloc_requests = self.resp_words = 0
        # accumulator read port
        self.acc_q: collections.deque = collections.deque()   # (ready cycle, word)
        self.acc_resp = None

    # ---------------------------------------------------------------- helpers
    def memword(self, addr):
        w = addr // self.W
        if w not in self.mem:
            self.mem[w] = self.rng.getrandbits(8 * self.W)
        return self.mem[w]

    def owner(self, addr):
        return (addr // self.L) % self.nodes

    def err(self, msg):
        if len(self.errors) < 20:
            self.errors.append(f"cycle {self.cycle}: {msg}")

    def words(self, d):
        """(r, w, mem addr, local word, valid bytes field, byte count) of every word of a transfer."""
        W = self.W
        out = []
        for r in range(d["rows"]):
            wpr = -(-d["row_bytes"] // W)
            for w in range(wpr):
                rem = d["row_bytes"] - w * W
                out.append((r, w, d["mem_addr"] + r * d["stride"] + w * W,
                            (d["local_addr"] + r * d["pitch"]) // W + w, rem if rem < W else 0,
                            min(rem, W)))
        return out

    def resp_beats(self, op, status, tag, data=None):
        head = pack(self.f_resp, {"op": op, "status": status, "id": tag})
        hdr = pack(self.f_hdr, {"cls": 1, "mcast": 0, "port": 0, "dest": self.own, "src": 0})
        beats = [pack(self.f_beat, {"data": head, "last": int(data is None), "hdr": hdr})]
        if data is not None:
            beats.append(pack(self.f_beat, {"data": data, "last": 1, "hdr": hdr}))
        return beats

    def status(self, prob):
        return self.rng.choice((FILL_ERROR, WB_ERROR)) if self.rng.random() < prob else OK

    # ---------------------------------------------------------------- stimulus
    def make_load(self, k):
        rng, W, t = self.rng, self.W, self.cfg.tile
        space = ACC if rng.random() < 0.3 else SP
        rows = rng.randint(1, 4)
        rb = rng.randint(1, 5 * W) if space == SP else 4 * rng.randint(1, 5 * W // 4)
        pitch = -(-rb // W) * W
        words = (t.accumulator_words if space == ACC else t.scratchpad_words)
        local = W * rng.randint(0, words - rows * pitch // W)
        mode = rng.choice((LOCAL, LOCAL, SEND, RECV))
        dest = 0
        if mode != LOCAL:
            dest = rng.randint(1, (1 << self.nodes) - 1)
            if rng.random() < 0.6:
                dest |= self.own
        d = dict(mode=mode, space=space, local_addr=local, pitch=pitch,
                 mem_addr=W * rng.randint(0, 2047), stride=W * rng.randint(0, 12), rows=rows,
                 row_bytes=rb, dest=dest, k=k)
        mine = mode == LOCAL or bool(dest & self.own)
        slot = k % 16
        for (_r, _w, addr, word, valid, n) in self.words(d):
            tag = pack(self.f_tag, {"valid": valid, "word": word, "space": space, "slot": slot})
            mask = (1 << n) - 1
            if mode != RECV:
                self.exp_reads.append(dict(addr=addr, tag=tag, dest=self.own if mode == LOCAL else dest,
                                           k=k, mine=mine, word=word, mask=mask, space=space))
            elif mine:
                d.setdefault("recv", []).append((addr, tag, word, mask))
        return d

    def expect_write(self, k, space, word, data, mask, status):
        if status != OK:
            self.pending_errs[k] += 1
            return
        key = (space, word, data & self.bytes_mask(mask), mask)
        self.exp_writes[key] += 1
        self.write_owner[key].append(k)
        self.pending_writes[k] += 1

    def bytes_mask(self, mask):
        return sum(0xFF << (8 * i) for i in range(self.W) if mask >> i & 1)

    def make_store(self, j):
        rng, W, t = self.rng, self.W, self.cfg.tile
        rows = rng.randint(1, 3)
        rb = 4 * rng.randint(1, 10 * W // 4)
        pitch = -(-rb // W) * W
        local = W * rng.randint(0, t.accumulator_words - rows * pitch // W)
        mem = rng.choice((self.L * rng.randint(0, 255), W * rng.randint(0, 4095)))
        stride = rng.choice((self.L * rng.randint(1, 4), W * rng.randint(1, 16)))
        d = dict(mode=LOCAL, space=ACC, local_addr=local, pitch=pitch, mem_addr=mem, stride=stride,
                 rows=rows, row_bytes=rb, dest=0, k=j)
        n = 0
        for (_r, w, addr, word, _valid, nbytes) in self.words(d):
            rem = rb - w * W
            if addr % self.L == 0 and rem >= self.L:
                self.exp_store_pkts.append(dict(op=ALLOC, addr=addr, j=j, quiet=1))
            ack = rem <= W or (addr + W) % self.L == 0      # last word of the row or of the line
            self.exp_store_pkts.append(dict(op=WRITE, addr=addr, mask=(1 << nbytes) - 1, data=self.acc[word],
                                            j=j, quiet=int(not ack)))
            n += ack
        self.store_resps_due[j] = n
        return d

    # ---------------------------------------------------------------- the cycle loop
    async def run(self):
        dut, rng, p = self.dut, self.rng, self.p
        n_loads, n_stores = p["loads"], p["stores"]
        self.loads = [self.make_load(k) for k in range(n_loads)]
        self.stores = [self.make_store(j) for j in range(n_stores)]
        tx_rp, wr_rp, rx_idle = p["tx_ready"], p["wr_ready"], p["rx_idle"]
        drain_end = None
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            # ---- sample the transfers of this edge
            if self.load_offer is not None and int(dut.load__ready.value):
                self.load_offer = None
                self.load_next += 1
            if self.store_offer is not None and int(dut.store__ready.value):
                self.store_offer = None
                self.store_next += 1
            if int(dut.tx__valid.value) and int(dut.tx__ready.value):
                self.on_tx(int(dut.tx__payload.value))
            for space, name in ((SP, "sp_wr"), (ACC, "acc_wr")):
                if int(getattr(dut, f"{name}__valid").value) and int(getattr(dut, f"{name}__ready").value):
                    self.on_write(space, unpack(self.f_wr[name], int(getattr(dut, f"{name}__payload").value)))
            if self.rx_offered and int(dut.rx__ready.value):
                self.rx_offered = False
                self.rx_pkt.pop(0)
                if not self.rx_pkt:
                    self.on_delivered(self.rx_info)
                    self.rx_pkt = None
            if int(dut.acc_rd__req__valid.value) and int(dut.acc_rd__req__ready.value):
                a = int(dut.acc_rd__req__payload.value)
                self.acc_q.append((self.cycle + rng.randint(1, 4), self.acc[a]))
            if self.acc_resp is not None and int(dut.acc_rd__resp__ready.value):
                self.acc_resp = None
            if int(dut.fault.value):
                self.faults += 1
            if int(dut.load_done.value):
                self.on_load_done()
            if int(dut.store_done.value):
                self.on_store_done()
            # ---- drive the next cycle
            outstanding = self.load_next - self.loads_done
            if self.load_offer is None and self.load_next < n_loads and outstanding < 15 \
                    and rng.random() < 0.3:
                d = self.loads[self.load_next]
                self.load_offer = d
                dut.load__payload.value = pack(self.f_desc, d)
            dut.load__valid.value = int(self.load_offer is not None)
            if self.store_offer is None and self.store_next < n_stores and rng.random() < 0.1:
                d = self.stores[self.store_next]
                self.store_offer = d
                dut.store__payload.value = pack(self.f_desc, d)
            dut.store__valid.value = int(self.store_offer is not None)
            # RECV data from "another tile": once the slot is free (LOAD k-16 complete)
            for d in self.loads:
                k = d["k"]
                if d["mode"] == RECV and k not in self.recv_injected and self.loads_done >= k - 15 \
                        and rng.random() < 0.02:
                    self.recv_injected.add(k)
                    for (addr, tag, word, mask) in d.get("recv", []):
                        st = self.status(p["err_prob"])
                        data = self.memword(addr)
                        self.expect_write(k, d["space"], word, data, mask, st)
                        beats = self.resp_beats(READ, st, tag, data)
                        self.future.append((self.cycle + rng.randint(0, 60), beats,
                                            dict(kind="load", k=k, status=st)))
            # rx: one whole packet at a time, random gaps between beats
            if self.rx_pkt is None:
                ready = [i for i, f in enumerate(self.future) if f[0] <= self.cycle]
                if ready:
                    _, beats, info = self.future.pop(rng.choice(ready))
                    self.rx_pkt, self.rx_info = list(beats), info
            if self.rx_pkt is not None and not self.rx_offered and rng.random() >= rx_idle:
                dut.rx__payload.value = self.rx_pkt[0]
                self.rx_offered = True                 # valid stays up until the transfer
            dut.rx__valid.value = int(self.rx_offered)
            dut.tx__ready.value = int(rng.random() < tx_rp)
            dut.sp_wr__ready.value = int(rng.random() < wr_rp)
            dut.acc_wr__ready.value = int(rng.random() < wr_rp)
            dut.acc_rd__req__ready.value = int(rng.random() < 0.7)
            if self.acc_resp is None and self.acc_q and self.acc_q[0][0] <= self.cycle:
                self.acc_resp = self.acc_q.popleft()[1]
            dut.acc_rd__resp__valid.value = int(self.acc_resp is not None)
            if self.acc_resp is not None:
                dut.acc_rd__resp__payload.value = self.acc_resp
            if self.finished():
                # Keep sampling for a few cycles: a response taken on this edge still gives its
                # registered ``fault`` pulse, and a spurious ``load_done`` / ``store_done`` pulse
                # would show here as one with nothing outstanding.
                if drain_end is None:
                    drain_end = self.cycle + DRAIN_CYCLES
                elif self.cycle >= drain_end:
                    return
            if self.cycle > p["max_cycles"]:
                self.err(f"timeout: {self.loads_done}/{n_loads} loads,"
                         f" {self.stores_done}/{n_stores} stores done")
                return

    def finished(self):
        return (self.loads_done == len(self.loads) and self.stores_done == len(self.stores)
                and not self.future and self.rx_pkt is None)

    # ---------------------------------------------------------------- events
    def on_tx(self, word):
        b = unpack(self.f_beat, word)
        hdr = unpack(self.f_hdr, b["hdr"])
        if self.tx_partial is not None:                # the data beat of a WRITE
            exp = self.tx_partial
            self.tx_partial = None
            if b["data"] != exp["data"] or not b["last"]:
                self.err(f"WRITE {exp['addr']:#x}: data {b['data']:#x} last {b['last']},"
                         f" expected {exp['data']:#x}")
            self.respond_store(exp)
            return
        h = unpack(self.f_req, b["data"])
        if b["data"] >> sum(w for _, w in self.f_req):
            self.err("request head: bits above the head layout are not zero")
        if hdr["cls"] != 0 or hdr["mcast"] != 0 or hdr["port"] != 1 or hdr["dest"] != self.owner(h["addr"]):
            self.err(f"request header {hdr} for address {h['addr']:#x}")
        if h["op"] == READ:
            self.read_requests += 1
            if not b["last"]:
                self.err("READ request without last")
            if not self.exp_reads:
                self.err(f"unexpected READ {h}")
                return
            e = self.exp_reads.popleft()
            if (h["addr"], h["id"], h["dest"]) != (e["addr"], e["tag"], e["dest"]):
                self.err(f"READ of LOAD {e['k']}: got addr {h['addr']:#x} id {h['id']:#x}"
                         f" dest {h['dest']:#x},"
                         f" expected addr {e['addr']:#x} id {e['tag']:#x} dest {e['dest']:#x}")
            self.load_issued[e["k"]] += 1
            if e["mine"]:
                st = self.status(self.p["err_prob"])
                data = self.memword(e["addr"])
                self.expect_write(e["k"], e["space"], e["word"], data, e["mask"], st)
                delay = self.rng.randint(1, 8) + 10 * self.owner(e["addr"])
                self.future.append((self.cycle + delay, self.resp_beats(READ, st, h["id"], data),
                                    dict(kind="load", k=e["k"], status=st)))
            return
        if h["op"] not in (WRITE, ALLOC):
            self.err(f"request with op {h['op']}")
            return
        if not self.exp_store_pkts:
            self.err(f"unexpected store packet {h}")
            return
        e = self.exp_store_pkts.popleft()
        e["tag"] = pack(self.f_tag, {"space": ACC, "quiet": e["quiet"]})
        if h["op"] != e["op"] or h["addr"] != e["addr"] or h["dest"] != self.own or h["id"] != e["tag"]:
            self.err(f"store packet of STORE {e['j']}: got op {h['op']} addr {h['addr']:#x}"
                     f" dest {h['dest']:#x} id {h['id']:#x},"
                     f" expected op {e['op']} addr {e['addr']:#x} id {e['tag']:#x}")
        if h["op"] == WRITE:
            self.write_requests += 1
            if h["mask"] != e.get("mask"):
                self.err(f"WRITE {h['addr']:#x}: mask {h['mask']:#x}, expected {e.get('mask', 0):#x}")
            if b["last"]:
                self.err("WRITE head with last")
            self.tx_partial = e
        else:
            self.alloc_requests += 1
            if not b["last"]:
                self.err("ALLOC without last")
            self.respond_store(e)

    def respond_store(self, e):
        """What the slice port sends back: nothing for a quiet request that succeeds."""
        st = self.status(self.p["err_prob"])
        if e["quiet"] and st == OK:
            return
        self.future.append((self.cycle + self.rng.randint(1, 30), self.resp_beats(e["op"], st, e["tag"]),
                            dict(kind="store", j=e["j"], status=st, quiet=e["quiet"])))

    def on_delivered(self, info):
        if info["status"] != OK:
            self.faults_expected += 1
        if info["kind"] == "store":
            self.store_resps_due[info["j"]] -= not info["quiet"]
        else:
            self.resp_words += 1
            if info["status"] != OK:
                self.pending_errs[info["k"]] -= 1

    def on_write(self, space, w):
        key = (space, w["addr"], w["data"] & self.bytes_mask(w["mask"]), w["mask"])
        if self.exp_writes[key] <= 0:
            self.err(f"unexpected write {'acc' if space else 'sp'} word {w['addr']:#x} mask {w['mask']:#x}"
                     f" data {w['data']:#x}")
            return
        self.exp_writes[key] -= 1
        k = self.write_owner[key].popleft()
        self.pending_writes[k] -= 1

    def on_load_done(self):
        k = self.loads_done
        if k >= len(self.loads):
            self.err("load_done pulse with no LOAD outstanding")
            return
        d = self.loads[k]
        if self.load_next <= k:
            self.err(f"load_done for LOAD {k} before its descriptor was taken")
        if self.pending_writes[k] or self.pending_errs[k]:
            self.err(f"load_done for LOAD {k} (mode {d['mode']}) with {self.pending_writes[k]} writes and"
                     f" {self.pending_errs[k]} error responses missing")
        if d["mode"] != RECV and self.load_issued[k] != len(self.words(d)):
            self.err(f"load_done for LOAD {k} (mode {d['mode']}, dest {d['dest']:#x}) after"
                     f" {self.load_issued[k]} of {len(self.words(d))} requests left on tx")
        self.loads_done += 1

    def on_store_done(self):
        j = self.stores_done
        if j >= len(self.stores):
            self.err("store_done pulse with no STORE outstanding")
            return
        if self.store_resps_due[j]:
            self.err(f"store_done for STORE {j} with {self.store_resps_due[j]} responses missing")
        self.stores_done += 1

    def check(self):
        dut = self.dut
        if self.exp_reads:
            self.err(f"{len(self.exp_reads)} READ requests never sent")
        if self.exp_store_pkts:
            self.err(f"{len(self.exp_store_pkts)} store packets never sent")
        missing = sum(v for v in self.exp_writes.values() if v > 0)
        if missing:
            self.err(f"{missing} local writes never happened")
        if self.faults != self.faults_expected:
            self.err(f"{self.faults} fault pulses, expected {self.faults_expected}")
        for name in ("read_requests", "write_requests", "alloc_requests", "resp_words"):
            got = int(getattr(dut, name).value)
            if got != getattr(self, name):
                self.err(f"counter {name} = {got}, expected {getattr(self, name)}")
        if int(dut.busy.value):
            self.err("busy at the end")
        assert not self.errors, "\n".join(self.errors)


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for s in ("load__valid", "store__valid", "rx__valid", "acc_rd__resp__valid"):
        getattr(dut, s).value = 0
    for s in ("tx__ready", "sp_wr__ready", "acc_wr__ready", "acc_rd__req__ready"):
        getattr(dut, s).value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0


@cocotb.test()
async def dma_random(dut):
    p = tessera.tb.params()
    cfg = preset(p["preset"])
    await reset(dut)
    bench = Bench(dut, cfg, p["node"], p)
    await bench.run()
    await ClockCycles(dut.clk, 5)
    print(f"[dma] {bench.cycle} cycles: {len(bench.loads)} LOADs, {len(bench.stores)} STOREs,"
          f" {bench.read_requests} READs, {bench.write_requests} WRITEs, {bench.alloc_requests} ALLOCs,"
          f" {bench.resp_words} data words, {bench.faults} faults")
    bench.check()


@cocotb.test()
async def dma_send_elsewhere_waits_for_tx(dut):
    """A SEND LOAD whose group leaves this tile out brings no data here, so it completes once its
    requests are out. Its ``load_done`` must come only after the last request beat has left on
    ``tx`` (the bug of issue 14: it came when that beat entered the DMA's tx register, while
    ``tx.ready`` was still low). ``tx.ready`` is held low, then given one cycle in three."""
    p = tessera.tb.params()
    cfg = preset(p["preset"])
    W = cfg.tile.word_bytes
    node = p["node"]
    other = (node + 1) % cfg.noc.nodes
    f_desc = layout_fields(xfer_desc_layout(cfg))
    await reset(dut)
    rows, rb = 2, 2 * W
    d = dict(mode=SEND, space=SP, local_addr=0, pitch=rb, mem_addr=4 * W, stride=8 * W, rows=rows,
             row_bytes=rb, dest=1 << other)
    requests = rows * rb // W
    dut.load__payload.value = pack(f_desc, d)
    dut.load__valid.value = 1
    sent, done_at, sent_at_done = 0, None, None
    for cycle in range(200):
        await RisingEdge(dut.clk)
        if int(dut.load__ready.value):
            dut.load__valid.value = 0
        if int(dut.tx__valid.value) and int(dut.tx__ready.value):
            sent += 1
        if int(dut.load_done.value):
            assert done_at is None, f"second load_done pulse at cycle {cycle}"
            done_at, sent_at_done = cycle, sent
        dut.tx__ready.value = int(cycle >= 20 and cycle % 3 == 0)
    assert sent == requests, f"{sent} of {requests} requests sent"
    assert done_at is not None, "no load_done for the SEND LOAD"
    assert sent_at_done == requests, \
        f"load_done at cycle {done_at} after {sent_at_done} of {requests} requests left on tx"
    assert not int(dut.busy.value), "busy after the LOAD completed"


@cocotb.test()
async def dma_throughput(dut):
    """With tx, the write ports and the accumulator always ready: one READ request per cycle for a
    LOAD; 2 beats per word (3 for a word that starts a fully covered line) for a STORE, no gaps."""
    p = tessera.tb.params()
    cfg = preset(p["preset"])
    W = cfg.tile.word_bytes
    f_desc = layout_fields(xfer_desc_layout(cfg))
    f_beat = layout_fields(beat_layout(cfg.noc))
    for kind in ("load", "store"):
        await reset(dut)
        for s in ("tx__ready", "sp_wr__ready", "acc_wr__ready", "acc_rd__req__ready"):
            getattr(dut, s).value = 1
        rows, rb = 3, 8 * W
        d = dict(mode=LOCAL, space=ACC if kind == "store" else SP, local_addr=0, pitch=rb, mem_addr=W,
                 stride=16 * W, rows=rows, row_bytes=rb, dest=0)
        words = rows * rb // W
        L = cfg.cache.line_bytes
        allocs = sum(1 for r in range(rows) for w in range(rb // W)
                     if (d["mem_addr"] + r * d["stride"] + w * W) % L == 0 and rb - w * W >= L)
        beats = words if kind == "load" else 2 * words + allocs
        getattr(dut, f"{kind}__payload").value = pack(f_desc, d)
        getattr(dut, f"{kind}__valid").value = 1
        cycles, acc_pending = [], []
        cycle = 0
        while len(cycles) < beats and cycle < 2000:
            await RisingEdge(dut.clk)
            cycle += 1
            if int(getattr(dut, f"{kind}__ready").value):
                getattr(dut, f"{kind}__valid").value = 0
            if int(dut.tx__valid.value):
                cycles.append(cycle)
                unpack(f_beat, int(dut.tx__payload.value))
            if int(dut.acc_rd__req__valid.value):
                acc_pending.append(int(dut.acc_rd__req__payload.value))
            if acc_pending and int(dut.acc_rd__resp__valid.value) and int(dut.acc_rd__resp__ready.value):
                acc_pending.pop(0)
            if acc_pending:
                dut.acc_rd__resp__valid.value = 1
                dut.acc_rd__resp__payload.value = acc_pending[0]
            else:
                dut.acc_rd__resp__valid.value = 0
        span = cycles[-1] - cycles[0] + 1 if cycles else 0
        print(f"[dma] {kind}: {len(cycles)} beats in {span} cycles")
        assert len(cycles) == beats and span == beats, \
            f"{kind}: {len(cycles)} beats of {beats} in {span} cycles"
