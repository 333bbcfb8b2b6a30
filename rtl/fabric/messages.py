"""Messages between compute tiles and L2 slices over the NoC, declared once (docs/fabric.md).

Every node ``n`` of the mesh has a router with two local endpoints: port :data:`TILE_PORT` (0),
the compute tile's tensor DMA, and port :data:`SLICE_PORT` (1), the L2 slice behind its
:class:`tessera.rtl.fabric.slice_port.SlicePort`. One NoC flit carries one word (``flit_bits`` =
``8 * cache.data_bytes`` = ``8 * tile.word_bytes``, checked by :class:`tessera.rtl.config.FabricConfig`);
the first flit of a packet carries a head layout below in its low bits (the rest zero).

Request packets (class REQUEST, tile port 0 -> slice port 1 of :func:`owner` of the address):

  =========  ============================================  ===========================
  op         beats                                         response
  =========  ============================================  ===========================
  READ       1: :func:`req_head_layout`                     READ, 2 beats (head, data)
  WRITE      2: head, then the data word                   WRITE, 1 beat (none if quiet
                                                            and OK)
  ALLOC      1: head (claim the whole line, zeroed, dirty;  ALLOC, 1 beat (none if quiet
             no fetch from memory)                          and OK)
  =========  ============================================  ===========================

  ``addr`` is a word-aligned byte address (the access is always one whole word, ``size`` =
  log2(word_bytes)); ``mask`` the byte enables of a WRITE; ``id`` the requester's
  :func:`tag_layout`, echoed in the response; ``dest`` the node bitmask that gets the response
  (the requester's own bit for a LOCAL LOAD or a STORE; the multicast group for a SEND).
  FLUSH and INVALIDATE never travel on the NoC: the host starts them through the CSRs.

Response packets (class RESPONSE, slice port 1 -> tile port 0 of every node in ``dest``; a
unicast packet when ``dest`` has one bit, a multicast packet otherwise): a
:func:`resp_head_layout` beat, then for READ the data word.

Line interleaving: line ``L = addr // line_bytes`` lives in slice ``L % nodes`` (:func:`owner`);
the slice indexes its sets with ``L // nodes`` (:func:`slice_addr`), and its memory port puts
the slice bits back (:func:`memory_addr`), so every slice uses all of its sets.
"""

from __future__ import annotations

from amaranth.hdl import Cat
from amaranth.lib import data
from amaranth.utils import ceil_log2

from tessera.rtl.cache.layouts import CacheOp, CacheStatus

__all__ = [
    "TILE_PORT", "SLICE_PORT", "LOAD_SLOTS", "SLOT_BITS",
    "tag_layout", "tag_bits", "quiet_bit", "req_head_layout", "req_head_bits", "resp_head_layout",
    "local_word_bits", "node_select_bits", "owner", "slice_addr", "memory_addr",
]

TILE_PORT, SLICE_PORT = 0, 1
LOAD_SLOTS = 16  # LOAD completion slots per tile (> TileConfig.max_outstanding, which is <= 15)
SLOT_BITS = 4


def local_word_bits(cfg) -> int:
    """Bits of a word address in the larger of the scratchpad and the accumulator memory."""
    tile = cfg.tile
    return max(1, ceil_log2(max(tile.scratchpad_words, tile.accumulator_words)))


def node_select_bits(cfg) -> int:
    return ceil_log2(cfg.noc.nodes)


def tag_layout(cfg) -> data.StructLayout:
    """What a tile's DMA puts in a request's ``id`` (and gets back in the response).

    ``valid``: bytes of the word to write, 0 meaning all ``word_bytes`` (only the last word of a
    row is partial; bytes ``0 .. valid-1`` are written). ``word``: local word address.
    ``space``: 0 scratchpad, 1 accumulator memory. ``slot``: the LOAD's completion slot
    (the tile's LOAD sequence number modulo :data:`LOAD_SLOTS`); 0 for STORE traffic.
    ``quiet`` (the top bit; WRITE and ALLOC only): the slice port sends no response when the
    status is OK. A STORE sets it on every request but the last of each line it writes: the
    slice completes the requests of one line in order and the NoC keeps their order, so that
    last response acknowledges the whole line (see :func:`quiet_bit`).
    """
    return data.StructLayout({
        "valid": max(1, ceil_log2(cfg.tile.word_bytes)),
        "word": local_word_bits(cfg),
        "space": 1,
        "slot": SLOT_BITS,
        "quiet": 1,
    })


def quiet_bit(cfg) -> int:
    """Bit index of the tag's ``quiet`` flag in a request's / response's ``id``."""
    return tag_layout(cfg)["quiet"].offset


def tag_bits(cfg) -> int:
    return tag_layout(cfg).size


def req_head_layout(cfg) -> data.StructLayout:
    return data.StructLayout({
        "op": CacheOp,
        "addr": cfg.cache.addr_bits,
        "mask": cfg.cache.data_bytes,
        "id": cfg.cache.id_bits,
        "dest": cfg.noc.nodes,
    })


def req_head_bits(cfg) -> int:
    return req_head_layout(cfg).size


def resp_head_layout(cfg) -> data.StructLayout:
    return data.StructLayout({
        "op": CacheOp,
        "status": CacheStatus,
        "id": cfg.cache.id_bits,
    })


def owner(cfg, addr):
    """The node whose L2 slice holds byte ``addr`` (a Python int or an Amaranth value)."""
    off, sel = cfg.cache.offset_bits, node_select_bits(cfg)
    if isinstance(addr, int):
        return (addr >> off) % cfg.noc.nodes
    if sel == 0:
        return 0
    return addr[off:off + sel]


def slice_addr(cfg, addr):
    """The address a slice sees for global ``addr``: the slice-select bits removed."""
    off, sel = cfg.cache.offset_bits, node_select_bits(cfg)
    if isinstance(addr, int):
        return (addr & ((1 << off) - 1)) | ((addr >> (off + sel)) << off)
    return Cat(addr[:off], addr[off + sel:])


def memory_addr(cfg, node: int, addr):
    """The global address of slice ``node``'s address ``addr`` (inverse of :func:`slice_addr`)."""
    off, sel = cfg.cache.offset_bits, node_select_bits(cfg)
    if isinstance(addr, int):
        return (addr & ((1 << off) - 1)) | (node << off) | ((addr >> off) << (off + sel))
    if sel == 0:
        return addr
    from amaranth.hdl import Const

    return Cat(addr[:off], Const(node, sel), addr[off:])[:len(addr)]
