"""An AXI4 memory slave that interleaves R beats of different IDs, for arbiter tests.

cocotbext-axi's ``AxiRam`` returns one burst at a time, in order. ``InterleavingAxiMem`` keeps every
accepted read burst open and each cycle sends the next beat of a randomly chosen burst (the oldest
one of its ID, so same-ID bursts stay in order as AXI requires); B responses of different IDs are
also returned out of order. AR/AW/W ready and R/B valid are random (``ready_prob``, ``valid_prob``);
WREADY is only raised while an AW waits for data. A write lands in memory beat by beat, before
its B. INCR bursts only.
Sampling discipline as ``tessera.tb.stream``: at each rising edge, a channel transferred when valid and
ready were both high; then the next cycle's values are driven. ``switches`` counts R beats whose
ID differs from the previous beat's while that previous burst was unfinished.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import RisingEdge


class InterleavingAxiMem:
    def __init__(self, dut, prefix: str, clk, *, data_bytes: int, size: int, rng: random.Random,
                 ready_prob: float = 0.7, valid_prob: float = 0.7):
        self.dut, self.clk, self.D = dut, clk, data_bytes
        self.s = lambda name: getattr(dut, f"{prefix}_{name}")
        self.mem = bytearray(size)
        self.rng, self.ready_prob, self.valid_prob = rng, ready_prob, valid_prob
        self.reads: list[dict] = []      # open read bursts, oldest first
        self.aws: list[dict] = []        # accepted AWs waiting for their W beats, in order
        self.bs: list[int] = []          # BIDs ready to send, oldest first
        self.switches = 0
        self.r_beats = 0
        for name in ("arready", "awready", "wready", "rvalid", "bvalid", "rlast", "rdata", "rid", "rresp",
                     "bid", "bresp"):
            self.s(name).value = 0
        cocotb.start_soon(self._run())

    def read(self, addr: int, length: int) -> bytes:
        return bytes(self.mem[addr:addr + length])

    def write(self, addr: int, data: bytes):
        self.mem[addr:addr + len(data)] = data

    @staticmethod
    def _burst(addr, length, size):
        return {"addr": addr, "beats": length + 1, "size": size, "k": 0}

    def _beat_addr(self, b) -> int:
        nb = 1 << b["size"]
        if b["k"] == 0:
            return b["addr"]
        return (b["addr"] // nb) * nb + b["k"] * nb

    def _pick(self, items, key):
        """Random item among the oldest one of each key."""
        seen, cands = set(), []
        for it in items:
            if key(it) not in seen:
                seen.add(key(it))
                cands.append(it)
        return self.rng.choice(cands) if cands else None

    async def _run(self):
        s, D, rng = self.s, self.D, self.rng
        r_cur = b_cur = None
        prev_r = None
        while True:
            await RisingEdge(self.clk)
            # ---- transfers of this edge
            if int(s("arvalid").value) and int(s("arready").value):
                b = self._burst(int(s("araddr").value), int(s("arlen").value), int(s("arsize").value))
                b["id"] = int(s("arid").value)
                self.reads.append(b)
            if int(s("awvalid").value) and int(s("awready").value):
                b = self._burst(int(s("awaddr").value), int(s("awlen").value), int(s("awsize").value))
                b["id"] = int(s("awid").value)
                self.aws.append(b)
            if int(s("wvalid").value) and int(s("wready").value):
                b = self.aws[0]
                word = self._beat_addr(b) // D * D
                data, strb = int(s("wdata").value), int(s("wstrb").value)
                for j in range(D):
                    if strb >> j & 1:
                        self.mem[word + j] = (data >> 8 * j) & 0xFF
                b["k"] += 1
                last = int(s("wlast").value)
                assert bool(last) == (b["k"] == b["beats"]), "WLAST does not match AWLEN"
                if last:
                    self.aws.pop(0)
                    self.bs.append(b["id"])
            if r_cur is not None and int(s("rready").value):
                self.r_beats += 1
                if prev_r is not None and prev_r is not r_cur and prev_r["k"] < prev_r["beats"]:
                    self.switches += 1
                prev_r = r_cur
                r_cur["k"] += 1
                if r_cur["k"] == r_cur["beats"]:
                    self.reads.remove(r_cur)
                r_cur = None
            if b_cur is not None and int(s("bready").value):
                self.bs.remove(b_cur)
                b_cur = None
            # ---- drive the next cycle (valid held until its transfer)
            if r_cur is None and self.reads and rng.random() < self.valid_prob:
                r_cur = self._pick(self.reads, lambda b: b["id"])
                word = self._beat_addr(r_cur) // D * D
                s("rdata").value = int.from_bytes(self.mem[word:word + D], "little")
                s("rid").value = r_cur["id"]
                s("rlast").value = int(r_cur["k"] == r_cur["beats"] - 1)
            s("rvalid").value = int(r_cur is not None)
            if b_cur is None and self.bs and rng.random() < self.valid_prob:
                b_cur = self._pick(self.bs, lambda i: i)
                s("bid").value = b_cur
            s("bvalid").value = int(b_cur is not None)
            for name in ("arready", "awready"):
                s(name).value = int(rng.random() < self.ready_prob)
            # W is taken only after its AW (legal: a slave may wait for AW before WREADY)
            s("wready").value = int(bool(self.aws) and rng.random() < self.ready_prob)
