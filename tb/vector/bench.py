"""cocotb bench of ``VectorTop`` (``tb/vector/top.py``: the vector engine with the tile's accumulator
memory and scratchpad) under Verilator: VECTOR jobs back to back in one simulation.

Run it through :func:`tessera.tb.vector.jobs.run_jobs` (which writes the inputs, runs
:func:`tessera.tools.harness.run` and checks the results against ``tb/models/vector_exec.py``).
Parameters (:func:`tessera.tb.params`): ``cfg`` (the ``FabricConfig`` as a dict) and ``jobs``, a
list of

* ``program``: VECTORs, each given by its fields' docs/isa.md names (``op``, ``ymode``, ``act``,
  ``red``, ``fmt``, ``itof``, ``x_addr``, ``d_addr``, ``y``, ``rows``, ``cols``; codes as in
  ``tb/models/vector_exec.py``), issued one after the other (each as soon as the engine is idle);
* ``image``: a ``.npy`` file of ``uint8``, the accumulator from byte 0 (a whole number of words, at
  most the memory); the words beyond it keep what the previous job left;
* ``pressure`` (default 0) and ``seed``: while the engine is busy, each cycle, with probability
  ``pressure``, a DMA write with no byte enabled on the accumulator (it takes the bank's write
  port), a DMA read of a random accumulator word, and a write of zeros to the scratchpad's last
  word (the DMA has priority over the engine): as ``tests/test_vector_engine.py`` does;
* ``readback``: ``"all"`` (both memories whole; the scratchpad is zeroed whole first) or
  ``"output"`` (only the words of the last VECTOR's output region, zeroed first when it is in the
  scratchpad).

Per job: the accumulator image is written through ``acc_dma_wr``, the scratchpad zeroed through
``sp_dma_wr``, the descriptors issued on ``desc``; ``cycles`` counts, for each, the clock edges from
the descriptor's handshake (1) to the first edge after which ``busy`` is low (as the Amaranth test
does), summed over the program. Then the memories are read back through ``acc_dma_rd`` and
``sp_rd``. Into the run directory (``$TESSERA_RUN_DIR``) go ``job<i>_acc.npy`` and
``job<i>_sp.npy`` (``uint8``, the words read, from byte ``acc_from`` / ``sp_from``) and
``results.json``: per job ``cycles``, ``acc_from``, ``sp_from``.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

import tessera.tb
from tessera.rtl.config import fabric_from_dict
from tessera.rtl.tile import isa
from tessera.rtl.tile.accumulator import acc_write_layout
from tessera.rtl.tile.isa import scratchpad_write_layout, vector_desc_layout
from tessera.tb.models import vector_exec as vx
from tessera.tb.stream import layout_fields, pack

ENUMS = {"op": isa.VOp, "ymode": isa.YMode, "act": isa.Act, "red": isa.Reduce, "fmt": isa.VFmt}
FIELDS = ("op", "ymode", "act", "red", "fmt", "itof", "x_addr", "d_addr", "y", "rows", "cols")
MAX_CYCLES = 200_000        # per VECTOR: the engine did not finish


def descriptor_value(cfg, f: dict) -> int:
    """The ``vector_desc_layout`` payload of the VECTOR ``f`` as an integer (pitches derived)."""
    W = cfg.tile.word_bytes
    d = {k: (ENUMS[k](f[k]) if k in ENUMS else f[k]) for k in FIELDS}
    d["x_pitch"] = vx.pitch(4 * f["cols"], W)
    d["d_pitch"] = vx.out_pitch(f, W)
    return vector_desc_layout(cfg).const(d).as_value().value


def output_region(cfg, f: dict) -> tuple[str, int, int]:
    """(``"acc"`` or ``"sp"``, first byte, end byte) of the words the VECTOR ``f`` writes."""
    W = cfg.tile.word_bytes
    if f["red"]:
        return "acc", f["d_addr"], f["d_addr"] + vx.pitch(4 * f["rows"], W)
    d_rows = f["cols"] if f["fmt"] in (vx.FMTS["bf16t"], vx.FMTS["int8t"]) else f["rows"]
    space = "acc" if f["fmt"] == vx.FMTS["fp32"] else "sp"
    return space, f["d_addr"], f["d_addr"] + d_rows * vx.out_pitch(f, W)


class VectorBench:
    """Drives ``VectorTop``'s ports from the testbench's one coroutine, cycle by cycle (values are
    sampled at the rising edge, before it takes effect, as in ``tessera.tb.stream``)."""

    def __init__(self, dut, cfg):
        self.dut, self.cfg = dut, cfg
        self.W = cfg.tile.word_bytes
        self.acc_fields = layout_fields(acc_write_layout(cfg))
        self.sp_fields = layout_fields(scratchpad_write_layout(cfg.tile))
        self.full = (1 << self.W) - 1

    async def start(self):
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst.value = 1
        for port in ("desc__valid", "acc_dma_wr__valid", "acc_dma_rd__req__valid", "sp_dma_wr__valid",
                     "sp_rd__req__valid"):
            getattr(dut, port).value = 0
        dut.acc_dma_rd__resp__ready.value = 1
        dut.sp_rd__resp__ready.value = 1
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    async def write(self, port: str, fields, words: list[tuple[int, int]]):
        """Writes (word address, data) through the stream ``port``, one word per cycle when ready."""
        valid, payload, ready = (getattr(self.dut, f"{port}__{s}") for s in ("valid", "payload", "ready"))
        for addr, data in words:
            payload.value = pack(fields, {"addr": addr, "data": data, "mask": self.full})
            valid.value = 1
            while True:
                await RisingEdge(self.dut.clk)
                if int(ready.value):
                    break
        valid.value = 0

    async def read(self, port: str, addrs: list[int]) -> bytes:
        """Reads the words ``addrs`` through the read port ``port`` (request and response streams),
        requests pipelined; returns their bytes in order."""
        dut = self.dut
        req_valid, req_payload, req_ready = (getattr(dut, f"{port}__req__{s}")
                                             for s in ("valid", "payload", "ready"))
        resp_valid = getattr(dut, f"{port}__resp__valid")
        resp_payload = getattr(dut, f"{port}__resp__payload")
        getattr(dut, f"{port}__resp__ready").value = 1
        out, sent = [], 0
        if addrs:
            req_payload.value, req_valid.value = addrs[0], 1
        cycles = 0
        while len(out) < len(addrs):
            await RisingEdge(dut.clk)
            cycles += 1
            assert cycles < 100 * len(addrs) + 100, f"{port}: no response"
            if int(resp_valid.value):
                out.append(int(resp_payload.value).to_bytes(self.W, "little"))
            if sent < len(addrs) and int(req_valid.value) and int(req_ready.value):
                sent += 1
                if sent < len(addrs):
                    req_payload.value = addrs[sent]
                else:
                    req_valid.value = 0
        return b"".join(out)

    async def drain(self):
        """Waits until no accumulator read (of the competing traffic) is still in flight."""
        quiet = 0
        while quiet < 4:
            await RisingEdge(self.dut.clk)
            quiet = 0 if int(self.dut.acc_dma_rd__resp__valid.value) else quiet + 1

    async def run_vector(self, f: dict, pressure: float, rng: random.Random) -> int:
        """Issues the VECTOR ``f`` and waits for ``busy`` to fall, with competing traffic at
        probability ``pressure``; returns the cycles (module docstring)."""
        dut, tile = self.dut, self.cfg.tile
        dut.desc__payload.value = descriptor_value(self.cfg, f)
        dut.desc__valid.value = 1
        while True:
            await RisingEdge(dut.clk)
            if int(dut.desc__ready.value):
                break
        dut.desc__valid.value = 0
        cycles = 1
        await RisingEdge(dut.clk)            # busy as it is after the handshake's edge
        while int(dut.busy.value):
            if pressure > 0:
                dut.acc_dma_wr__payload.value = pack(self.acc_fields, {
                    "addr": rng.randrange(tile.accumulator_words), "data": 0, "mask": 0})
                dut.acc_dma_wr__valid.value = int(rng.random() < pressure)
                dut.acc_dma_rd__req__payload.value = rng.randrange(tile.accumulator_words)
                dut.acc_dma_rd__req__valid.value = int(rng.random() < pressure)
                dut.sp_dma_wr__payload.value = pack(self.sp_fields, {
                    "addr": tile.scratchpad_words - 1, "data": 0, "mask": self.full})
                dut.sp_dma_wr__valid.value = int(rng.random() < pressure)
            await RisingEdge(dut.clk)
            cycles += 1
            assert cycles < MAX_CYCLES, f"the engine did not finish: {f}"
        dut.acc_dma_wr__valid.value = 0
        dut.acc_dma_rd__req__valid.value = 0
        dut.sp_dma_wr__valid.value = 0
        return cycles


def _words(image: np.ndarray, W: int) -> list[tuple[int, int]]:
    return [(a, int.from_bytes(row.tobytes(), "little")) for a, row in enumerate(image.reshape(-1, W))]


@cocotb.test()
async def vector_jobs(dut):
    p = tessera.tb.params()
    cfg = fabric_from_dict(p["cfg"])
    tile, W = cfg.tile, cfg.tile.word_bytes
    run_dir = Path(os.environ["TESSERA_RUN_DIR"])
    bench = VectorBench(dut, cfg)
    await bench.start()
    results = []
    for i, job in enumerate(p["jobs"]):
        program = job["program"]
        image = np.load(job["image"]).astype(np.uint8).ravel()
        assert image.size % W == 0 and image.size <= tile.accumulator_bytes, \
            f"job {i}: an image of {image.size} bytes"
        everything = job.get("readback", "all") == "all"
        space, lo, hi = output_region(cfg, program[-1])
        lo, hi = lo // W, -(-hi // W)
        await bench.write("acc_dma_wr", bench.acc_fields, _words(image, W))
        if everything:
            zero = range(tile.scratchpad_words)
        else:
            zero = range(lo, hi) if space == "sp" else range(0)
        await bench.write("sp_dma_wr", bench.sp_fields, [(a, 0) for a in zero])
        rng = random.Random(job.get("seed", 0))
        cycles = 0
        for f in program:
            cycles += await bench.run_vector(f, float(job.get("pressure", 0)), rng)
        await bench.drain()
        acc_words = range(lo, hi) if space == "acc" else range(0)
        sp_words = range(lo, hi) if space == "sp" else range(0)
        if everything:
            acc_words, sp_words = range(tile.accumulator_words), range(tile.scratchpad_words)
        acc = await bench.read("acc_dma_rd", list(acc_words))
        sp = await bench.read("sp_rd", list(sp_words))
        np.save(run_dir / f"job{i}_acc.npy", np.frombuffer(acc, dtype=np.uint8))
        np.save(run_dir / f"job{i}_sp.npy", np.frombuffer(sp, dtype=np.uint8))
        results.append({"cycles": cycles, "acc_from": acc_words.start * W if acc_words else 0,
                        "sp_from": sp_words.start * W if sp_words else 0})
        dut._log.info(f"job {i}: {program if len(program) > 1 else program[0]} -> {cycles} cycles")
    (run_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
