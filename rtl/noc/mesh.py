# amaranth: UnusedElaboratable=no
"""``Mesh``: a W x H mesh of routers with a network interface per local endpoint."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.instance import instance_of
from tessera.rtl.noc.layouts import beat_layout, node_id, node_xy
from tessera.rtl.noc.ni import NetworkInterface
from tessera.rtl.noc.router import Router, router_ports

__all__ = ["Mesh", "endpoint_index"]


def endpoint_index(cfg, node: int, port: int) -> int:
    """Endpoints are numbered ``node * local_ports + port``."""
    return node * cfg.local_ports + port


class Mesh(wiring.Component):
    """The whole network: ``cfg.width`` x ``cfg.height`` routers, ``cfg.local_ports`` endpoints each.

    Ports: for endpoint ``e`` (:func:`endpoint_index`) an input stream ``tx[e]`` and an ``rx[e]``
    output stream of :func:`tessera.rtl.noc.layouts.beat_layout` (see :class:`NetworkInterface`);
    ``errors`` (32 bits): packets dropped at injection, summed over all endpoints;
    ``link_flits`` (32 bits): flits sent over router-to-router links since reset (link
    traversals; a multicast copy on each branch counts once per link);
    ``eject_flits`` (32 bits): flits delivered to endpoints.

    Latency at zero load: a packet offered on ``tx`` at cycle t whose head travels D hops is
    offered on ``rx`` at cycle t + D + 2 (one cycle into the source router, one per hop, one into
    the ejection FIFO) and its tail ``F - 1`` cycles later. Back-pressure: ``tx.ready`` falls when
    the source router's FIFO of the packet's (class, VC) is out of credits; ``rx`` waits for
    ``rx.ready`` as long as needed, and the network backs up behind it through the credits,
    without losing or duplicating anything. Errors: see :class:`NetworkInterface`.
    """

    def __init__(self, cfg, router_module: str | None = None):
        """``router_module``: instantiate the router at (x, y) as the Verilog module
        ``<router_module>_<x>_<y>`` instead of an inline copy (hierarchical export,
        :mod:`tessera.rtl.fabric.export`; routers differ by position, so each is its own module)."""
        self.cfg, self.router_module = cfg, router_module
        endpoints = cfg.nodes * cfg.local_ports
        super().__init__({
            "tx": In(stream.Signature(beat_layout(cfg))).array(endpoints),
            "rx": Out(stream.Signature(beat_layout(cfg))).array(endpoints),
            "errors": Out(32), "link_flits": Out(32), "eject_flits": Out(32),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        routers = {}
        for n in range(cfg.nodes):
            x, y = node_xy(cfg, n)
            if self.router_module:
                module = f"{self.router_module}_{x}_{y}"
                routers[n] = instance_of(m, Router(cfg, x, y), module, f"router_{x}_{y}")
            else:
                routers[n] = m.submodules[f"router_{x}_{y}"] = Router(cfg, x, y)

        # Neighbour links: east/west and north/south pairs.
        for n, r in routers.items():
            x, y = node_xy(cfg, n)
            if x + 1 < cfg.width:
                east = routers[node_id(cfg, x + 1, y)]
                wiring.connect(m, r.out_e, east.in_w)
                wiring.connect(m, east.out_w, r.in_e)
            if y + 1 < cfg.height:
                south = routers[node_id(cfg, x, y + 1)]
                wiring.connect(m, r.out_s, south.in_n)
                wiring.connect(m, south.out_n, r.in_s)

        errors, links, ejects = [], [], []
        for n, r in routers.items():
            for p in range(cfg.local_ports):
                e = endpoint_index(cfg, n, p)
                ni = m.submodules[f"ni_{e}"] = NetworkInterface(cfg, n, p)
                wiring.connect(m, ni.to_router, getattr(r, f"in_l{p}"))
                wiring.connect(m, getattr(r, f"out_l{p}"), ni.from_router)
                wiring.connect(m, wiring.flipped(self.tx[e]), ni.tx)
                wiring.connect(m, ni.rx, wiring.flipped(self.rx[e]))
                errors.append(ni.errors)
                ejects.append(getattr(r, f"count_l{p}"))
            links += [getattr(r, f"count_{d}") for d in router_ports(cfg, *node_xy(cfg, n))
                      if not d.startswith("l")]

        def total(values):
            """Balanced adder tree (a chain would be as deep as the mesh is large)."""
            values = list(values)
            if not values:
                return 0
            while len(values) > 1:
                pairs = [(values[i] + values[i + 1])[:32] for i in range(0, len(values) - 1, 2)]
                values = pairs + ([values[-1]] if len(values) % 2 else [])
            return values[0]

        m.d.comb += [
            self.errors.eq(total(errors)),
            self.link_flits.eq(total(links)),
            self.eject_flits.eq(total(ejects)),
        ]
        return m
