"""The fabric's CSR block (rtl/fabric/csr.py) through its AXI4-Lite host port.

A cocotbext-axi ``AxiLiteMaster`` with random pauses on all five channels drives the port; the
testbench drives every status and counter input with random values, pushes instruction words and
takes them from the ``cmd[t]`` streams with random back-pressure. The register map comes from
``tessera.rtl.fabric.csr_map``, whose tables ``tests/test_fabric_csr.py`` checks against docs/csr.md.

Tests: every register against the driven inputs, responses (OKAY / SLVERR / DECERR) for mapped,
read-only, write-only and unmapped addresses; command words appear on ``cmd[t]`` only after START,
in push order, with concurrent pushes to all tiles and partial (byte-strobed) CMD writes;
queue-full SLVERR; CONTROL clear (pulse, queue flushed, un-started, prefix property while
draining); the CYCLES counter against ACTIVE; the FLUSH pulse and op.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

import tessera.tb
from tessera.rtl.cache.layouts import COUNTERS
from tessera.rtl.config import preset
from tessera.rtl.fabric.csr_map import (
    ID_VALUE,
    REG,
    SLICE_BASE,
    SLICE_STRIDE,
    TILE_BASE,
    TILE_REG,
    TILE_STRIDE,
)
from tessera.tb.stream import BackPressure, rng_for

GLOBAL_INPUTS = {"NOC_LINK_FLITS": "noc_link_flits", "NOC_EJECT_FLITS": "noc_eject_flits",
                 "NOC_ERRORS": "noc_errors", "MCAST_PACKETS": "mcast_packets",
                 "L2_RESP_FLITS": "l2_resp_flits", "FLUSH_ERRORS": "flush_errors"}
TILE_INPUTS = {"BUSY_CYCLES": "busy_cycles", "LOADS": "loads", "STORES": "stores", "MATMULS": "matmuls"}
TILE = TILE_REG
STRIDE = TILE_STRIDE
assert SLICE_STRIDE == TILE_STRIDE
OKAY, SLVERR, DECERR = int(AxiResp.OKAY), int(AxiResp.SLVERR), int(AxiResp.DECERR)
IDLE, RUN, DONE, ERROR = 0, 1, 2, 3
M32 = 0xFFFF_FFFF


def treg(t, name):
    return TILE_BASE + STRIDE * t + TILE[name]


def sreg(s, i):
    return SLICE_BASE + STRIDE * s + 4 * i


def pause_gen(rng: random.Random, prob: float):
    while True:
        yield rng.random() < prob


class Env:
    """Clock, reset, the AXI4-Lite master, input drivers, cmd monitors and pulse counters."""

    def __init__(self, dut, cfg, *, pause=0.3, ready_prob=0.6):
        self.dut, self.cfg = dut, cfg
        self.T = cfg.tiles
        self.depth = cfg.tile.cmd_queue_depth
        self.rng = rng_for("csr")
        self.errors: list[str] = []
        self.cycle = 0
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        prng = rng_for("pause")
        for ch in (self.axil.write_if.aw_channel, self.axil.write_if.w_channel, self.axil.write_if.b_channel,
                   self.axil.read_if.ar_channel, self.axil.read_if.r_channel):
            ch.set_pause_generator(pause_gen(random.Random(prng.random()), pause))
        # what the host has asked for: a tile may deliver words only once a START was issued
        self.start_issued = [False] * self.T
        self.received: list[list[int]] = [[] for _ in range(self.T)]
        self.bp = [BackPressure(dut, f"cmd__{t}", dut.clk, ready_prob=ready_prob) for t in range(self.T)]
        self.clear_pulses = [0] * self.T
        self.flushes: list[int] = []      # flush_op of every flush pulse
        self.status = [dict(state=IDLE, error=0, pc=0) for _ in range(self.T)]

    async def reset(self):
        dut = self.dut
        dut.rst.value = 1
        self.drive_inputs(zero=True)
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        cocotb.start_soon(self._watch())

    # ---- inputs --------------------------------------------------------------------------------
    def set_status(self, t, state, error=0, pc=0):
        self.status[t] = dict(state=state, error=error, pc=pc)
        getattr(self.dut, f"status__{t}").value = state | error << 2 | pc << 6

    def drive_inputs(self, zero=False):
        """Drive every counter and status input with random values (or 0); return the expectation."""
        rng, dut = self.rng, self.dut
        val = (lambda bits: 0) if zero else (lambda bits: rng.getrandbits(bits))
        exp = {}
        for reg, port in GLOBAL_INPUTS.items():
            v = val(32)
            getattr(dut, port).value = v
            exp[REG[reg]] = v
        v = val(self.T)
        dut.flush_busy.value = v
        exp[REG["FLUSH"]] = v
        for t in range(self.T):
            if zero:
                self.set_status(t, IDLE)
            else:
                self.set_status(t, rng.randrange(4), rng.randrange(16), rng.getrandbits(16))
            st = self.status[t]
            exp[treg(t, "STATUS")] = st["state"] | st["error"] << 4 | st["pc"] << 16
            for reg, port in TILE_INPUTS.items():
                v = val(32)
                getattr(dut, f"{port}__{t}").value = v
                exp[treg(t, reg)] = v
        for s in range(self.T):
            word = 0
            for i in range(len(COUNTERS)):
                v = val(32)
                word |= v << (32 * i)
                exp[sreg(s, i)] = v
            getattr(dut, f"l2_counters__{s}").value = word
        return exp

    # ---- monitors ------------------------------------------------------------------------------
    async def _watch(self):
        dut = self.dut
        prev_flush = 0
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            for t in range(self.T):
                if int(getattr(dut, f"cmd__{t}__valid").value):
                    if not self.start_issued[t]:
                        self.error(f"cmd_{t} valid before any START")
                    if int(getattr(dut, f"cmd__{t}__ready").value):
                        self.received[t].append(int(getattr(dut, f"cmd__{t}__payload").value))
                if int(getattr(dut, f"clear__{t}").value):
                    self.clear_pulses[t] += 1
            f = int(dut.flush.value)
            if f:
                if prev_flush:
                    self.error("flush high for more than one cycle")
                self.flushes.append(int(dut.flush_op.value))
            prev_flush = f

    def error(self, msg):
        if len(self.errors) < 20:
            self.errors.append(f"cycle {self.cycle}: {msg}")

    def check(self):
        if self.errors:
            raise AssertionError("\n  ".join(["testbench errors:"] + self.errors))

    # ---- host port -----------------------------------------------------------------------------
    async def read(self, addr):
        r = await self.axil.read(addr, 4)
        return int.from_bytes(r.data, "little"), int(r.resp)

    async def write(self, addr, value, *, strb=0xF):
        """Write the bytes of ``value`` selected by ``strb`` (contiguous runs, one write each)."""
        data = (value & M32).to_bytes(4, "little")
        if strb == 0xF:
            return int((await self.axil.write(addr, data)).resp)
        lanes = [i for i in range(4) if strb >> i & 1]
        # contiguous lanes only: cocotbext-axi derives wstrb from address and length
        assert lanes == list(range(lanes[0], lanes[-1] + 1)), "non-contiguous strobe"
        r = await self.axil.write(addr + lanes[0], data[lanes[0]:lanes[-1] + 1])
        return int(r.resp)

    async def expect_read(self, addr, value, resp=OKAY, what=""):
        got, r = await self.read(addr)
        if (got, r) != (value & M32, resp):
            self.error(f"read {what or hex(addr)} @0x{addr:04x}: got 0x{got:08x} resp {r},"
                       f" expected 0x{value & M32:08x} resp {resp}")
        return got

    async def expect_write(self, addr, value, resp=OKAY, what="", strb=0xF):
        r = await self.write(addr, value, strb=strb)
        if r != resp:
            self.error(f"write {what or hex(addr)} @0x{addr:04x} = 0x{value & M32:08x}: resp {r},"
                       f" expected {resp}")
        return r

    async def push(self, t, word, *, resp=OKAY, partial=False):
        """Write CMD0..CMD3 of tile ``t`` (CMD3 last: the push). ``partial``: CMD0..2 in byte-strobed
        pieces, over a random stale value."""
        for i in range(3):
            part = (word >> (32 * i)) & M32
            if partial:
                await self.expect_write(treg(t, f"CMD{i}"), self.rng.getrandbits(32), what=f"CMD{i}")
                cut = self.rng.randrange(1, 4)          # bytes [0, cut) then [cut, 4)
                await self.expect_write(treg(t, f"CMD{i}"), part, strb=(1 << cut) - 1, what=f"CMD{i}")
                await self.expect_write(treg(t, f"CMD{i}"), part, strb=0xF & ~((1 << cut) - 1),
                                        what=f"CMD{i}")
            else:
                await self.expect_write(treg(t, f"CMD{i}"), part, what=f"CMD{i}")
        return await self.expect_write(treg(t, "CMD3"), word >> 96, resp=resp, what=f"tile {t} CMD3")

    async def wait_for(self, cond, timeout=20000, what="condition"):
        for _ in range(timeout):
            if cond():
                return True
            await RisingEdge(self.dut.clk)
        self.error(f"timeout waiting for {what}")
        return False


def setup(dut):
    p = tessera.tb.params()
    cfg = preset(p["preset"])
    return p, cfg


def mapped_addresses(T):
    addrs = set(REG.values())
    for t in range(T):
        addrs |= {treg(t, n) for n in TILE}
    for s in range(T):
        addrs |= {sreg(s, i) for i in range(len(COUNTERS))}
    return addrs


def random_unmapped(rng, T, n):
    mapped = mapped_addresses(T)
    pool = [0x034, 0x03C, 0x0FC, 0x800, treg(0, "MATMULS") + 4, TILE_BASE + STRIDE * T,
            sreg(0, len(COUNTERS)), SLICE_BASE + STRIDE * T, 0x3000, 0xFFFC]
    out = [a for a in pool if a not in mapped]
    while len(out) < n:
        a = rng.getrandbits(16) & ~3
        if a not in mapped:
            out.append(a)
    return out


@cocotb.test()
async def registers(dut):
    """Every register against random inputs; RO writes, WO reads and unmapped addresses."""
    p, cfg = setup(dut)
    env = Env(dut, cfg)
    await env.reset()
    T, rng = env.T, env.rng
    cfg_word = (cfg.noc.width | cfg.noc.height << 4 | cfg.tensor.rows << 8 | cfg.tensor.cols << 16
                | cfg.mem_ports << 24)
    started = 0
    await env.expect_read(REG["START"], 0, what="START after reset")
    for t in range(T):
        await env.expect_read(treg(t, "QUEUE"), env.depth, what=f"tile {t} QUEUE after reset")
    for rnd in range(p["rounds"]):
        exp = env.drive_inputs()
        # START ORs into the started mask
        mask = rng.getrandbits(T) if rnd else 0
        await env.expect_write(REG["START"], mask | (rng.getrandbits(32 - T) << T), what="START")
        started |= mask
        for t in range(T):
            env.start_issued[t] |= bool(mask >> t & 1)
        active = sum(1 << t for t in range(T) if started >> t & 1 and env.status[t]["state"] in (IDLE, RUN))
        exp.update({REG["ID"]: ID_VALUE, REG["CONFIG"]: cfg_word, REG["START"]: started,
                    REG["ACTIVE"]: active, REG["CYCLES_HI"]: 0})
        for t in range(T):
            exp[treg(t, "QUEUE")] = env.depth
        items = list(exp.items())
        rng.shuffle(items)
        for addr, value in items:
            await env.expect_read(addr, value)
        # write-only registers read as 0 with SLVERR
        for t in range(T):
            for n in ("CMD0", "CMD1", "CMD2", "CMD3", "CONTROL"):
                if rng.random() < 0.5:
                    await env.expect_read(treg(t, n), 0, SLVERR, what=f"tile {t} {n}")
        # read-only registers refuse writes (SLVERR) and keep their value
        ro = [a for a in exp if a not in (REG["START"], REG["FLUSH"])]
        for addr in rng.sample(ro, 12):
            await env.expect_write(addr, rng.getrandbits(32), SLVERR)
            await env.expect_read(addr, exp[addr])
        # unmapped: DECERR, reads return 0, writes change nothing
        for addr in random_unmapped(rng, T, 12):
            await env.expect_read(addr, 0, DECERR)
            await env.expect_write(addr, rng.getrandbits(32), DECERR)
        await env.expect_read(REG["START"], started, what="START after unmapped writes")
    if env.flushes or any(env.clear_pulses):
        env.error(f"spurious pulses: flush {env.flushes}, clear {env.clear_pulses}")
    env.check()


@cocotb.test()
async def command_queues(dut):
    """Concurrent pushes to every tile; words appear only after START, in order, under random ready."""
    p, cfg = setup(dut)
    env = Env(dut, cfg, ready_prob=p.get("ready_prob", 0.6))
    await env.reset()
    T, rng = env.T, env.rng
    programs = [[rng.getrandbits(128) for _ in range(rng.randrange(1, p["words"] + 1))] for _ in range(T)]
    first = [rng.randrange(len(prog) + 1) for prog in programs]   # pushed before START

    async def feed(t, words):
        for w in words:
            await env.push(t, w, partial=rng.random() < 0.2)

    tasks = [cocotb.start_soon(feed(t, programs[t][:first[t]])) for t in range(T)]
    for task in tasks:
        await task
    await ClockCycles(dut.clk, 20)
    for t in range(T):
        if env.received[t]:
            env.error(f"tile {t} delivered words before START")
        await env.expect_read(treg(t, "QUEUE"), (env.depth - first[t]) | first[t] << 16,
                              what=f"tile {t} QUEUE")

    # start tiles one by one in random order while the rest of the programs are pushed
    order = list(range(T))
    rng.shuffle(order)

    async def starter():
        for t in order:
            await ClockCycles(dut.clk, rng.randrange(0, 200))
            env.start_issued[t] = True
            await env.expect_write(REG["START"], 1 << t, what="START")

    tasks = [cocotb.start_soon(feed(t, programs[t][first[t]:])) for t in range(T)]
    tasks.append(cocotb.start_soon(starter()))
    for task in tasks:
        await task
    await env.wait_for(lambda: all(len(env.received[t]) == len(programs[t]) for t in range(T)),
                       what="every program delivered")
    await ClockCycles(dut.clk, 20)
    for t in range(T):
        got, want = env.received[t], programs[t]
        if got != want:
            pairs = enumerate(zip(got, want, strict=False))
            bad = next((i for i, (a, b) in pairs if a != b), min(len(got), len(want)))
            env.error(f"tile {t}: {len(got)} words delivered, {len(want)} pushed; first difference at {bad}")
        await env.expect_read(treg(t, "QUEUE"), env.depth, what=f"tile {t} QUEUE drained")
    await env.expect_read(REG["START"], (1 << T) - 1)
    dut._log.info("delivered %s words", [len(r) for r in env.received])
    env.check()


@cocotb.test()
async def queue_full_and_clear(dut):
    """Queue full -> SLVERR and nothing queued; CONTROL clear empties the queue and un-starts."""
    p, cfg = setup(dut)
    env = Env(dut, cfg, ready_prob=0.0)
    await env.reset()
    T, rng, depth = env.T, env.rng, env.depth
    f = rng.randrange(T)
    words = [rng.getrandbits(128) for _ in range(depth)]
    for w in words:
        await env.push(f, w)
    await env.expect_read(treg(f, "QUEUE"), depth << 16, what="full QUEUE")
    extra = rng.getrandbits(128)
    await env.push(f, extra, resp=SLVERR)
    await env.expect_read(treg(f, "QUEUE"), depth << 16, what="full QUEUE after refused push")
    env.bp[f].ready_prob = 0.5
    env.start_issued[f] = True
    await env.expect_write(REG["START"], 1 << f)
    await env.wait_for(lambda: len(env.received[f]) >= depth, what="full queue drained")
    await ClockCycles(dut.clk, 20)
    if env.received[f] != words:
        env.error(f"tile {f}: delivered {len(env.received[f])} words,"
                  f" not the {depth} pushed before the refusal")
    await env.expect_read(treg(f, "QUEUE"), depth, what="QUEUE drained")

    # clear with ready low: nothing delivered, queue emptied, tile un-started, one pulse
    for _ in range(p["clears"]):
        c = rng.randrange(T)
        env.bp[c].ready_prob = 0.0
        await ClockCycles(dut.clk, 2)
        base = len(env.received[c])
        k = rng.randrange(1, 8)
        for _ in range(k):
            await env.push(c, rng.getrandbits(128))
        env.start_issued[c] = True
        await env.expect_write(REG["START"], 1 << c)
        started = (await env.read(REG["START"]))[0]
        pulses = list(env.clear_pulses)
        if rng.random() < 0.5:   # a CONTROL write without bit 0 does nothing
            await env.expect_write(treg(c, "CONTROL"), rng.getrandbits(31) << 1, what="CONTROL no clear")
            await ClockCycles(dut.clk, 5)
            if env.clear_pulses != pulses:
                env.error("CONTROL write with bit0 = 0 pulsed clear")
            await env.expect_read(treg(c, "QUEUE"), (depth - k) | k << 16, what="QUEUE before clear")
        await env.expect_write(treg(c, "CONTROL"), 1 | rng.getrandbits(31) << 1, what="CONTROL clear")
        env.start_issued[c] = False
        await ClockCycles(dut.clk, 3)
        want = list(pulses)
        want[c] += 1
        if env.clear_pulses != want:
            env.error(f"clear pulses {env.clear_pulses}, expected {want}")
        if len(env.received[c]) != base:
            env.error(f"tile {c} delivered words while ready was low")
        await env.expect_read(REG["START"], started & ~(1 << c), what="START after clear")
        await env.expect_read(treg(c, "QUEUE"), depth, what="QUEUE after clear")
        # new words after the clear: only they are delivered, and only after a new START
        env.bp[c].ready_prob = 0.7
        new = [rng.getrandbits(128) for _ in range(rng.randrange(1, 6))]
        for w in new:
            await env.push(c, w)
        await ClockCycles(dut.clk, 10)
        if len(env.received[c]) != base:
            env.error(f"tile {c} delivered words after clear without START")
        env.start_issued[c] = True
        await env.expect_write(REG["START"], 1 << c)
        n_after = base + len(new)
        await env.wait_for(lambda c=c, n=n_after: len(env.received[c]) >= n, what="words after clear")
        await ClockCycles(dut.clk, 10)
        if env.received[c][base:] != new:
            env.error(f"tile {c}: after clear delivered {len(env.received[c]) - base} words,"
                      " not the new program")

    # clear while draining: what was delivered is a prefix of what was pushed
    c = rng.randrange(T)
    env.bp[c].ready_prob = 0.3
    base = len(env.received[c])
    prog = [rng.getrandbits(128) for _ in range(40)]
    for w in prog:
        await env.push(c, w)
    await ClockCycles(dut.clk, rng.randrange(5, 40))
    await env.expect_write(treg(c, "CONTROL"), 1)
    env.start_issued[c] = False
    await ClockCycles(dut.clk, 5)
    got = env.received[c][base:]
    if got != prog[:len(got)]:
        env.error(f"tile {c}: words delivered before a clear are not a prefix of the program")
    await env.expect_read(treg(c, "QUEUE"), depth, what="QUEUE after clear while draining")
    dut._log.info("clear while draining: %d of %d words delivered before the clear", len(got), len(prog))
    env.check()


@cocotb.test()
async def cycles_and_active(dut):
    """CYCLES counts exactly the cycles with ACTIVE != 0; LO clears; LO snapshots HI."""
    p, cfg = setup(dut)
    env = Env(dut, cfg)
    await env.reset()
    T, rng = env.T, env.rng
    for t in range(T):
        env.set_status(t, DONE)
    started = 0
    for rnd in range(p["cycle_rounds"]):
        # all tiles quiet (DONE): START, clear the counter, all with the counter frozen
        mask = rng.getrandbits(T)
        if mask:
            await env.expect_write(REG["START"], mask)
            for t in range(T):
                env.start_issued[t] |= bool(mask >> t & 1)
        started |= mask
        await env.expect_read(REG["ACTIVE"], 0)
        if rnd % 2 == 0:
            await env.expect_write(REG["CYCLES_LO"], rng.getrandbits(32), what="CYCLES_LO clear")
            expected = 0
        await env.expect_read(REG["CYCLES_LO"], expected)
        await env.expect_read(REG["CYCLES_HI"], 0)
        # random states for n cycles, counted here
        n = rng.randrange(50, 400)
        for _ in range(n):
            act = 0
            for t in range(T):
                s = rng.choice((IDLE, RUN, DONE, ERROR, DONE))
                env.set_status(t, s, pc=rng.getrandbits(16))
                if started >> t & 1 and s in (IDLE, RUN):
                    act |= 1 << t
            expected += act != 0
            await RisingEdge(dut.clk)
        # a static state: ACTIVE reads back
        for t in range(T):
            env.set_status(t, rng.choice((IDLE, RUN, DONE, ERROR)))
        act = sum(1 << t for t in range(T) if started >> t & 1 and env.status[t]["state"] in (IDLE, RUN))
        await env.expect_read(REG["ACTIVE"], act, what="ACTIVE")
        for t in range(T):
            env.set_status(t, DONE)
        await RisingEdge(dut.clk)
        # the counter went on while ACTIVE was read: count those cycles by reading again
        lo = (await env.read(REG["CYCLES_LO"]))[0]
        if act:
            if lo <= expected:
                env.error(f"CYCLES_LO {lo} did not advance while ACTIVE = {act:#x}")
            expected = lo
        else:
            if lo != expected:
                env.error(f"round {rnd}: CYCLES_LO = {lo}, expected {expected}")
        await env.expect_read(REG["CYCLES_HI"], 0)
        await ClockCycles(dut.clk, 10)
        await env.expect_read(REG["CYCLES_LO"], expected, what="CYCLES_LO frozen")
    env.check()


@cocotb.test()
async def flush(dut):
    """FLUSH writes: bit0 pulses flush for one cycle with flush_op = bit1; reads give flush_busy."""
    p, cfg = setup(dut)
    env = Env(dut, cfg)
    await env.reset()
    T, rng = env.T, env.rng
    want = []
    for _ in range(p["flushes"]):
        v = rng.getrandbits(32)
        busy = rng.getrandbits(T)
        dut.flush_busy.value = busy
        await env.expect_write(REG["FLUSH"], v, what="FLUSH")
        if v & 1:
            want.append(v >> 1 & 1)
        await ClockCycles(dut.clk, 2)
        if env.flushes != want:
            env.error(f"flush pulses (ops) {env.flushes}, expected {want}")
            break
        await env.expect_read(REG["FLUSH"], busy, what="FLUSH (busy)")
        errs = rng.getrandbits(32)
        dut.flush_errors.value = errs
        await env.expect_read(REG["FLUSH_ERRORS"], errs)
    # flush_op holds the last op between pulses
    if want and int(dut.flush_op.value) != want[-1]:
        env.error("flush_op does not hold the last op")
    dut._log.info("%d flush pulses", len(want))
    env.check()
