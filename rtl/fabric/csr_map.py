"""The fabric's CSR map, declared once: register addresses, counter names and the status word.

The CSR block (:mod:`tessera.rtl.fabric.csr`), the fabric (per-tile counter ports), the host
sequence (``sim/runtime/host.py``, shared by the simulation and the board) and the benches use
these names;
``tests/test_fabric_csr.py`` checks the register tables of ``docs/csr.md`` against them, so that
the documentation, which is the contract, cannot drift from the code.

Byte addresses of 32-bit registers on the AXI4-Lite host port (``ADDR_BITS`` address bits):

* :data:`REG`: the global registers, at their addresses;
* :data:`TILE_REG`: the registers of tile ``t``, at ``TILE_BASE + BLOCK_STRIDE * t`` + offset
  (:func:`tile_reg`);
* :data:`L2_COUNTERS`: the event counters of L2 slice ``s``, at ``SLICE_BASE + BLOCK_STRIDE * s
  + 4 * i`` (:func:`slice_reg`).
"""

from __future__ import annotations

from tessera.rtl.cache.layouts import COUNTERS
from tessera.rtl.tile.isa import State

__all__ = [
    "ADDR_BITS", "DATA_BITS", "ID_VALUE", "REG", "GLOBAL_COUNTERS", "TILE_BASE", "SLICE_BASE",
    "BLOCK_STRIDE", "TILE_STRIDE", "SLICE_STRIDE", "TILE_REG", "TILE_COUNTERS", "L2_COUNTERS", "STATES",
    "tile_reg", "slice_reg", "decode_status",
]

ADDR_BITS = 16
DATA_BITS = 32
ID_VALUE = 0x54455353  # "TESS"

REG = {
    "ID": 0x000, "CONFIG": 0x004, "START": 0x008, "ACTIVE": 0x00C, "CYCLES_LO": 0x010,
    "CYCLES_HI": 0x014, "FLUSH": 0x018, "FLUSH_ERRORS": 0x01C, "NOC_LINK_FLITS": 0x020,
    "NOC_EJECT_FLITS": 0x024, "NOC_ERRORS": 0x028, "MCAST_PACKETS": 0x02C, "L2_RESP_FLITS": 0x030,
}
# The global counters (the Csr's input ports of these names), in register order from NOC_LINK_FLITS.
GLOBAL_COUNTERS = ["noc_link_flits", "noc_eject_flits", "noc_errors", "mcast_packets", "l2_resp_flits"]

TILE_BASE = 0x1000
SLICE_BASE = 0x2000
BLOCK_STRIDE = TILE_STRIDE = SLICE_STRIDE = 0x40

TILE_REG = {
    "CMD0": 0x00, "CMD1": 0x04, "CMD2": 0x08, "CMD3": 0x0C, "STATUS": 0x10, "CONTROL": 0x14,
    "QUEUE": 0x18, "BUSY_CYCLES": 0x1C, "LOADS": 0x20, "STORES": 0x24, "MATMULS": 0x28,
}
# A tile's counters (its output ports, the Csr's ``{name}_{t}`` inputs), in register order from
# BUSY_CYCLES.
TILE_COUNTERS = ["busy_cycles", "loads", "stores", "matmuls"]

# An L2 slice's event counters (rtl/cache/layouts.py), in register order.
L2_COUNTERS = list(COUNTERS)

STATES = {s.value: s.name for s in State}       # STATUS[1:0]


def tile_reg(t: int, reg: str | int) -> int:
    """Address of register ``reg`` (a :data:`TILE_REG` name or an offset) of tile ``t``."""
    return TILE_BASE + BLOCK_STRIDE * t + (TILE_REG[reg] if isinstance(reg, str) else reg)


def slice_reg(s: int, counter: str | int) -> int:
    """Address of counter ``counter`` (an :data:`L2_COUNTERS` name or index) of L2 slice ``s``."""
    i = L2_COUNTERS.index(counter) if isinstance(counter, str) else counter
    return SLICE_BASE + BLOCK_STRIDE * s + 4 * i


def decode_status(word: int) -> dict:
    """A tile's STATUS word: ``{"state": name, "error": code, "pc": index}`` (docs/csr.md)."""
    return {"state": STATES[word & 3], "error": (word >> 4) & 0xF, "pc": word >> 16}
