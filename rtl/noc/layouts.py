"""Interfaces of the network-on-chip, declared once: packet header, NI beat, link flit, link.

Every other NoC file (and the fabric, and the testbenches) imports these; none re-declares a
field list. All layouts depend only on a :class:`tessera.rtl.config.NocConfig`.

* :func:`header_layout` -- what an endpoint says about a packet: ``cls`` (0 request, 1 response),
  ``mcast`` (``dest`` is a node bitmask) or not (``dest`` is a node index), ``port`` (which local
  endpoint at each destination node), and, on receive, ``src`` / ``src_port`` (filled by the NI).
* :func:`beat_layout` -- one beat of a packet at a network interface: ``data`` (``flit_bits``),
  ``last`` and ``hdr``. A packet is one or more beats, the last with ``last`` set.
* :func:`flit_layout` -- a flit on a link: the beat's data plus ``head`` / ``tail``, ``cls``,
  ``vc`` and the routing fields (``dest`` is always a node bitmask in the network). The routing
  fields travel beside the data (a sideband), so a single-flit packet carries ``flit_bits`` of
  payload; only the head flit's routing fields are meaningful.
* :func:`link_signature` -- a router-to-router (or router-to-NI) link: ``valid`` and ``flit``
  downstream, one ``credit`` bit per (class, VC) upstream. A credit pulse means the receiver
  freed one flit of buffer space in that (class, VC) in this cycle.
"""

from __future__ import annotations

from amaranth.hdl import Const
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "CLASSES", "REQUEST", "RESPONSE", "DIRS",
    "node_bits", "port_bits", "vc_bits", "node_xy", "node_id",
    "header_layout", "beat_layout", "flit_layout", "link_signature", "vc_is",
]

CLASSES = 2          # message classes; each has its own VCs, so one can never block the other
REQUEST, RESPONSE = 0, 1
DIRS = ("n", "e", "s", "w")   # n: y - 1, e: x + 1, s: y + 1, w: x - 1


def _bits(n: int) -> int:
    """Bits to hold 0..n-1 (at least 1)."""
    return max(1, (n - 1).bit_length())


def node_bits(cfg) -> int:
    return _bits(cfg.nodes)


def port_bits(cfg) -> int:
    return _bits(cfg.local_ports)


def vc_bits(cfg) -> int:
    return _bits(cfg.vcs)


def node_xy(cfg, node: int) -> tuple[int, int]:
    """Node index -> (x, y); nodes are numbered row-major, ``node = y * width + x``."""
    return node % cfg.width, node // cfg.width


def node_id(cfg, x: int, y: int) -> int:
    return y * cfg.width + x


def vc_is(field, v: int):
    """``field == v`` with the constant at the field's width (lint-clean)."""
    return field == Const(v, len(field))


def header_layout(cfg) -> data.StructLayout:
    return data.StructLayout({
        "cls": 1,
        "mcast": 1,
        "port": port_bits(cfg),
        "dest": cfg.nodes,          # node index (unicast) or node bitmask (multicast)
        "src": node_bits(cfg),
        "src_port": port_bits(cfg),
    })


def beat_layout(cfg) -> data.StructLayout:
    return data.StructLayout({
        "data": cfg.flit_bits,
        "last": 1,
        "hdr": header_layout(cfg),
    })


def flit_layout(cfg) -> data.StructLayout:
    return data.StructLayout({
        "data": cfg.flit_bits,
        "head": 1,
        "tail": 1,
        "cls": 1,
        "vc": vc_bits(cfg),
        "mcast": 1,
        "dest": cfg.nodes,          # always a bitmask inside the network
        "port": port_bits(cfg),
        "src": node_bits(cfg),
        "src_port": port_bits(cfg),
    })


def link_signature(cfg) -> wiring.Signature:
    return wiring.Signature({
        "valid": Out(1),
        "flit": Out(flit_layout(cfg)),
        "credit": In(CLASSES * cfg.vcs),
    })
