"""AxiArbiter under cocotbext-axi: n ``AxiMaster``s on ``s_axi{i}``, one ``AxiRam`` on ``m_axi``.

``test_random_traffic``: every master runs several concurrent workers; each worker owns a disjoint
slice of its master's region and issues random (unaligned, 1..max_len byte) burst writes and
read-backs of that slice, plus reads of a shared region preloaded in the RAM. Every read is
compared with a shadow; at the end the whole RAM is compared with the shadow. Random pauses on
every channel of every master and of the RAM. A channel checker on the ports also requires that
each ``m_axi`` AR/AW is the oldest pending request of the port named by its ID's high bits
(fields unchanged, low ID bits = upstream ID), and that ``m_axi`` W beats are the ports' beats in
``m_axi`` AW order.

With ``mem = "interleave"`` the RAM is :class:`tessera.tb.common.axi_memory.AxiMemory` with random
ready/valid (probability ``1 - pause``) and ``interleave``: it interleaves R beats of different IDs (so of
different ports) and reorders B across IDs.

``test_throughput``: no pauses; every master streams long (256-beat) reads and, at the same time,
long writes; R beats and W beats per cycle on ``m_axi``, each from its first to its last beat, must
be >= ``min_rate`` (result in ``axi_arbiter_throughput.json`` of the run directory).
"""

from __future__ import annotations

import collections
import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Combine, RisingEdge
from cocotbext.axi import AxiBus, AxiMaster, AxiRam

import tessera.tb
from tessera.tb.common.axi_memory import AxiMemory
from tessera.tb.stream import rng_for

AR_FIELDS = ("araddr", "arlen", "arsize", "arburst", "arlock", "arcache", "arprot")
AW_FIELDS = ("awaddr", "awlen", "awsize", "awburst", "awlock", "awcache", "awprot")
W_FIELDS = ("wdata", "wstrb", "wlast")


def pause_gen(rng: random.Random, prob: float):
    while True:
        yield rng.random() < prob


