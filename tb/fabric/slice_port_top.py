"""Test top of tb/fabric/test_slice_port.py: a SlicePort in front of a CacheSlice, AXI4 out."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from tessera.rtl.bus.axi import AXI4Signature
from tessera.rtl.cache.axi_port import axi_params
from tessera.rtl.cache.slice import CacheSlice
from tessera.rtl.fabric.slice_port import SlicePort

__all__ = ["SlicePortTop"]


class SlicePortTop(wiring.Component):
    """``rx`` / ``tx`` beat streams (NI side), flush controls and counters, ``m_axi_*`` memory."""

    def __init__(self, cfg, node: int):
        self.cfg, self.node = cfg, node
        # The SlicePort's own ports, except the slice side, which stays inside.
        self._port = SlicePort(cfg, node)
        outer = {k: v for k, v in self._port.signature.members.items() if k not in ("req", "resp")}
        super().__init__({**outer, "m_axi": Out(AXI4Signature(**axi_params(cfg.cache)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.port = port = self._port
        m.submodules.slice = sl = CacheSlice(self.cfg.cache)
        wiring.connect(m, port.req, sl.req)
        wiring.connect(m, sl.resp, port.resp)
        wiring.connect(m, wiring.flipped(self.rx), port.rx)
        wiring.connect(m, port.tx, wiring.flipped(self.tx))
        m.d.comb += [port.flush.eq(self.flush), port.flush_op.eq(self.flush_op)]
        for name in ("flush_busy", "flush_errors", "requests", "resp_flits", "mcast_packets"):
            m.d.comb += getattr(self, name).eq(getattr(port, name))
        wiring.connect(m, sl.m_axi, wiring.flipped(self.m_axi))
        return m
