"""Memory behind the fabric's AXI4 ports: shared storage, fixed latency, limited bandwidth.

cocotbext-axi's ``AxiRam`` serves one burst at a time, so with a 100-cycle latency a port would
deliver a 4-beat line every ~100 cycles; the fabric keeps many line fills in flight (MSHRs in
every slice), as HBM behind a mesh would. ``FabricMemory`` is a pipelined AXI4 slave model
attached to every memory port of the fabric (:func:`tessera.rtl.fabric.fabric.mem_prefixes`), all ports
sharing one byte array:

* **Latency**: the first R beat of a burst is offered ``latency`` cycles after its AR is
  accepted, the B of a write ``latency`` cycles after its last W. Bursts of a port are served
  in order. AR / AW are always accepted.
* **Bandwidth**: ``bytes_per_cycle`` is the total over all ports; each port gets an equal share
  as a token bucket, and an R or W beat (``data_bytes``) waits until its port has the tokens.
  With ``bytes_per_cycle >= ports * data_bytes`` the ports run at one beat per cycle.
* **Errors**: reads or writes touching an address in ``error_ranges`` (list of ``(lo, hi)``,
  hi exclusive) get ``SLVERR`` (read data 0, write not performed).
* Counters: ``read_bytes`` / ``write_bytes`` (R and W beats times ``data_bytes``) and
  ``reads`` / ``writes`` (bursts), for the DRAM figures of the GEMM report.

Same sampling discipline as ``tessera.tb.stream``: at each rising edge a channel transfers when valid
and ready were both high; outputs for the next cycle are driven right after the edge.
"""

from __future__ import annotations

import collections

import cocotb
from cocotb.triggers import RisingEdge

SLVERR = 2


class FabricMemory:
    def __init__(self, dut, prefixes, clk, *, data_bytes: int, latency: int = 100,
                 bytes_per_cycle: float | None = None, size: int = 1 << 20, error_ranges=()):
        self.dut, self.clk, self.D = dut, clk, data_bytes
        self.latency = max(1, int(latency))
        ports = len(prefixes)
        total = bytes_per_cycle if bytes_per_cycle is not None else ports * data_bytes
        if total <= 0:
            raise ValueError(f"bytes_per_cycle = {bytes_per_cycle} must be positive")
        self.rate = total / ports
        self.mem = bytearray(size)
        self.error_ranges = list(error_ranges)
        self.read_bytes = self.write_bytes = self.reads = self.writes = 0
        self.errors = 0
        for prefix in prefixes:
            cocotb.start_soon(self._port(prefix))

    # ---- backdoor access (the host's view of memory) -------------------------------------------
    def _grow(self, end: int):
        if end > len(self.mem):
            self.mem.extend(bytes(max(end - len(self.mem), len(self.mem))))

    def write(self, addr: int, data: bytes):
        self._grow(addr + len(data))
        self.mem[addr:addr + len(data)] = data

    def read(self, addr: int, n: int) -> bytes:
        self._grow(addr + n)
        return bytes(self.mem[addr:addr + n])

    def _bad(self, lo: int, n: int) -> bool:
        return any(lo < hi_ and lo + n > lo_ for lo_, hi_ in self.error_ranges)

    # ---- one AXI port ---------------------------------------------------------------------------
    async def _port(self, prefix: str):
        sig = {name: getattr(self.dut, f"{prefix}_{name}") for name in (
            "arvalid", "araddr", "arlen", "arid", "arready", "rvalid", "rdata", "rresp", "rlast", "rid",
            "rready", "awvalid", "awaddr", "awlen", "awid", "awready", "wvalid", "wdata", "wlast",
            "wready", "bvalid", "bresp", "bid", "bready")}
        D, rate = self.D, self.rate
        cap = max(2 * D, rate)
        sig["arready"].value = 1
        sig["awready"].value = 1
        for name in ("rvalid", "bvalid", "rresp", "bresp", "rlast", "rdata", "rid", "bid", "wready"):
            sig[name].value = 0
        reads = collections.deque()   # [due cycle, word address, beats left, id, error]
        aws = collections.deque()     # (address, beats, id)
        bs = collections.deque()      # (due cycle, id, error)
        wbeats: list[int] = []
        tokens = cap
        cycle = 0
        r_cur = b_cur = None
        w_ready = False
        while True:
            await RisingEdge(self.clk)
            cycle += 1
            # ---- transfers of this edge
            if sig["arvalid"].value:
                beats = int(sig["arlen"].value) + 1
                addr = int(sig["araddr"].value)
                err = self._bad(addr, beats * D)
                reads.append([cycle + self.latency - 1, addr // D, beats, int(sig["arid"].value), err])
                self.reads += 1
            if sig["awvalid"].value:
                aws.append((int(sig["awaddr"].value), int(sig["awlen"].value) + 1, int(sig["awid"].value)))
            if w_ready and sig["wvalid"].value:
                tokens -= D
                wbeats.append(int(sig["wdata"].value))
                self.write_bytes += D
                if sig["wlast"].value:
                    addr, _, wid = aws.popleft()
                    err = self._bad(addr, len(wbeats) * D)
                    if not err:
                        self.write(addr, b"".join(w.to_bytes(D, "little") for w in wbeats))
                    self.errors += err
                    self.writes += 1
                    wbeats = []
                    bs.append((cycle + self.latency - 1, wid, err))
            if r_cur is not None and sig["rready"].value:
                tokens -= D
                self.read_bytes += D
                r_cur[1] += 1
                r_cur[2] -= 1
                if r_cur[2] == 0:
                    self.errors += r_cur[4]
                    reads.popleft()
            if b_cur is not None and sig["bready"].value:
                bs.popleft()
            tokens = min(cap, tokens + rate)
            # ---- drive the next cycle (reads first, then writes, share the tokens)
            r_cur = None
            if reads and reads[0][0] <= cycle and tokens >= D:
                r_cur = reads[0]
                err = r_cur[4]
                sig["rvalid"].value = 1
                a = r_cur[1] * D
                sig["rdata"].value = 0 if err else int.from_bytes(self.read(a, D), "little")
                sig["rresp"].value = SLVERR if err else 0
                sig["rid"].value = r_cur[3]
                sig["rlast"].value = int(r_cur[2] == 1)
            else:
                sig["rvalid"].value = 0
            w_ready = bool(aws) and tokens >= (2 * D if r_cur is not None else D)
            sig["wready"].value = int(w_ready)
            b_cur = None
            if bs and bs[0][0] <= cycle:
                b_cur = bs[0]
                sig["bvalid"].value = 1
                sig["bid"].value = b_cur[1]
                sig["bresp"].value = SLVERR if b_cur[2] else 0
            else:
                sig["bvalid"].value = 0
