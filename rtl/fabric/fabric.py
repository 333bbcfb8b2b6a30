# amaranth: UnusedElaboratable=no
# (Amaranth's linter option, on the first line: tiles and slices built only for their signature)
"""``Fabric``: the whole Tessera: a mesh of compute tiles and L2 slices, memory and host ports."""

from __future__ import annotations

from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.bus.axi import AXI4LiteSignature, AXI4Signature
from tessera.rtl.bus.axi_arbiter import AxiArbiter
from tessera.rtl.cache.axi_port import axi_params
from tessera.rtl.cache.slice import CacheSlice
from tessera.rtl.config import FabricConfig
from tessera.rtl.fabric.csr import Csr
from tessera.rtl.fabric.csr_map import TILE_COUNTERS
from tessera.rtl.fabric.messages import SLICE_PORT, TILE_PORT, memory_addr
from tessera.rtl.fabric.slice_port import SlicePort
from tessera.rtl.instance import instance_of
from tessera.rtl.noc.mesh import Mesh, endpoint_index
from tessera.rtl.tile.tile import ComputeTile

__all__ = ["Fabric", "mem_prefixes", "HOST_ADDR_BITS"]

HOST_ADDR_BITS = 16


def mem_prefixes(cfg: FabricConfig) -> list[str]:
    """Names of the memory ports: ``m_axi`` for one port, ``m_axi0`` .. ``m_axi{P-1}`` for more."""
    return ["m_axi"] if cfg.mem_ports == 1 else [f"m_axi{p}" for p in range(cfg.mem_ports)]


def mem_port_params(cfg: FabricConfig) -> dict:
    """addr/data/id widths of a fabric memory port (the slices' ids plus the arbiter's source bits)."""
    p = axi_params(cfg.cache)
    per_port = cfg.tiles // cfg.mem_ports
    p["id_bits"] += (per_port - 1).bit_length()
    return p


