"""AXI4 and AXI4-Lite ports: one field list per bus, and a ``Signature`` class for each.

A component with an AXI port declares it as one member,

    super().__init__({"m_axi": Out(AXI4Signature(addr_bits=32, data_bits=128, id_bits=3)), ...})

(``In(...)`` for a slave; several ports as ``Out(AXI4Signature(...)).array(n)``), reaches the
signals as ``self.m_axi.awaddr`` and wires it with ``wiring.connect``, which checks that both
sides have the same widths. Signals are named for the master; ``Out`` = driven by the master.

Exported Verilog uses cocotbext-axi's names: ``AxiBus.from_prefix(dut, "m_axi")`` looks for
``m_axi_awaddr``, where Amaranth would write ``m_axi__awaddr``. :func:`tessera.rtl.export.verilog_ports`
names the members of these signatures ``<port>_<signal>`` (and ``<port><i>_<signal>`` in an array),
every other member as Amaranth does.
"""

from __future__ import annotations

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
    "AXI4Signature",
    "AXI4LiteSignature",
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


def _flow_members(fields) -> dict:
    return {name: Out(width) if direction == "out" else In(width) for name, width, direction in fields}


class AXI4Signature(wiring.Signature):
    """A full AXI4 master port (no user, QoS or region signals): the five channels' signals by
    their AXI names (``awaddr`` ... ``rready``), ``Out`` = driven by the master. ``In(...)`` of it
    is a slave port. Burst type, size and length are the master's to set; the slaves in Tessera
    serve INCR bursts."""

    def __init__(self, *, addr_bits: int, data_bits: int, id_bits: int):
        self.addr_bits, self.data_bits, self.id_bits = addr_bits, data_bits, id_bits
        super().__init__(_flow_members(axi4_fields(addr_bits, data_bits, id_bits)))

    def __eq__(self, other):
        return (type(other) is type(self)
                and (self.addr_bits, self.data_bits, self.id_bits)
                == (other.addr_bits, other.data_bits, other.id_bits))

    def __hash__(self):
        return hash((type(self), self.addr_bits, self.data_bits, self.id_bits))

    def __repr__(self):
        return (f"AXI4Signature(addr_bits={self.addr_bits}, data_bits={self.data_bits}, "
                f"id_bits={self.id_bits})")


class AXI4LiteSignature(wiring.Signature):
    """An AXI4-Lite master port (``awaddr`` ... ``rready``, no ids, single beats), ``Out`` = driven
    by the master; ``In(...)`` of it is a slave port, as the fabric's CSR port."""

    def __init__(self, *, addr_bits: int, data_bits: int):
        self.addr_bits, self.data_bits = addr_bits, data_bits
        super().__init__(_flow_members(axil_fields(addr_bits, data_bits)))

    def __eq__(self, other):
        return (type(other) is type(self)
                and (self.addr_bits, self.data_bits) == (other.addr_bits, other.data_bits))

    def __hash__(self):
        return hash((type(self), self.addr_bits, self.data_bits))

    def __repr__(self):
        return f"AXI4LiteSignature(addr_bits={self.addr_bits}, data_bits={self.data_bits})"
