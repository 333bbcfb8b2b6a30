"""The AXI4-Lite handshake rules at a slave port, as formal properties (docs/verification.md).

:func:`axil_slave_properties` adds them for one slave port: the master's obligations are assumed
(a valid stays high, with its payload unchanged, until its ready), the slave's are asserted (a
``bvalid`` / ``rvalid`` stays high, with ``bresp`` / ``rdata`` / ``rresp`` unchanged, until its
ready; a response only for a request: no more B responses than AW and W pairs taken, no more R
than AR). :class:`CsrProperties` puts them on the fabric's host port (``Csr.s_axil``).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Module, ResetSignal, Signal

from tessera.rtl.fabric.csr import Csr
from tessera.tb.formal.harness import PortHarness

__all__ = ["axil_slave_properties", "CsrProperties"]


def _stable_until_ready(m: Module, valid, ready, payload, check, name: str):
    """``check`` (Assert or Assume): once ``valid`` is high without ``ready``, the next cycle has
    ``valid`` high and the same ``payload``."""
    waiting = Signal(name=f"{name}_waiting")
    held = Signal(len(payload), name=f"{name}_held")
    m.d.sync += [waiting.eq(valid & ~ready), held.eq(payload)]
    m.d.comb += check(~waiting | (valid & (payload == held)))


def axil_slave_properties(m: Module, port, outstanding: int = 3):
    """The rules of AXI4-Lite at the slave side ``port`` (an ``In(AXI4LiteSignature)``), with no
    reset after the start. ``outstanding`` bounds the counters of requests not yet answered."""
    m.d.comb += Assume(~ResetSignal())
    p = port
    _stable_until_ready(m, p.awvalid, p.awready, Cat(p.awaddr, p.awprot), Assume, "aw")
    _stable_until_ready(m, p.wvalid, p.wready, Cat(p.wdata, p.wstrb), Assume, "w")
    _stable_until_ready(m, p.arvalid, p.arready, Cat(p.araddr, p.arprot), Assume, "ar")
    _stable_until_ready(m, p.bvalid, p.bready, p.bresp, Assert, "b")
    _stable_until_ready(m, p.rvalid, p.rready, Cat(p.rdata, p.rresp), Assert, "r")
    width = range(outstanding + 2)
    aws, ws, reads = (Signal(width, name=f"{c}_taken") for c in ("aw", "w", "ar"))
    for count, taken, answered in ((aws, p.awvalid & p.awready, p.bvalid & p.bready),
                                   (ws, p.wvalid & p.wready, p.bvalid & p.bready),
                                   (reads, p.arvalid & p.arready, p.rvalid & p.rready)):
        m.d.sync += count.eq(count + taken - answered)
        m.d.comb += Assume(count <= outstanding)
    m.d.comb += [
        Assert(~p.bvalid | ((aws != 0) & (ws != 0))),
        Assert(~p.rvalid | (reads != 0)),
    ]


class CsrProperties(PortHarness):
    """The fabric's CSR block (``Csr``) with the AXI4-Lite rules on its host port ``s_axil``."""

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__(Csr(cfg))

    def properties(self, m):
        axil_slave_properties(m, self.s_axil)
