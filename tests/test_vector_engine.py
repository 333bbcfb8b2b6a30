# amaranth: UnusedElaboratable=no
"""The vector engine (``rtl/vector/engine.py``) with the tile's accumulator memory and scratchpad, in
Amaranth's simulator, against the instruction model ``tb/models/vector_exec.py``: random shapes,
operations, operand modes and formats, random DMA traffic on the memory ports (back-pressure)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from tessera.rtl.config import preset
from tessera.rtl.tile import isa
from tessera.tb.models import vector_exec as vx
from tessera.tb.vector.jobs import random_job, values
from tessera.tb.vector.top import VectorTop
from tessera.tools.harness import resolve_seed

ENUMS = {"op": isa.VOp, "ymode": isa.YMode, "act": isa.Act, "red": isa.Reduce, "fmt": isa.VFmt}


def descriptor(cfg, f: dict) -> dict:
    W = cfg.tile.word_bytes
    d = {k: (ENUMS[k](f[k]) if k in ENUMS else f[k]) for k in
         ("op", "ymode", "act", "red", "fmt", "itof", "x_addr", "d_addr", "y", "rows", "cols")}
    d["x_pitch"] = vx.pitch(4 * f["cols"], W)
    d["d_pitch"] = vx.out_pitch(f, W)
    return d


def random_instr(cfg, rng: random.Random, nrng) -> tuple[dict, np.ndarray]:
    """A well-formed VECTOR (fields dict) and an accumulator image for it (``tb/vector/jobs.py``)."""
    job = random_job(cfg, rng, nrng)
    return job["fields"], job["image"]


def sp_window(cfg, f: dict) -> int:
    """Scratchpad words a case zeroes and reads back: twice the end of its output region, at least
    16 words (the whole scratchpad in Amaranth's simulator is most of a case's time; a stray write
    beyond twice the output's end would go unseen)."""
    W = cfg.tile.word_bytes
    end = 0
    if not f["red"] and f["fmt"]:
        rows = f["rows"] if f["fmt"] in (1, 3) else f["cols"]
        end = f["d_addr"] + rows * vx.out_pitch(f, W)
    return min(cfg.tile.scratchpad_words, max(16, 2 * -(-end // W)))


def simulate(cfg, cases, seed: int, pressure):
    """Runs each (fields, acc image) case on a fresh ``VectorTop``; returns [(acc, sp, cycles)].
    ``pressure``: the probability of competing traffic on each port per cycle, one for all cases or
    a list with one per case."""
    W = cfg.tile.word_bytes
    dut = VectorTop(cfg, sfu=False)
    rng = random.Random(seed)
    results = []

    async def handshake(ctx, port):
        """Ticks until ``port`` (valid already set) is taken; leaves valid low."""
        while True:
            taken = ctx.get(port.ready)
            await ctx.tick()
            if taken:
                break
        ctx.set(port.valid, 0)

    async def read(ctx, port, addr):
        ctx.set(port.req.payload, addr)
        ctx.set(port.req.valid, 1)
        await handshake(ctx, port.req)
        while not ctx.get(port.resp.valid):
            await ctx.tick()
        return ctx.get(port.resp.payload).to_bytes(W, "little")

    async def bench(ctx):
        for case, (f, image) in enumerate(cases):
            busy_p = pressure[case] if isinstance(pressure, list) else pressure
            for a, row in enumerate(image.reshape(-1, W)):
                ctx.set(dut.acc_dma_wr.payload.addr, a)
                ctx.set(dut.acc_dma_wr.payload.data, int.from_bytes(row.tobytes(), "little"))
                ctx.set(dut.acc_dma_wr.payload.mask, (1 << W) - 1)
                ctx.set(dut.acc_dma_wr.valid, 1)
                await handshake(ctx, dut.acc_dma_wr)
            sp_image = np.zeros(cfg.tile.scratchpad_bytes, dtype=np.uint8)
            window = sp_window(cfg, f)
            for a in range(window):      # the scratchpad starts at zero each case (the part checked)
                ctx.set(dut.sp_dma_wr.payload.addr, a)
                ctx.set(dut.sp_dma_wr.payload.data, 0)
                ctx.set(dut.sp_dma_wr.payload.mask, (1 << W) - 1)
                ctx.set(dut.sp_dma_wr.valid, 1)
                await ctx.tick()
            ctx.set(dut.sp_dma_wr.valid, 0)
            ctx.set(dut.desc.payload, isa.vector_desc_layout(cfg).const(descriptor(cfg, f)))
            ctx.set(dut.desc.valid, 1)
            await handshake(ctx, dut.desc)
            cycles = 1
            while ctx.get(dut.busy):
                # random competing traffic: DMA writes with no byte enabled (they take the bank's
                # write port) and reads on the accumulator, zeros to the scratchpad's last word
                ctx.set(dut.acc_dma_wr.payload.addr, rng.randrange(cfg.tile.accumulator_words))
                ctx.set(dut.acc_dma_wr.payload.mask, 0)
                ctx.set(dut.acc_dma_wr.valid, rng.random() < busy_p)
                ctx.set(dut.acc_dma_rd.req.payload, rng.randrange(cfg.tile.accumulator_words))
                ctx.set(dut.sp_dma_wr.payload.addr, cfg.tile.scratchpad_words - 1)
                ctx.set(dut.sp_dma_wr.payload.data, 0)
                ctx.set(dut.sp_dma_wr.valid, rng.random() < busy_p)
                ctx.set(dut.acc_dma_rd.req.valid, rng.random() < busy_p)
                ctx.set(dut.acc_dma_rd.resp.ready, 1)
                await ctx.tick()
                cycles += 1
                assert cycles < 20000, "the engine did not finish"
            ctx.set(dut.acc_dma_wr.valid, 0)
            ctx.set(dut.sp_dma_wr.valid, 0)
            ctx.set(dut.acc_dma_rd.req.valid, 0)
            await ctx.tick().repeat(2)
            acc = bytearray()
            ctx.set(dut.acc_dma_rd.resp.ready, 1)
            for a in range(cfg.tile.accumulator_words):
                acc += await read(ctx, dut.acc_dma_rd, a)
            ctx.set(dut.sp_rd.resp.ready, 1)
            for a in range(window):
                sp_image[a * W:(a + 1) * W] = np.frombuffer(await read(ctx, dut.sp_rd, a), dtype=np.uint8)
            results.append((np.frombuffer(bytes(acc), dtype=np.uint8), sp_image, cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


def config(name: str):
    """``tiny``, or a variant: ``fadd4`` (adder latency 4 = 16 / lanes: the reducer forwards the sum
    leaving the adder), ``wide`` (32-byte words, 8 lanes: 16 / lanes = 2 below the adder's
    latency 3, so the words of a sum are spaced)."""
    from dataclasses import replace

    cfg = preset("tiny")
    if name == "fadd4":
        numeric = replace(cfg.tensor.numeric, fadd_latency=4)
        return replace(cfg, name="tiny_fadd4", tensor=replace(cfg.tensor, numeric=numeric))
    if name == "wide":
        return replace(cfg, name="tiny_wide", noc=replace(cfg.noc, flit_bits=256),
                       cache=replace(cfg.cache, data_bytes=32), tile=replace(cfg.tile, word_bytes=32))
    return cfg


@pytest.mark.randomized
@pytest.mark.parametrize("name, count", [("tiny", 6), ("fadd4", 3), ("wide", 3)])
def test_vector_engine_random(name, count):
    cfg = config(name)
    seed = resolve_seed(None)
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    cases = [random_instr(cfg, rng, nrng) for _ in range(count)]
    pressure = [0.3] * count
    if name != "tiny":
        # a rowsum of whole words back to back (no other traffic), the case these configurations
        # are for: a partial's next word meets its previous one leaving the adder (fadd4), or must
        # wait for it (wide)
        f, image = random_instr(cfg, rng, nrng)
        lanes = cfg.tile.word_bytes // 4
        f.update(op=0, ymode=0, y=0, act=0, red=1, fmt=0, itof=0, rows=2, cols=8 * lanes, d_addr=0x200)
        cases.append((f, values(nrng, cfg.tile.accumulator_bytes // 4).view(np.uint8).copy()))
        pressure.append(0.0)
    results = simulate(cfg, cases, seed, pressure=pressure)
    for (f, image), (acc, sp, _) in zip(cases, results, strict=True):
        want_acc, want_sp = image.copy(), np.zeros(cfg.tile.scratchpad_bytes, dtype=np.uint8)
        vx.execute(f, want_acc, want_sp, cfg.tile.word_bytes)
        bad_acc = np.flatnonzero(acc != want_acc)
        bad_sp = np.flatnonzero(sp != want_sp)
        assert not bad_acc.size and not bad_sp.size, (
            f"seed {seed}: {f}: acc bytes differ at {bad_acc[:8]}, sp at {bad_sp[:8]}")
