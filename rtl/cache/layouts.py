"""Request and response of an L2 slice: the layouts the NoC network interface carries.

Declared once here and imported everywhere (``rtl/noc`` included). All layouts are
``amaranth.lib.data.StructLayout``s, first field in the low bits of the flattened payload.

Request (``request_layout(cfg)``):
  ``op``    3 bits, :class:`CacheOp`; any other value is malformed.
  ``size``  3 bits, log2 of the accessed byte count (0: 1 byte ... log2(data_bytes): a whole word).
  ``addr``  byte address. The access covers bytes ``[addr, addr + 2**size)``, which must lie inside
            one ``data_bytes`` word (so never across a line): otherwise the request is malformed.
            ``ALLOC``: ``addr`` selects the line; ``size``, ``mask``, ``data`` are ignored (never
            malformed because of them).
  ``mask``  write byte enables, one per byte lane of the word; a byte is written when it lies in the
            accessed range *and* its mask bit is set. Ignored by reads.
  ``data``  write data in its byte lanes (byte ``addr`` is lane ``addr % data_bytes``).
  ``id``    requester tag, returned unchanged in the response.
  ``dest``  multicast destination set, returned unchanged in the response.

Response (``response_layout(cfg)``), one per request (reads, writes, allocs, flush, invalidate):
  ``op``, ``id``, ``dest`` echoed; ``status`` (:class:`CacheStatus`); ``data`` the whole word
  containing ``addr`` (reads; zero otherwise); ``hit``/``secondary``/``evict``/``writeback``: how
  the request was served (a hit; a secondary miss on a line already being fetched; its primary
  miss evicted a valid line; that line was dirty and written back).
"""

from __future__ import annotations

from amaranth.lib import data, enum

__all__ = ["CacheOp", "CacheStatus", "request_layout", "response_layout", "counters_layout", "COUNTERS"]


class CacheOp(enum.Enum, shape=3):
    READ = 0
    WRITE = 1
    FLUSH = 2  # write every dirty line back; lines stay valid and become clean
    INVALIDATE = 3  # write every dirty line back, then invalidate every line
    ALLOC = 4  # claim the line of addr without fetching it: every byte 0, line dirty


class CacheStatus(enum.Enum, shape=2):
    OK = 0
    MALFORMED = 1  # unknown op or an access outside one data word: nothing changed
    FILL_ERROR = 2  # the line fill got an AXI error: read data invalid, write dropped
    WB_ERROR = 3  # a write-back caused by this request (eviction or flush) got an AXI error


def request_layout(cfg) -> data.StructLayout:
    return data.StructLayout(
        {
            "op": CacheOp,
            "size": 3,
            "addr": cfg.addr_bits,
            "mask": cfg.data_bytes,
            "data": cfg.data_bytes * 8,
            "id": cfg.id_bits,
            "dest": cfg.dest_bits,
        }
    )


def response_layout(cfg) -> data.StructLayout:
    return data.StructLayout(
        {
            "op": CacheOp,
            "status": CacheStatus,
            "hit": 1,
            "secondary": 1,
            "evict": 1,
            "writeback": 1,
            "data": cfg.data_bytes * 8,
            "id": cfg.id_bits,
            "dest": cfg.dest_bits,
        }
    )


# Event counters of a slice (32-bit, wrapping), readable by the fabric's CSRs and the benches.
COUNTERS = [
    "requests",
    "hits",
    "misses",
    "secondary_misses",
    "evictions",
    "writebacks",
    "flush_writebacks",
    "fill_errors",
    "wb_errors",
    "malformed",
]


def counters_layout() -> data.StructLayout:
    return data.StructLayout({name: 32 for name in COUNTERS})
