"""The fabric's CSR map as the host sees it, written from docs/csr.md (not imported from the RTL).

Used by the cocotb host (``tb/fabric/host.py``) and the board's PC side (``synth/fabric_host.py``).
"""

ID_VALUE = 0x54455353
REG = {
    "ID": 0x000, "CONFIG": 0x004, "START": 0x008, "ACTIVE": 0x00C, "CYCLES_LO": 0x010,
    "CYCLES_HI": 0x014, "FLUSH": 0x018, "FLUSH_ERRORS": 0x01C, "NOC_LINK_FLITS": 0x020,
    "NOC_EJECT_FLITS": 0x024, "NOC_ERRORS": 0x028, "MCAST_PACKETS": 0x02C, "L2_RESP_FLITS": 0x030,
}
TILE_BASE, TILE_STRIDE = 0x1000, 0x40
TILE_REG = {"CMD0": 0x00, "CMD1": 0x04, "CMD2": 0x08, "CMD3": 0x0C, "STATUS": 0x10,
            "CONTROL": 0x14, "QUEUE": 0x18, "BUSY_CYCLES": 0x1C,
            "LOADS": 0x20, "STORES": 0x24, "MATMULS": 0x28}
SLICE_BASE, SLICE_STRIDE = 0x2000, 0x40
L2_COUNTERS = ["requests", "hits", "misses", "secondary_misses", "evictions", "writebacks",
               "flush_writebacks", "fill_errors", "wb_errors", "malformed"]
STATES = {0: "IDLE", 1: "RUN", 2: "DONE", 3: "ERROR"}
