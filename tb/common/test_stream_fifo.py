"""Self-test of the stream VIP and the harness: random words through a FIFO under back-pressure.

Parameters: ``width``, ``count``; ``corrupt`` (index of one expected word to flip: a negative
control, the scoreboard must then fail the test). The words sent are written to
``words.txt`` in the run directory, so that a test can check that a seed replays them.
"""

import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

import tessera.tb
from tessera.tb.stream import BackPressure, Scoreboard, StreamDriver, StreamMonitor, rng_for


@cocotb.test()
async def fifo_random_traffic(dut):
    p = tessera.tb.params()
    rng = rng_for("fifo")
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    sb = Scoreboard("fifo")
    drv = StreamDriver(dut, "i", dut.clk, idle_prob=0.3)
    mon = StreamMonitor(dut, "o", dut.clk, callback=lambda w, c: sb.observe(w))
    BackPressure(dut, "o", dut.clk, ready_prob=0.6)
    words = [rng.randrange(1 << p["width"]) for _ in range(p["count"])]
    Path(os.environ["TESSERA_RUN_DIR"], "words.txt").write_text("".join(f"{w:x}\n" for w in words))
    for i, w in enumerate(words):
        sb.expect(w ^ 1 if i == p.get("corrupt") else w)
    drv.extend(words)
    for _ in range(20 * len(words)):
        await RisingEdge(dut.clk)
        if mon.count == len(words):
            break
    sb.check()
    assert mon.count == len(words)
