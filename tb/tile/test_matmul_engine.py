"""MatmulEngine (scratchpad + accumulator + operand fetch + tensor core) against tb/models/gemm.py.

Each round: fill the accumulator with random FP32 words (special values scattered) through
``acc_dma_wr``, place the A^T and B operands of a few random MATMULs in random scratchpad banks
(so A/B bank conflicts happen) through ``sp_wr`` (pitch padding filled with garbage), send the
descriptors back to back (random gaps), wait for every ``done``, then read the whole accumulator
back through ``acc_dma_rd`` (random ``resp.ready``) and compare it word for word with a shadow
updated by the golden model, op by op (accumulate chains on one D included). A second test
measures the 64 x 64 x 64 BF16 MATMUL against the core's cycle formula.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

import tessera.tb
from tessera.rtl.config import preset
from tessera.tb.models.gemm import gemm
from tessera.tb.stream import StreamDriver, layout_fields, pack, rng_for
from tessera.tb.tensor.feed import random_bf16, random_f32, random_int8


def make_cfg(p):
    cfg = preset(p["preset"])
    tensor = cfg.tensor
    if p.get("rows"):
        tensor = replace(tensor, rows=p["rows"], cols=p["cols"])
    tile = replace(cfg.tile, accumulator_bytes=p.get("acc_bytes", cfg.tile.accumulator_bytes),
                   scratchpad_bytes=p.get("sp_bytes", cfg.tile.scratchpad_bytes))
    return replace(cfg, tensor=tensor, tile=tile)


def pitch(nbytes, w):
    return -(-nbytes // w) * w


class Env:
    def __init__(self, dut, cfg, idle=0.0):
        from tessera.rtl.tile.accumulator import acc_write_layout
        from tessera.rtl.tile.isa import matmul_desc_layout, scratchpad_write_layout

        self.dut, self.cfg = dut, cfg
        self.W = cfg.tile.word_bytes
        self.rng = rng_for("env")
        self.np = np.random.default_rng(self.rng.getrandbits(32))
        self.desc_fields = layout_fields(matmul_desc_layout(cfg))
        self.sp_fields = layout_fields(scratchpad_write_layout(cfg.tile))
        self.acc_fields = layout_fields(acc_write_layout(cfg))
        self.desc = StreamDriver(dut, "desc", dut.clk, idle_prob=idle, rng=rng_for("desc"))
        self.sp_wr = StreamDriver(dut, "sp_wr", dut.clk, idle_prob=idle, rng=rng_for("sp"))
        self.acc_wr = StreamDriver(dut, "acc_dma_wr", dut.clk, idle_prob=idle, rng=rng_for("accwr"))
        self.queued = {"sp_wr": 0, "acc_dma_wr": 0}
        for drv, prefix in ((self.sp_wr, "sp_wr"), (self.acc_wr, "acc_dma_wr")):
            drv.prefix = prefix
        self.acc_words = cfg.tile.accumulator_bytes // self.W
        self.shadow = np.zeros(cfg.tile.accumulator_bytes // 4, dtype=np.uint32)
        self.cycle = 0
        self.dones: list[int] = []
        self.desc_taken: list[int] = []
        self.errors = 0
        self.stop_dma = False
        self.dma_ops = 0
        cocotb.start_soon(self._watch())

    async def _watch(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            if int(dut.done.value):
                self.dones.append(self.cycle)
            if int(dut.error.value):
                self.errors += 1
            if int(dut.desc__valid.value) and int(dut.desc__ready.value):
                self.desc_taken.append(self.cycle)

    # ---- memories
    def write_sp(self, byte_addr, raw: bytes):
        W = self.W
        assert byte_addr % W == 0 and len(raw) % W == 0
        for i in range(0, len(raw), W):
            self.queued["sp_wr"] += 1
            self.sp_wr.send_nowait(pack(self.sp_fields, {
                "addr": (byte_addr + i) // W, "data": int.from_bytes(raw[i:i + W], "little"),
                "mask": (1 << W) - 1}))

    def fill_acc(self, special_prob=0.05):
        vals = random_f32(self.np, self.shadow.shape, special_prob)
        self.shadow[:] = vals
        raw = vals.tobytes()
        W = self.W
        for w in range(self.acc_words):
            self.queued["acc_dma_wr"] += 1
            self.acc_wr.send_nowait(pack(self.acc_fields, {
                "addr": w, "data": int.from_bytes(raw[w * W:(w + 1) * W], "little"), "mask": (1 << W) - 1}))

    async def read_acc(self, ready_prob=0.7):
        dut, W = self.dut, self.W
        out = bytearray()
        sent = 0
        dut.acc_dma_rd__req__valid.value = 0
        while len(out) < self.acc_words * W:
            if sent < self.acc_words:
                dut.acc_dma_rd__req__payload.value = sent
                dut.acc_dma_rd__req__valid.value = 1
            else:
                dut.acc_dma_rd__req__valid.value = 0
            ready = 1 if self.rng.random() < ready_prob else 0
            dut.acc_dma_rd__resp__ready.value = ready
            await RisingEdge(dut.clk)
            if int(dut.acc_dma_rd__resp__valid.value) and ready:
                out += int(dut.acc_dma_rd__resp__payload.value).to_bytes(W, "little")
            if sent < self.acc_words and int(dut.acc_dma_rd__req__ready.value):
                sent += 1
        dut.acc_dma_rd__req__valid.value = 0
        dut.acc_dma_rd__resp__ready.value = 0
        return np.frombuffer(bytes(out), dtype=np.uint32)

    async def dma_traffic(self, base, nwords):
        """Random DMA writes and reads of ``nwords`` words at word ``base`` while MATMULs run
        (so that DMA and core accesses collide on the banks); reads checked against the shadow."""
        dut, W, rng = self.dut, self.W, self.rng
        view = self.shadow.view(np.uint8)
        self.dma_ops = 0
        self.dma_log = []
        while not self.stop_dma:
            addr = base + rng.randrange(nwords)
            if rng.random() < 0.5:
                data, mask = rng.getrandbits(8 * W), rng.getrandbits(W)
                for i in range(W):
                    if mask >> i & 1:
                        view[addr * W + i] = (data >> 8 * i) & 0xFF
                self.queued["acc_dma_wr"] += 1
                self.acc_wr.send_nowait(pack(self.acc_fields, {"addr": addr, "data": data, "mask": mask}))
                await self.wait_sent(self.acc_wr)
                self.dma_log.append(f"cycle {self.cycle}: wrote {addr:#x} data {data:#x} mask {mask:#x}")
            else:
                expect = int.from_bytes(view[addr * W:(addr + 1) * W].tobytes(), "little")
                dut.acc_dma_rd__req__payload.value = addr
                dut.acc_dma_rd__req__valid.value = 1
                dut.acc_dma_rd__resp__ready.value = 1
                while True:
                    await RisingEdge(dut.clk)
                    if int(dut.acc_dma_rd__req__ready.value):
                        break
                dut.acc_dma_rd__req__valid.value = 0
                await RisingEdge(dut.clk)
                assert int(dut.acc_dma_rd__resp__valid.value), "dma_rd: no response 1 cycle after the request"
                got = int(dut.acc_dma_rd__resp__payload.value)
                dut.acc_dma_rd__resp__ready.value = 0
                assert got == expect, (f"dma_rd beside MATMULs: {addr:#x} = {got:#x}, expected {expect:#x}"
                                       f" (cycle {self.cycle}); writes:\n" + "\n".join(self.dma_log[-6:]))
            self.dma_ops += 1

    async def wait_sent(self, drv):
        """Until every queued beat of ``drv`` has been transferred (StreamDriver.wait_idle may
        return in the cycle the last beat is raised, before it is taken)."""
        while drv.sent < self.queued[drv.prefix]:
            await RisingEdge(self.dut.clk)

    async def drain_writes(self):
        await self.wait_sent(self.sp_wr)
        await self.wait_sent(self.acc_wr)

    # ---- operations
    def place_operand(self, mat_rows: np.ndarray, elem: int, addr: int):
        """Rows of elements (uint16 bf16 bits or int8) at ``addr`` with garbage pitch padding."""
        W = self.W
        rows, cols = mat_rows.shape
        p = pitch(cols * elem, W)
        raw = bytearray()
        for r in range(rows):
            row = mat_rows[r].astype(np.uint16 if elem == 2 else np.int8).tobytes()
            raw += row + bytes(self.rng.getrandbits(8) for _ in range(p - len(row)))
        self.write_sp(addr, bytes(raw))

    def descriptor(self, op):
        e = 2 if op["dtype"] == 0 else 1
        W = self.W
        return pack(self.desc_fields, {
            "dtype": op["dtype"], "accumulate": op["acc"], "m": op["m"], "n": op["n"], "k": op["k"],
            "a_addr": op["a_addr"], "b_addr": op["b_addr"], "acc_addr": op["acc_addr"],
            "a_pitch": pitch(op["m"] * e, W), "b_pitch": pitch(op["n"] * e, W),
            "acc_pitch": pitch(4 * op["n"], W)})

    def model(self, op):
        """Apply ``op`` to the shadow of the accumulator."""
        W = self.W
        m, n = op["m"], op["n"]
        rp = pitch(4 * n, W) // 4
        base = op["acc_addr"] // 4
        idx = base + np.arange(m)[:, None] * rp + np.arange(n)[None, :]
        dtype = "bf16" if op["dtype"] == 0 else "int8"
        c = None
        if op["acc"]:
            c = self.shadow[idx].copy()
            if dtype == "int8":
                c = c.view(np.int32)
        d = gemm(op["A"], op["B"], c, dtype)
        self.shadow[idx] = np.asarray(d).view(np.uint32)


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for s in ("desc__valid", "sp_wr__valid", "acc_dma_wr__valid", "acc_dma_rd__req__valid",
              "acc_dma_rd__resp__ready"):
        getattr(dut, s).value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)


class Alloc:
    """Non-overlapping word-aligned regions, in a chosen bank (block-interleaved scratchpad)."""

    def __init__(self, size, banks, rng, w):
        self.size, self.banks, self.rng, self.w = size, banks, rng, w
        self.bank_bytes = size // banks
        self.used: list[tuple[int, int]] = []

    def get(self, nbytes, bank=None):
        for _ in range(200):
            if bank is not None and nbytes <= self.bank_bytes:
                lo = bank * self.bank_bytes
                hi = lo + self.bank_bytes - nbytes
            else:
                lo, hi = 0, self.size - nbytes
            if hi < lo:
                return None
            a = self.rng.randrange(lo // self.w, hi // self.w + 1) * self.w
            if all(a + nbytes <= u0 or a >= u1 for u0, u1 in self.used):
                self.used.append((a, a + nbytes))
                return a
        return None


def random_op(env, p, sp, acc, prev):
    rng, cfg = env.rng, env.cfg
    W = env.W
    R, C, T = cfg.tensor.rows, cfg.tensor.cols, cfg.tensor.interleave
    dtype = rng.choice((0, 1))
    e = 2 if dtype == 0 else 1
    chain = prev is not None and rng.random() < 0.3
    if chain:
        m, n = prev["m"], prev["n"]
    else:
        m = rng.choice((1, R, R + 1, rng.randint(1, p["max_mn"])))
        n = rng.choice((1, C, C * T + 1, rng.randint(1, p["max_mn"])))
    k = rng.choice((1, 2, T, rng.randint(1, p["max_k"])))
    banks = env.cfg.tile.scratchpad_banks
    a_addr = sp.get(k * pitch(m * e, W), rng.randrange(banks))
    b_addr = sp.get(k * pitch(n * e, W), rng.randrange(banks))
    if chain:
        acc_addr, accumulate = prev["acc_addr"], 1
    else:
        acc_addr, accumulate = acc.get(m * pitch(4 * n, W)), rng.random() < 0.6
    if a_addr is None or b_addr is None or acc_addr is None:
        return None
    if dtype == 0:
        a = random_bf16(env.np, (m, k), 0.05)
        b = random_bf16(env.np, (k, n), 0.05)
    else:
        a = random_int8(env.np, (m, k))
        b = random_int8(env.np, (k, n))
    env.place_operand(a.T, e, a_addr)
    env.place_operand(b, e, b_addr)
    return {"dtype": dtype, "acc": int(accumulate), "m": m, "n": n, "k": k, "a_addr": a_addr,
            "b_addr": b_addr, "acc_addr": acc_addr, "A": a, "B": b}


async def wait_dones(env, count, limit):
    start = env.cycle
    while len(env.dones) < count:
        await RisingEdge(env.dut.clk)
        assert env.cycle - start < limit, f"timeout: {len(env.dones)} of {count} MATMULs done"


async def check_acc(env, label):
    got = await env.read_acc(ready_prob=env.rng.choice((0.4, 1.0)))
    bad = np.nonzero(got != env.shadow)[0]
    if len(bad):
        lines = [f"acc byte {4 * i:#x}: got {int(got[i]):#010x} expected {int(env.shadow[i]):#010x}"
                 for i in bad[:10]]
        raise AssertionError(f"{label}: {len(bad)} accumulator words differ\n" + "\n".join(lines))


@cocotb.test()
async def random_matmuls(dut):
    p = tessera.tb.params()
    cfg = make_cfg(p)
    await reset(dut)
    env = Env(dut, cfg, idle=0.2)
    dut._log.info(f"seed {cocotb.RANDOM_SEED}: {cfg.tensor.rows}x{cfg.tensor.cols} W={env.W}")
    total = 0
    for rnd in range(p["rounds"]):
        env.desc.idle_prob = env.rng.choice((0.0, 0.5))
        env.fill_acc()
        sp = Alloc(cfg.tile.scratchpad_bytes, cfg.tile.scratchpad_banks, env.rng, env.W)
        acc = Alloc(cfg.tile.accumulator_bytes, 1, env.rng, env.W)
        spare_words = 4
        spare = acc.get(spare_words * env.W) // env.W
        ops, prev = [], None
        for _ in range(env.rng.randint(1, p["max_ops"])):
            op = random_op(env, p, sp, acc, prev)
            if op is None:
                break
            ops.append(op)
            prev = op
        await env.drain_writes()
        for op in ops:
            env.model(op)
            env.desc.send_nowait(env.descriptor(op))
        total += len(ops)
        env.stop_dma = False
        traffic = cocotb.start_soon(env.dma_traffic(spare, spare_words))
        await wait_dones(env, total, 20000)
        env.stop_dma = True
        await traffic
        await ClockCycles(dut.clk, 3)
        assert not int(dut.busy.value), "busy after the last done"
        assert env.errors == 0, "tensor core error flag raised"
        await check_acc(env, f"round {rnd}: " + ", ".join(
            f"{'bf16' if o['dtype'] == 0 else 'int8'} {o['m']}x{o['n']}x{o['k']}{' acc' if o['acc'] else ''}"
            for o in ops))
        dut._log.info(f"round {rnd}: {len(ops)} MATMULs ok, {env.dma_ops} DMA accesses beside them")
    assert len(env.dones) == total


@cocotb.test()
async def performance(dut):
    """m = n = k = 64 BF16, A and B in different banks; then two back to back."""
    p = tessera.tb.params()
    if not p.get("perf"):
        return
    cfg = make_cfg(p)
    await reset(dut)
    env = Env(dut, cfg)
    R, C, T = cfg.tensor.rows, cfg.tensor.cols, cfg.tensor.interleave
    num = cfg.tensor.numeric
    size = p["perf"]
    env.fill_acc()
    half = cfg.tile.scratchpad_bytes // 2
    a = random_bf16(env.np, (size, size), 0.01)
    b = random_bf16(env.np, (size, size), 0.01)
    env.place_operand(a.T, 2, 0)
    env.place_operand(b, 2, half)
    op = {"dtype": 0, "acc": 0, "m": size, "n": size, "k": size, "a_addr": 0, "b_addr": half,
          "acc_addr": 0, "A": a, "B": b}
    await env.drain_writes()
    await ClockCycles(dut.clk, 2)
    env.model(op)
    env.desc.send_nowait(env.descriptor(op))
    await wait_dones(env, 1, 100000)
    cycles = env.dones[0] - env.desc_taken[0]
    blocks = (-(-size // R)) * (-(-size // C))
    groups = -(-blocks // T)
    formula = groups * size * T + (R * T + R + C + num.fmul_latency + T + 4)
    await check_acc(env, "64x64x64")
    # back to back: the same op twice with accumulate (D = A x B, then D += A x B)
    env.model(dict(op, acc=1))
    env.desc.send_nowait(env.descriptor(dict(op, acc=1)))
    env.model(dict(op, acc=1))
    env.desc.send_nowait(env.descriptor(dict(op, acc=1)))
    await wait_dones(env, 3, 200000)
    pair = env.dones[2] - env.desc_taken[1]
    await check_acc(env, "back to back")
    result = {"m": size, "n": size, "k": size, "cycles_desc_to_done": cycles, "core_formula": formula,
              "ratio": cycles / formula, "two_back_to_back": pair, "two_formula": 2 * formula}
    dut._log.info(f"performance: {result}")
    with open(os.path.join(os.environ["TESSERA_RUN_DIR"], "matmul_perf.json"), "w") as f:
        json.dump(result, f)
    assert cycles <= 1.05 * formula, result
