"""Data memories of an L2 slice: one memory per way, one data word per row."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.cache.lru import way_bits


class DataArray(wiring.Component):
    """Per-way data memories, ``sets * beats_per_line`` rows of ``data_bytes`` each.

    A row address is ``set * beats_per_line + beat``.
    Pipeline read: ``rd_addr`` with ``rd_en`` at an edge -> ``rd_data[w]`` of every way in the next
    cycle (latency 1, holds while ``rd_en`` is low, transparent for writes at the same edge).
    Write-back read: ``wb_way``/``wb_addr`` with ``wb_en`` -> ``wb_data`` (that way's row) in the
    next cycle (latency 1, holds while ``wb_en`` is low; not transparent).
    Write: each way has its own port: ``wr_be[w]`` byte enables, ``wr_addr[w]``, ``wr_data[w]``,
    so that a fill beat into one way and a write hit into another happen in the same cycle.
    No back-pressure, no error conditions.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        W, D = cfg.ways, cfg.data_bytes
        self.rows = cfg.sets * cfg.beats_per_line
        self.addr_w = max(1, (self.rows - 1).bit_length())
        super().__init__(
            {
                "rd_addr": In(self.addr_w),
                "rd_en": In(1),
                "rd_data": Out(data.ArrayLayout(D * 8, W)),
                "wb_way": In(way_bits(W)),
                "wb_addr": In(self.addr_w),
                "wb_en": In(1),
                "wb_data": Out(D * 8),
                "wr_be": In(data.ArrayLayout(D, W)),
                "wr_addr": In(data.ArrayLayout(self.addr_w, W)),
                "wr_data": In(data.ArrayLayout(D * 8, W)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        W, D = self.cfg.ways, self.cfg.data_bytes
        wb_way_q = Signal.like(self.wb_way)
        with m.If(self.wb_en):
            m.d.sync += wb_way_q.eq(self.wb_way)
        for w in range(W):
            mem = memory.Memory(shape=D * 8, depth=self.rows, init=[])
            m.submodules[f"way{w}"] = mem
            wp = mem.write_port(granularity=8)
            rp = mem.read_port(transparent_for=(wp,))
            bp = mem.read_port()
            m.d.comb += [
                wp.en.eq(self.wr_be[w]),
                wp.addr.eq(self.wr_addr[w]),
                wp.data.eq(self.wr_data[w]),
                rp.en.eq(self.rd_en),
                rp.addr.eq(self.rd_addr),
                self.rd_data[w].eq(rp.data),
                bp.en.eq(self.wb_en & (self.wb_way == w)),
                bp.addr.eq(self.wb_addr),
            ]
            with m.If(wb_way_q == w):
                m.d.comb += self.wb_data.eq(bp.data)
        return m
