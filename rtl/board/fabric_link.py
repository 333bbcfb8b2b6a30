"""The fabric on the board: serial line -> UART -> AXI4-Lite bridge -> fabric CSRs and block-RAM memory."""

from __future__ import annotations

from amaranth import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from tessera.rtl.board.axi_bram import HOST_MEM_BASE, AxiBram
from tessera.rtl.board.host_link import UartLink
from tessera.rtl.config import FabricConfig
from tessera.rtl.fabric.fabric import HOST_ADDR_BITS, Fabric, mem_port_params

__all__ = ["FabricLink", "HOST_MEM_BASE"]


class FabricLink(UartLink):
    """A whole :class:`tessera.rtl.fabric.fabric.Fabric` driven from a PC over an 8N1 serial line.

    :class:`UartLink` (byte protocol in docs/synthesis.md; ``rx``, ``tx``, ``rx_error``, ``busy``)
    -> the bridge's AXI4-Lite master, split by address:

    * ``0x0000_0000 .. 0x0000_FFFF``: the fabric's CSRs (docs/csr.md);
    * ``HOST_MEM_BASE + a`` (``0x8000_0000 + a``): byte ``a`` of the memory, ``a`` below
      ``memory_bytes`` (the fabric sees the same byte at address ``a``);
    * anything else: DECERR (answered by the memory's host port).

    The fabric's AXI4 memory port (one port: ``cfg.mem_ports`` must be 1) goes to :class:`AxiBram`
    of ``memory_bytes``; fabric addresses beyond it answer DECERR, which the fabric reports as a
    tile or flush error. ``sim/runtime/board_gemm.py`` is the PC side (runs a GEMM).
    """

    def __init__(self, cfg: FabricConfig, *, divisor: int, memory_bytes: int = 64 * 1024,
                 frame_timeout: int = 1 << 20, fabric: Fabric | None = None):
        """``fabric``: a ``Fabric(cfg, ...)`` to use (the simulation passes one that instantiates
        its tiles as separate modules, :func:`tessera.rtl.fabric.fabric_verilog`); default ``Fabric(cfg)``."""
        if not isinstance(cfg, FabricConfig):
            raise ValueError(f"FabricLink: cfg must be a FabricConfig, not {type(cfg).__name__}")
        if cfg.mem_ports != 1:
            raise ValueError(f"FabricLink: cfg.mem_ports = {cfg.mem_ports}; the board has one memory,"
                             " allowed: 1")
        self.cfg = cfg
        self.fabric = fabric if fabric is not None else Fabric(cfg)
        self.mem_params = mem_port_params(cfg)
        self.memory = AxiBram(data_bytes=cfg.cache.data_bytes, addr_bits=self.mem_params["addr_bits"],
                              id_bits=self.mem_params["id_bits"], memory_bytes=memory_bytes)
        super().__init__(divisor=divisor, frame_timeout=frame_timeout)

    def elaborate(self, platform):
        m = Module()
        m.submodules.fabric = self.fabric
        m.submodules.memory = self.memory
        master = self.elaborate_bridge(m)

        wiring.connect(m, self.fabric.mem_port(0), self.memory.s_axi)

        # Address split: the bridge holds one transaction's address steady until its reply, so
        # the select is combinational on the address it presents.
        csr, mem = self.fabric.s_axil, self.memory.h_axil
        to_csr_w = master.awaddr[HOST_ADDR_BITS:] == 0
        to_csr_r = master.araddr[HOST_ADDR_BITS:] == 0
        for name, member in master.signature.members.items():
            a, c, b = getattr(master, name), getattr(csr, name), getattr(mem, name)
            sel = to_csr_r if name.startswith(("ar", "r")) else to_csr_w
            out = member.flow == Out
            if name.endswith("valid") and out:
                m.d.comb += [c.eq(a & sel), b.eq(a & ~sel)]
            elif out:
                m.d.comb += [c.eq(a), b.eq(a)]  # the CSR port decodes the low address bits
            else:
                m.d.comb += a.eq(Mux(sel, c, b))
        return m
