"""PC side of the board's host link: the UART-to-AXI4-Lite protocol and a port-bank client.

Its command line is :mod:`tessera.cli.board_link`. The byte protocol
(``rtl/board/uart_axil.py``) and register map (``rtl/board/port_bank.py``) are described
in docs/synthesis.md. Only the standard library is used (``termios`` for the serial port).
"""

from __future__ import annotations

import os
import struct
import time

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
from tessera.rtl.board.uart_axil import CMD_READ, CMD_WRITE, REPLY_BAD_COMMAND

__all__ = ["encode_write", "encode_read", "decode_write_reply", "decode_read_reply", "AxiError",
           "SerialLink", "Board", "pack_ports", "unpack_port"]

RESP_NAMES = {0: "OKAY", 1: "EXOKAY", 2: "SLVERR", 3: "DECERR"}


class AxiError(RuntimeError):
    """The slave answered an error response (or the bridge rejected the command)."""


def encode_write(addr: int, data: int) -> bytes:
    return bytes([CMD_WRITE]) + struct.pack("<II", addr & 0xFFFFFFFF, data & 0xFFFFFFFF)


def encode_read(addr: int) -> bytes:
    return bytes([CMD_READ]) + struct.pack("<I", addr & 0xFFFFFFFF)


def decode_write_reply(reply: bytes) -> int:
    """The BRESP of a write's one-byte reply."""
    if len(reply) != 1:
        raise AxiError(f"write reply must be 1 byte, got {reply.hex()}")
    if reply[0] == REPLY_BAD_COMMAND:
        raise AxiError("bridge rejected the command byte")
    return reply[0]


def decode_read_reply(reply: bytes) -> tuple[int, int]:
    """(RRESP, data) of a read's five-byte reply."""
    if len(reply) != 5:
        raise AxiError(f"read reply must be 5 bytes, got {reply.hex()}")
    return reply[0], struct.unpack("<I", reply[1:])[0]


def pack_ports(fields: list[PortField], values: dict[str, int], output: bool = False) -> list[int]:
    """32-bit words carrying ``values`` at their ports' offsets (ports not named are 0)."""
    bits = 0
    total = 0
    for f in fields:
        if f.output != output:
            continue
        total = max(total, f.offset + f.width)
        v = values.get(f.name, 0)
        if not 0 <= v < (1 << f.width):
            raise ValueError(f"port {f.name}: value {v} does not fit {f.width} bits")
        bits |= v << f.offset
    return [(bits >> (32 * i)) & 0xFFFFFFFF for i in range(max(1, (total + 31) // 32))]


def unpack_port(field: PortField, words: list[int]) -> int:
    bits = sum(w << (32 * i) for i, w in enumerate(words))
    return (bits >> field.offset) & ((1 << field.width) - 1)


class SerialLink:
    """A raw 8N1 serial port (POSIX ``termios``), ``write(bytes)`` / ``read(n)`` with a timeout."""

    def __init__(self, path: str, baud: int = 115200, timeout: float = 1.0):
        import termios

        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self.timeout = timeout
        attrs = termios.tcgetattr(self.fd)
        speed = getattr(termios, f"B{baud}", None)
        if speed is None:
            raise ValueError(f"--baud: {baud} is not a standard termios speed")
        attrs[0] = 0  # iflag: raw
        attrs[1] = 0  # oflag
        attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
        attrs[3] = 0  # lflag: no echo, non-canonical
        attrs[4] = attrs[5] = speed
        attrs[6][termios.VMIN] = 0
        attrs[6][termios.VTIME] = 1
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        termios.tcflush(self.fd, termios.TCIOFLUSH)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read(self, n: int) -> bytes:
        out = b""
        deadline = time.monotonic() + self.timeout
        while len(out) < n and time.monotonic() < deadline:
            out += os.read(self.fd, n - len(out))
        if len(out) < n:
            raise TimeoutError(f"serial read: {len(out)} of {n} bytes before the timeout")
        return out


class Board:
    """32-bit reads and writes over a link, and the port bank's registers on top of them."""

    def __init__(self, link, fields: list[PortField] | None = None):
        self.link = link
        self.fields = fields or []

    def write32(self, addr: int, data: int) -> None:
        self.link.write(encode_write(addr, data))
        resp = decode_write_reply(self.link.read(1))
        if resp:
            raise AxiError(f"write 0x{addr:08x}: {RESP_NAMES[resp & 3]}")

    def read32(self, addr: int) -> int:
        self.link.write(encode_read(addr))
        resp, data = decode_read_reply(self.link.read(5))
        if resp:
            raise AxiError(f"read 0x{addr:08x}: {RESP_NAMES[resp & 3]}")
        return data

    def check_id(self) -> tuple[int, int]:
        ident = self.read32(REG_ID)
        if ident != ID_VALUE:
            raise AxiError(f"ID register reads 0x{ident:08x}, expected 0x{ID_VALUE:08x}")
        shape = self.read32(REG_SHAPE)
        return shape & 0xFFFF, shape >> 16

    def step(self, cycles: int) -> None:
        self.write32(REG_STEP, cycles)
        while self.read32(REG_STEP):
            pass

    def cycles(self) -> int:
        return self.read32(REG_CYCLES)

    def reset(self) -> None:
        self.write32(REG_RESET, 1)
        self.write32(REG_RESET, 0)

    def _field(self, name: str) -> PortField:
        for f in self.fields:
            if f.name == name:
                return f
        raise ValueError(f"unknown port {name!r}; ports: {', '.join(f.name for f in self.fields)}")

    def poke(self, values: dict[str, int]) -> None:
        """Set input ports (the others keep their values)."""
        n_in = max(1, (sum(f.width for f in self.fields if not f.output) + 31) // 32)
        current = {f.name: unpack_port(f, [self.read32(IN_BASE + 4 * i) for i in range(n_in)])
                   for f in self.fields if not f.output}
        current.update(values)
        for i, w in enumerate(pack_ports(self.fields, current)):
            self.write32(IN_BASE + 4 * i, w)

    def peek(self, name: str) -> int:
        f = self._field(name)
        first, last = f.offset // 32, (f.offset + f.width - 1) // 32
        words = [0] * first + [self.read32((IN_BASE if not f.output else OUT_BASE) + 4 * i)
                               for i in range(first, last + 1)]
        return unpack_port(f, words)
