"""FabricLink under cocotb: the board's fabric, driven over a bit-level UART exactly as the PC does.

The PC side's session (``tessera.runtime.board_gemm.gemm_session``: the host sequence of
:mod:`tessera.runtime.host`, lowered to the bridge's reads and writes by ``over_bridge``: load
A/B/C into block RAM, program and start the tiles, poll, flush, read D) runs here over the
simulated serial line, so this checks the UART bridge, the address split, the block-RAM memory on
both its ports and the fabric together. Results are compared with the golden model
(``tb/models/gemm.py``).
"""

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

import tessera.tb
from tessera.rtl.board.axi_bram import HOST_MEM_BASE
from tessera.rtl.config import fabric_from_dict
from tessera.rtl.fabric.csr_map import ID_VALUE, REG
from tessera.runtime.board_gemm import gemm_session, over_bridge
from tessera.runtime.gemm_map import plan_gemm
from tessera.tb.models.gemm import gemm
from tessera.tb.stream import rng_for
from tessera.tb.synth import test_host_link as link  # the UART model and byte-level host (not its test)
from tessera.tb.tensor.feed import random_bf16, random_f32, random_i32, random_int8

DECERR = 3


async def run_async(session, host):
    """Drive a :mod:`tessera.runtime.host` session over the simulated UART, lowered by
    ``over_bridge`` to 32-bit reads and writes (the cocotb twin of ``run_sync``)."""
    ops = over_bridge(session)
    value = None
    try:
        while True:
            op = ops.send(value)
            value = await host.ok_read(op[1]) if op[0] == "read" else await host.ok_write(op[1], op[2])
    except StopIteration as done:
        return done.value


@cocotb.test()
async def fabric_over_uart(dut):
    p = tessera.tb.params()
    cfg = fabric_from_dict(p["cfg"])
    rng = rng_for("fabric_link")
    data_rng = np.random.default_rng(rng.randrange(1 << 31))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    uart = link.Uart(dut, p["divisor"], rng, max_gap_bits=2)
    host = link.Host(uart)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 3)

    assert await host.ok_read(REG["ID"]) == ID_VALUE
    # The memory's host port: 32-bit words in both lanes of a wide word, read back.
    words = {HOST_MEM_BASE + 4 * i: rng.randrange(1 << 32) for i in range(4)}
    top = HOST_MEM_BASE + p["memory_bytes"] - 4
    words[top] = rng.randrange(1 << 32)
    for addr, v in words.items():
        await host.ok_write(addr, v)
    for addr, v in words.items():
        assert await host.ok_read(addr) == v, f"memory word {addr:#x}"
    # Outside both the CSRs and the memory: DECERR both ways, and nothing else changes.
    for bad in (HOST_MEM_BASE + p["memory_bytes"], 0x0001_0000, 0x7FFF_FFFC):
        assert await host.write(bad, 0x12345678) == DECERR, f"write {bad:#x}"
        assert (await host.read(bad))[0] == DECERR, f"read {bad:#x}"
    assert await host.ok_read(top) == words[top]

    for m, n, k, dtype, has_c in p["jobs"]:
        if dtype == "bf16":
            a, b = random_bf16(data_rng, (m, k), 0.05), random_bf16(data_rng, (k, n), 0.05)
            c = random_f32(data_rng, (m, n), 0.05) if has_c else None
        else:
            a, b = random_int8(data_rng, (m, k)), random_int8(data_rng, (k, n))
            c = random_i32(data_rng, (m, n)) if has_c else None
        plan = plan_gemm(cfg, m, n, k, dtype, has_c=has_c)
        assert plan.end <= p["memory_bytes"]
        d, info = await run_async(gemm_session(plan, a, b, c), host)
        golden = gemm(a, b, c, dtype)
        assert np.array_equal(d, golden.view(d.dtype)), f"{m}x{n}x{k} {dtype}: D differs from the golden"
        dut._log.info("%dx%dx%d %s%s: %d fabric cycles, %d bus operations over the UART, bit-exact",
                      m, n, k, dtype, " +C" if has_c else "", info["cycles"], info["bus_ops"])
    assert not uart.errors, uart.errors
