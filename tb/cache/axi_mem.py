"""A pipelined AXI4 memory slave with a fixed latency, for cycle measurements.

cocotbext-axi's ``AxiRam`` serves one burst at a time, so its bandwidth falls as latency grows; the
cache benchmark needs a memory that keeps many bursts in flight. ``LatencyAxiMem`` accepts an AR
or AW every cycle; the first R beat of a read comes ``latency`` cycles after its AR, then one beat
per cycle (RREADY permitting), bursts in order; the B of a write comes ``latency`` cycles after its
last W. It counts beats and the reads in flight (``outstanding``, ``max_outstanding``).
Same sampling discipline as ``tessera.tb.stream``: at each rising edge, a channel transfers when valid
and ready were both high.
"""

from __future__ import annotations

import collections

import cocotb
from cocotb.triggers import RisingEdge


class LatencyAxiMem:
    def __init__(self, dut, prefix: str, clk, *, data_bytes: int, latency: int = 20):
        self.dut, self.clk, self.D, self.latency = dut, clk, data_bytes, latency
        self.s = lambda name: getattr(dut, f"{prefix}_{name}")
        self.mem: dict[int, int] = {}  # word address -> word
        self.cycle = 0
        self.r_beats = self.w_beats = 0
        self.outstanding = 0
        self.max_outstanding = 0
        self.outstanding_sum = 0
        self.counting = False
        self.counted_cycles = 0
        self._reads: collections.deque = collections.deque()  # [ready_cycle, addr, beats_left, id]
        self._aws: collections.deque = collections.deque()
        self._wbeats: list[int] = []
        self._bs: collections.deque = collections.deque()  # (ready_cycle, id)
        for name in ("awready", "wready", "arready"):
            self.s(name).value = 1
        for name in ("rvalid", "bvalid", "rresp", "bresp", "rlast", "rdata", "rid", "bid"):
            self.s(name).value = 0
        cocotb.start_soon(self._run())

    def read_bytes(self, addr: int, n: int) -> bytes:
        out = bytearray()
        for a in range(addr, addr + n):
            word = self.mem.get(a // self.D, 0)
            out.append((word >> (8 * (a % self.D))) & 0xFF)
        return bytes(out)

    def write_bytes(self, addr: int, data: bytes):
        for i, b in enumerate(data):
            a = addr + i
            w = self.mem.get(a // self.D, 0)
            sh = 8 * (a % self.D)
            self.mem[a // self.D] = (w & ~(0xFF << sh)) | (b << sh)

    async def _run(self):
        s, D = self.s, self.D
        r_cur = None
        b_cur = None
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            # ---- sample transfers of the edge
            if int(s("arvalid").value):
                beats = int(s("arlen").value) + 1
                self._reads.append(
                    [self.cycle + self.latency - 1, int(s("araddr").value) // D, beats, int(s("arid").value)]
                )
                self.outstanding += 1
            if int(s("awvalid").value):
                self._aws.append((int(s("awaddr").value) // D, int(s("awid").value)))
            if int(s("wvalid").value):
                self._wbeats.append(int(s("wdata").value))
                self.w_beats += self.counting
                if int(s("wlast").value):
                    addr, wid = self._aws.popleft()
                    for k, word in enumerate(self._wbeats):
                        self.mem[addr + k] = word
                    self._wbeats = []
                    self._bs.append((self.cycle + self.latency - 1, wid))
            if r_cur is not None and int(s("rready").value):
                self.r_beats += self.counting
                r_cur[1] += 1
                r_cur[2] -= 1
                if r_cur[2] == 0:
                    self._reads.popleft()
                    self.outstanding -= 1
                r_cur = None
            if b_cur is not None and int(s("bready").value):
                self._bs.popleft()
                b_cur = None
            if self.counting:
                self.counted_cycles += 1
                self.outstanding_sum += self.outstanding
            self.max_outstanding = max(self.max_outstanding, self.outstanding if self.counting else 0)
            # ---- drive the next cycle
            if self._reads and self._reads[0][0] <= self.cycle:
                r_cur = self._reads[0]
                s("rvalid").value = 1
                s("rdata").value = self.mem.get(r_cur[1], 0)
                s("rid").value = r_cur[3]
                s("rlast").value = int(r_cur[2] == 1)
            else:
                s("rvalid").value = 0
            if self._bs and self._bs[0][0] <= self.cycle:
                b_cur = self._bs[0]
                s("bvalid").value = 1
                s("bid").value = b_cur[1]
            else:
                s("bvalid").value = 0