class Env:
    def __init__(self, dut, *, pause: float):
        p = tessera.tb.params()
        self.dut, self.p = dut, p
        self.n, self.id_bits = p["n"], p["id_bits"]
        self.sel_bits = (self.n - 1).bit_length()
        self.size = 1 << p["addr_bits"]
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.masters = [AxiMaster(AxiBus.from_prefix(dut, f"s_axi{i}"), dut.clk, dut.rst)
                        for i in range(self.n)]
        if p.get("mem") == "interleave":
            self.ram = AxiMemory(dut, "m_axi", dut.clk, data_bytes=p["data_bits"] // 8, rng=rng_for("mem"),
                                 ready_prob=1 - pause, valid_prob=1 - pause, interleave=True)
        else:
            self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=self.size)
        if pause > 0:
            prng = rng_for("pause")
            chans = []
            if isinstance(self.ram, AxiRam):
                wr, rd = self.ram.write_if, self.ram.read_if
                chans += [wr.aw_channel, wr.w_channel, wr.b_channel, rd.ar_channel, rd.r_channel]
            for mst in self.masters:
                chans += [mst.write_if.aw_channel, mst.write_if.w_channel, mst.write_if.b_channel,
                          mst.read_if.ar_channel, mst.read_if.r_channel]
            for ch in chans:
                ch.set_pause_generator(pause_gen(random.Random(prng.random()), pause))
        self.errors: list[str] = []
        self.cycle = 0
        self.beats = {"r": [0, None, None], "w": [0, None, None]}   # count, first, last cycle on m_axi
        cocotb.start_soon(self._check())

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    def _sig(self, port, name):
        return int(getattr(self.dut, f"{port}_{name}").value)

    def _fire(self, port, ch):
        return self._sig(port, f"{ch}valid") and self._sig(port, f"{ch}ready")

    async def _check(self):
        """Channel checker: m_axi AR/AW/W traffic is exactly the ports' traffic, in order."""
        n, ib = self.n, self.id_bits
        ar = [collections.deque() for _ in range(n)]
        aw = [collections.deque() for _ in range(n)]
        w = [collections.deque() for _ in range(n)]
        m_w = collections.deque()
        m_aw_src = collections.deque()
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            for i in range(n):
                s = f"s_axi{i}"
                if self._fire(s, "ar"):
                    ar[i].append(tuple(self._sig(s, f) for f in AR_FIELDS) + (self._sig(s, "arid"),))
                if self._fire(s, "aw"):
                    aw[i].append(tuple(self._sig(s, f) for f in AW_FIELDS) + (self._sig(s, "awid"),))
                if self._fire(s, "w"):
                    w[i].append(tuple(self._sig(s, f) for f in W_FIELDS))
            for ch, fields, q in (("ar", AR_FIELDS, ar), ("aw", AW_FIELDS, aw)):
                if self._fire("m_axi", ch):
                    mid = self._sig("m_axi", f"{ch}id")
                    src = mid >> ib
                    got = tuple(self._sig("m_axi", f) for f in fields) + (mid & ((1 << ib) - 1),)
                    if src >= n or not q[src]:
                        self.errors.append(f"cycle {self.cycle}: m_axi {ch} from port {src}, none pending")
                    else:
                        exp = q[src].popleft()
                        if exp != got:
                            self.errors.append(f"cycle {self.cycle}: m_axi {ch} {got} != port {src} {exp}")
                    if ch == "aw":
                        m_aw_src.append(src)
            if self._fire("m_axi", "w"):
                m_w.append(tuple(self._sig("m_axi", f) for f in W_FIELDS))
            while m_w and m_aw_src:
                src = m_aw_src[0]
                beat = m_w.popleft()
                if src >= n or not w[src] or w[src][0] != beat:
                    self.errors.append(f"cycle {self.cycle}: m_axi W {beat} is not port {src}'s next beat")
                    m_aw_src.popleft()
                    continue
                w[src].popleft()
                if beat[2]:
                    m_aw_src.popleft()
            for ch in ("r", "w"):
                if self._fire("m_axi", ch):
                    b = self.beats[ch]
                    b[0] += 1
                    b[1] = self.cycle if b[1] is None else b[1]
                    b[2] = self.cycle
            if len(self.errors) > 20:
                raise AssertionError("\n".join(self.errors))


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def test_random_traffic(dut):
    p = tessera.tb.params()
    env = Env(dut, pause=p["pause"])
    await env.reset()
    rng = rng_for("traffic")
    n, size = env.n, env.size
    region = size // (n + 1)                       # n private regions, then the shared one
    shared_base = n * region
    shared = bytes(rng.randrange(256) for _ in range(region))
    env.ram.write(shared_base, shared)
    shadow = bytearray(size)
    shadow[shared_base:shared_base + region] = shared
    workers, ops, max_len = p["workers"], p["ops"], p["max_len"]
    chunk = region // workers
    stats = collections.Counter()

    async def worker(i, k):
        r = random.Random(rng.random())
        mst = env.masters[i]
        lo = i * region + k * chunk
        for _ in range(ops):
            kind = r.random()
            length = r.randint(1, max_len) if r.random() < 0.8 else r.randint(1, 16)
            if kind < 0.4:
                addr = r.randrange(lo, lo + chunk - length + 1)
                data = bytes(r.randrange(256) for _ in range(length))
                await mst.write(addr, data)
                shadow[addr:addr + length] = data
                stats["writes"] += 1
            else:
                base = lo if kind < 0.75 else shared_base
                span = chunk if kind < 0.75 else region
                addr = r.randrange(base, base + span - length + 1)
                resp = await mst.read(addr, length)
                if resp.data != bytes(shadow[addr:addr + length]):
                    env.errors.append(f"port {i} read {addr:#x}+{length}: got {resp.data.hex()} "
                                      f"expected {bytes(shadow[addr:addr + length]).hex()}")
                stats["reads"] += 1
            stats["bytes"] += length

    await Combine(*[cocotb.start_soon(worker(i, k)) for i in range(n) for k in range(workers)])
    await ClockCycles(dut.clk, 10)
    if env.ram.read(0, size) != bytes(shadow):
        bad = next(a for a in range(size) if env.ram.read(a, 1)[0] != shadow[a])
        env.errors.append(f"final RAM differs from the shadow, first at {bad:#x}")
    switches = getattr(env.ram, "switches", None)
    dut._log.info("random traffic: %d reads, %d writes, %d bytes, %d cycles, %d errors, R interleavings %s",
                  stats["reads"], stats["writes"], stats["bytes"], env.cycle, len(env.errors), switches)
    if switches is not None and env.n > 1:
        assert switches > 0, "the memory never interleaved R bursts"
    assert not env.errors, "\n".join(env.errors[:20])


@cocotb.test(timeout_time=300, timeout_unit="us")
async def test_throughput(dut):
    p = tessera.tb.params()
    env = Env(dut, pause=0.0)
    await env.reset()
    n = env.n
    bursts, per_master = p["bursts"], p["outstanding"]
    line = 256 * (p["data_bits"] // 8)              # one maximal INCR burst (4 KiB at 128 bits)
    half = env.size // 2                            # reads in the low half, writes in the high half

    async def stream(i, k, write):
        for b in range(bursts):
            addr = (((i * per_master + k) * bursts + b) * line) % half
            if write:
                await env.masters[i].write(half + addr, bytes([(i + b) & 0xFF]) * line)
            else:
                await env.masters[i].read(addr, line)

    await Combine(*[cocotb.start_soon(stream(i, k, w))
                    for i in range(n) for k in range(per_master) for w in (False, True)])
    result = {"n": n}
    for ch in ("r", "w"):
        beats, first, last = env.beats[ch]
        span = last - first + 1
        result[ch] = {"beats": beats, "cycles": span, "rate": beats / span}
        dut._log.info("%s throughput: %d beats in %d cycles = %.3f beats/cycle (n=%d)",
                      ch.upper(), beats, span, beats / span, n)
    run_dir = Path(os.environ.get("TESSERA_RUN_DIR", "."))
    (run_dir / "axi_arbiter_throughput.json").write_text(json.dumps(result))
    assert not env.errors, "\n".join(env.errors[:20])
    for ch in ("r", "w"):
        assert result[ch]["rate"] >= p["min_rate"], f"{ch.upper()} beats per cycle {result[ch]['rate']:.3f}"
