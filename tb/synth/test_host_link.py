"""HostLink under cocotb: bytes over a bit-level UART, through the AXI4-Lite bridge to the port bank.

The PC-side protocol code of ``sim/runtime/board_link.py`` (encode/decode, port packing) is what talks to the
RTL here, so this checks the bridge, the port bank and the host script together. The block under
the bank is the test's accumulator (see tests/test_synth_board.py), modelled below.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

import tessera.tb
from tessera.rtl.board.port_bank import (
    ID_VALUE,
    IN_BASE,
    OUT_BASE,
    REG_CYCLES,
    REG_ID,
    REG_RESET,
    REG_SHAPE,
    REG_STEP,
    PortField,
)
from tessera.runtime.board_link import (
    decode_read_reply,
    decode_write_reply,
    encode_read,
    encode_write,
    pack_ports,
    unpack_port,
)
from tessera.tb.stream import rng_for


class Uart:
    """Bit-level 8N1 on ``dut.rx`` (driven) and ``dut.tx`` (sampled), ``div`` clock cycles per bit."""

    def __init__(self, dut, div, rng, max_gap_bits):
        self.dut, self.div, self.rng, self.max_gap = dut, div, rng, max_gap_bits
        self.rx_bytes = Queue()
        self.errors = []
        dut.rx.value = 1
        cocotb.start_soon(self._receive())

    async def send(self, data: bytes):
        for byte in data:
            gap = self.rng.randrange(self.max_gap * self.div + 1)
            if gap:
                await ClockCycles(self.dut.clk, gap)
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                self.dut.rx.value = bit
                await ClockCycles(self.dut.clk, self.div)

    async def _receive(self):
        while True:
            await FallingEdge(self.dut.clk)
            if int(self.dut.tx.value) != 0:
                continue
            await ClockCycles(self.dut.clk, self.div // 2, rising=False)
            if int(self.dut.tx.value) != 0:
                self.errors.append("start bit glitch on tx")
                continue
            byte = 0
            for i in range(8):
                await ClockCycles(self.dut.clk, self.div, rising=False)
                byte |= int(self.dut.tx.value) << i
            await ClockCycles(self.dut.clk, self.div, rising=False)
            if int(self.dut.tx.value) != 1:
                self.errors.append(f"framing error on tx after byte {byte:#04x}")
            self.rx_bytes.put_nowait(byte)

    async def recv(self, n: int, timeout_bits: int = 400) -> bytes:
        out = []
        for _ in range(n):
            for _ in range(timeout_bits * self.div):
                if not self.rx_bytes.empty():
                    break
                await RisingEdge(self.dut.clk)
            assert not self.rx_bytes.empty(), f"no reply byte after {timeout_bits} bit times"
            out.append(self.rx_bytes.get_nowait())
        return bytes(out)


class Host:
    def __init__(self, uart):
        self.uart = uart

    async def write(self, addr, data):
        await self.uart.send(encode_write(addr, data))
        return decode_write_reply(await self.uart.recv(1))

    async def read(self, addr):
        await self.uart.send(encode_read(addr))
        return decode_read_reply(await self.uart.recv(5))

    async def ok_write(self, addr, data):
        assert await self.write(addr, data) == 0, f"write {addr:#x} failed"

    async def ok_read(self, addr):
        resp, data = await self.read(addr)
        assert resp == 0, f"read {addr:#x}: resp {resp}"
        return data


@cocotb.test()
async def host_link_drives_block(dut):
    p = tessera.tb.params()
    rng = rng_for("host_link")
    fields = [PortField(*f) for f in p["fields"]]
    by_name = {f.name: f for f in fields}
    n_in = (sum(f.width for f in fields if not f.output) + 31) // 32
    n_out = (sum(f.width for f in fields if f.output) + 31) // 32
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    uart = Uart(dut, p["divisor"], rng, max_gap_bits=3)
    host = Host(uart)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 3)

    assert await host.ok_read(REG_ID) == ID_VALUE
    assert await host.ok_read(REG_SHAPE) == n_in | (n_out << 16)
    # Outside the map: DECERR both ways; a read-only register ignores writes.
    assert (await host.read(0x3000))[0] == 3
    assert await host.write(0x0FFC, 123) == 3
    await host.ok_write(REG_ID, 0)
    assert await host.ok_read(REG_ID) == ID_VALUE
    # An unknown command byte is answered with 0xFE.
    await uart.send(bytes([0x00]))
    assert await uart.recv(1) == bytes([0xFE])
    # A command cut short is dropped after the frame timeout; the next command works.
    await uart.send(encode_write(IN_BASE, 0xDEADBEEF)[:5])
    await ClockCycles(dut.clk, p["frame_timeout"] + 10)
    assert await host.ok_read(IN_BASE) == 0

    mask32 = (1 << 32) - 1
    acc = count = 0
    total = 0
    s = None
    for it in range(p["rounds"]):
        if it == p["rounds"] // 2:
            await host.ok_write(REG_RESET, 1)
            await host.ok_write(REG_RESET, 0)
            acc = count = 0
            s = None
        a = rng.randrange(1 << by_name["a"].width)
        b = rng.randrange(1 << by_name["b"].width)
        load = int(rng.random() < 0.3)
        for i, w in enumerate(pack_ports(fields, {"a": a, "b": b, "load": load})):
            await host.ok_write(IN_BASE + 4 * i, w)
        n = rng.choice([0, 1, 1, 2, 5, 37])
        await host.ok_write(REG_STEP, n)
        while await host.ok_read(REG_STEP):
            pass
        total += n
        for _ in range(n):
            acc = (a & mask32) if load else (acc + b) & mask32
            count = (count + 1) & 0xFFFF
            s = a + b
        words = [await host.ok_read(OUT_BASE + 4 * i) for i in range(n_out)]
        assert unpack_port(by_name["acc"], words) == acc, f"round {it}: acc"
        assert unpack_port(by_name["count"], words) == count, f"round {it}: count"
        if s is not None:
            assert unpack_port(by_name["s"], words) == s, f"round {it}: s"
        assert await host.ok_read(REG_CYCLES) == total
    assert not uart.errors, uart.errors
    assert int(dut.rx_error.value) == 0
