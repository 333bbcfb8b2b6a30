"""AXI4 and AXI4-Lite port sets, declared once from one field list per bus.

Naming problem solved here, once: Amaranth names the Verilog port of a signature member ``m_axi``
with sub-member ``awaddr`` ``m_axi__awaddr`` (double underscore), while cocotbext-axi's
``AxiBus.from_prefix(dut, "m_axi")`` looks for ``m_axi_awaddr``. So a component that exposes an
AXI port does not nest a sub-signature; it splices *flat* members into its own signature:

    super().__init__({**axi4_members("m_axi", addr_bits=32, data_bits=128, id_bits=3), ...})

which become the Verilog ports ``m_axi_awaddr``, ``m_axi_awvalid``, ... Inside ``elaborate``
:func:`bus_view` gives the same members back as ``bus.awaddr`` etc., and :func:`connect_flat`
joins two flat port sets (of components or of a component and a :func:`axi4_signature` bundle).

Directions are given for the master side; ``Out`` = driven by the master.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "AXI_RESP_OKAY",
    "AXI_RESP_EXOKAY",
    "AXI_RESP_SLVERR",
    "AXI_RESP_DECERR",
    "AXI_BURST_INCR",
    "axi4_fields",
    "axil_fields",
    "axi4_members",
    "axil_members",
    "axi4_signature",
    "axil_signature",
    "bus_view",
    "connect_flat",
]

AXI_RESP_OKAY, AXI_RESP_EXOKAY, AXI_RESP_SLVERR, AXI_RESP_DECERR = 0, 1, 2, 3
AXI_BURST_INCR = 1


def axi4_fields(addr_bits: int, data_bits: int, id_bits: int) -> list[tuple[str, int, str]]:
    """(name, width, "out"|"in") for a full AXI4 master (no user signals)."""
    strb = data_bits // 8
    return [
        ("awid", id_bits, "out"),
        ("awaddr", addr_bits, "out"),
        ("awlen", 8, "out"),
        ("awsize", 3, "out"),
        ("awburst", 2, "out"),
        ("awlock", 1, "out"),
        ("awcache", 4, "out"),
        ("awprot", 3, "out"),
        ("awvalid", 1, "out"),
        ("awready", 1, "in"),
        ("wdata", data_bits, "out"),
        ("wstrb", strb, "out"),
        ("wlast", 1, "out"),
        ("wvalid", 1, "out"),
        ("wready", 1, "in"),
        ("bid", id_bits, "in"),
        ("bresp", 2, "in"),
        ("bvalid", 1, "in"),
        ("bready", 1, "out"),
        ("arid", id_bits, "out"),
        ("araddr", addr_bits, "out"),
        ("arlen", 8, "out"),
        ("arsize", 3, "out"),
        ("arburst", 2, "out"),
        ("arlock", 1, "out"),
        ("arcache", 4, "out"),
        ("arprot", 3, "out"),
        ("arvalid", 1, "out"),
        ("arready", 1, "in"),
        ("rid", id_bits, "in"),
        ("rdata", data_bits, "in"),
        ("rresp", 2, "in"),
        ("rlast", 1, "in"),
        ("rvalid", 1, "in"),
        ("rready", 1, "out"),
    ]


def axil_fields(addr_bits: int, data_bits: int) -> list[tuple[str, int, str]]:
    """(name, width, "out"|"in") for an AXI4-Lite master."""
    return [
        ("awaddr", addr_bits, "out"),
        ("awprot", 3, "out"),
        ("awvalid", 1, "out"),
        ("awready", 1, "in"),
        ("wdata", data_bits, "out"),
        ("wstrb", data_bits // 8, "out"),
        ("wvalid", 1, "out"),
        ("wready", 1, "in"),
        ("bresp", 2, "in"),
        ("bvalid", 1, "in"),
        ("bready", 1, "out"),
        ("araddr", addr_bits, "out"),
        ("arprot", 3, "out"),
        ("arvalid", 1, "out"),
        ("arready", 1, "in"),
        ("rdata", data_bits, "in"),
        ("rresp", 2, "in"),
        ("rvalid", 1, "in"),
        ("rready", 1, "out"),
    ]


def _members(prefix: str, fields, master: bool) -> dict:
    out = {}
    for name, width, direction in fields:
        is_out = (direction == "out") == master
        out[f"{prefix}_{name}"] = Out(width) if is_out else In(width)
    return out


def axi4_members(prefix: str, *, addr_bits: int, data_bits: int, id_bits: int, master: bool = True) -> dict:
    """Flat signature members ``{prefix}_awaddr: Out(...)`` ... for a component's signature dict."""
    return _members(prefix, axi4_fields(addr_bits, data_bits, id_bits), master)


def axil_members(prefix: str, *, addr_bits: int, data_bits: int, master: bool = False) -> dict:
    """Flat AXI4-Lite members (slave by default, as the fabric's host port ``s_axil_*``)."""
    return _members(prefix, axil_fields(addr_bits, data_bits), master)


def axi4_signature(*, addr_bits: int, data_bits: int, id_bits: int) -> wiring.Signature:
    """The same AXI4 master as a nested signature (members ``awaddr``...), for internal wiring."""
    return wiring.Signature(
        {n: (Out(w) if d == "out" else In(w)) for n, w, d in axi4_fields(addr_bits, data_bits, id_bits)}
    )


def axil_signature(*, addr_bits: int, data_bits: int) -> wiring.Signature:
    return wiring.Signature(
        {n: (Out(w) if d == "out" else In(w)) for n, w, d in axil_fields(addr_bits, data_bits)}
    )


def bus_view(obj, prefix: str, fields) -> SimpleNamespace:
    """``obj.{prefix}_awaddr`` ... as ``view.awaddr`` (prefix ``""``: ``obj.awaddr``)."""
    return SimpleNamespace(**{n: getattr(obj, f"{prefix}_{n}" if prefix else n) for n, _, _ in fields})


def connect_flat(m, master: SimpleNamespace, slave: SimpleNamespace, fields):
    """Drive each ``out`` field of ``slave`` from ``master`` and each ``in`` field the other way."""
    for name, _, direction in fields:
        a, b = getattr(master, name), getattr(slave, name)
        assert isinstance(a, Signal) or hasattr(a, "shape")
        if direction == "out":
            m.d.comb += b.eq(a)
        else:
            m.d.comb += a.eq(b)