class Fabric(wiring.Component):
    """A ``width`` x ``height`` mesh of nodes; node ``n`` = compute tile + L2 slice + router.

    Ports: ``s_axil`` the AXI4-Lite host port (CSRs, docs/csr.md, 16-bit addresses, 32-bit data);
    ``m_axi`` the AXI4 master to memory, an array of ``mem_ports`` of them when there are several
    (:meth:`mem_port`; ``cache.data_bytes`` wide, one INCR burst per L2 line). Exported with
    cocotbext-axi's names, ``s_axil_*`` and :func:`mem_prefixes` (``m_axi_*`` or ``m_axi0_*`` ...).
    Slice ``n`` uses memory port ``n % mem_ports``; slices sharing a port go through a round-robin
    :class:`AxiArbiter` (their ids are extended by the source index).

    Addresses are line-interleaved: line ``L`` lives in slice ``L % tiles``
    (rtl/fabric/messages.py). The tiles reach the slices through the NoC: requests on the
    request class, responses (unicast or multicast) on the response class, so the two can never
    block each other. See docs/fabric.md for the data path, performance and error behaviour.
    """

    def __init__(self, cfg: FabricConfig, pe_module: str | None = None, tile_module: str | None = None,
                 l2_module: str | None = None, mesh_module: str | None = None):
        """``pe_module``, ``tile_module``, ``l2_module``, ``mesh_module``: instantiate the PEs, the
        compute tiles (with ``node_id`` ports), the L2 slices and the NoC mesh as Verilog modules of
        these names instead of inline copies (hierarchical export,
        :func:`tessera.rtl.fabric.fabric_verilog`)."""
        if not isinstance(cfg, FabricConfig):
            raise ValueError(f"Fabric: cfg must be a FabricConfig, not {type(cfg).__name__}")
        self.cfg, self.pe_module = cfg, pe_module
        self.tile_module, self.l2_module, self.mesh_module = tile_module, l2_module, mesh_module
        mem = Out(AXI4Signature(**mem_port_params(cfg)))
        super().__init__({
            "s_axil": In(AXI4LiteSignature(addr_bits=HOST_ADDR_BITS, data_bits=32)),
            "m_axi": mem if cfg.mem_ports == 1 else mem.array(cfg.mem_ports),
        })

    def mem_port(self, p: int):
        """Memory port ``p`` (``m_axi`` itself when there is one port, else ``m_axi[p]``)."""
        return self.m_axi if self.cfg.mem_ports == 1 else self.m_axi[p]

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        if self.mesh_module:
            mesh = instance_of(m, Mesh(cfg.noc), self.mesh_module, "mesh")
        else:
            m.submodules.mesh = mesh = Mesh(cfg.noc)
        m.submodules.csr = csr = Csr(cfg)
        wiring.connect(m, wiring.flipped(self.s_axil), csr.s_axil)

        per_port = cfg.tiles // cfg.mem_ports
        arbiters = []
        for p in range(cfg.mem_ports):
            arb = AxiArbiter(per_port, **axi_params(cfg.cache))
            m.submodules[f"mem_arbiter{p}"] = arb
            wiring.connect(m, arb.m_axi, wiring.flipped(self.mem_port(p)))
            arbiters.append(arb)

        tiles, ports, slices = [], [], []
        for n in range(cfg.tiles):
            if self.tile_module:
                tile = instance_of(m, ComputeTile(cfg, None), self.tile_module, f"tile{n}")
                m.d.comb += tile.node_id.eq(n)
            else:
                tile = m.submodules[f"tile{n}"] = ComputeTile(cfg, n, pe_module=self.pe_module)
            if self.l2_module:
                l2 = instance_of(m, CacheSlice(cfg.cache), self.l2_module, f"l2_{n}")
            else:
                l2 = m.submodules[f"l2_{n}"] = CacheSlice(cfg.cache)
            port = m.submodules[f"slice_port{n}"] = SlicePort(cfg, n)
            tiles.append(tile)
            ports.append(port)
            slices.append(l2)

            e_tile, e_slice = endpoint_index(cfg.noc, n, TILE_PORT), endpoint_index(cfg.noc, n, SLICE_PORT)
            wiring.connect(m, tile.tx, mesh.tx[e_tile])
            wiring.connect(m, mesh.rx[e_tile], tile.rx)
            wiring.connect(m, port.tx, mesh.tx[e_slice])
            wiring.connect(m, mesh.rx[e_slice], port.rx)
            wiring.connect(m, port.req, l2.req)
            wiring.connect(m, l2.resp, port.resp)

            # The slice's memory port, with the slice-select bits put back into the addresses.
            arb, src = arbiters[n % cfg.mem_ports], n // cfg.mem_ports
            up, down = arb.s_axi[src], l2.m_axi
            for name, member in down.signature.members.items():
                a, b = getattr(down, name), getattr(up, name)
                if name in ("araddr", "awaddr"):
                    m.d.comb += b.eq(memory_addr(cfg, n, a))
                elif member.flow == Out:
                    m.d.comb += b.eq(a)
                else:
                    m.d.comb += a.eq(b)

            # Host side of the tile and the slice.
            wiring.connect(m, csr.cmd[n], tile.cmd)
            m.d.comb += [
                tile.clear.eq(csr.clear[n]),
                csr.status[n].eq(tile.status),
                csr.l2_counters[n].eq(l2.counters),
                port.flush.eq(csr.flush),
                port.flush_op.eq(csr.flush_op),
            ]
            for name in TILE_COUNTERS:
                m.d.comb += getattr(csr, name)[n].eq(getattr(tile, name))

        sync_counts = Cat(t.sync_count for t in tiles)
        for t in tiles:
            m.d.comb += t.sync_counts.eq(sync_counts)

        def total(values):
            acc = values[0]
            for v in values[1:]:
                acc = acc + v
            return acc[:32]

        m.d.comb += [
            csr.noc_link_flits.eq(mesh.link_flits),
            csr.noc_eject_flits.eq(mesh.eject_flits),
            csr.noc_errors.eq(mesh.errors),
            csr.mcast_packets.eq(total([p.mcast_packets for p in ports])),
            csr.l2_resp_flits.eq(total([p.resp_flits for p in ports])),
            csr.flush_busy.eq(Cat(p.flush_busy for p in ports)),
            csr.flush_errors.eq(total([p.flush_errors for p in ports])),
        ]
        return m
