"""Tag and replacement state of an L2 slice: one tag memory per way and one age memory."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.cache.lru import lru_age_bits


class TagArray(wiring.Component):
    """Per-way tag memories (valid, dirty, tag) and a per-set true-LRU age memory.

    Read: ``rd_set`` with ``rd_en`` high at a clock edge -> ``rd_valid``/``rd_dirty``/``rd_tag`` of
    every way and ``rd_ages`` of the set during the following cycle (latency 1, synchronous read
    ports, so that FPGAs map them to block RAM). With ``rd_en`` low the outputs hold. The read is
    transparent: a write to the same set at the same edge is seen.

    Write: each way has its own write port (``wr_en[w]``, ``wr_set[w]``, ``wr_valid[w]``,
    ``wr_dirty[w]``, ``wr_tag[w]``), so that a line install and a pipeline update of different
    ways happen in the same cycle; ``ages_we`` writes ``ages_data`` for ``ages_set``.
    Reset state: every line invalid; ages of way ``i`` = ``i`` (a permutation, see LruPolicy).
    No back-pressure, no error conditions.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        W = cfg.ways
        self.tag_w = cfg.tag_bits
        self.set_w = max(1, cfg.index_bits)
        self.age_w = lru_age_bits(W)
        super().__init__(
            {
                "rd_set": In(self.set_w),
                "rd_en": In(1),
                "rd_valid": Out(W),
                "rd_dirty": Out(W),
                "rd_tag": Out(data.ArrayLayout(self.tag_w, W)),
                "rd_ages": Out(W * self.age_w),
                "wr_en": In(W),
                "wr_set": In(data.ArrayLayout(self.set_w, W)),
                "wr_valid": In(W),
                "wr_dirty": In(W),
                "wr_tag": In(data.ArrayLayout(self.tag_w, W)),
                "ages_we": In(1),
                "ages_set": In(self.set_w),
                "ages_data": In(W * self.age_w),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cfg, W = self.cfg, self.cfg.ways
        for w in range(W):
            mem = memory.Memory(shape=self.tag_w + 2, depth=cfg.sets, init=[])
            m.submodules[f"tag{w}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=(wp,))
            m.d.comb += [
                wp.en.eq(self.wr_en[w]),
                wp.addr.eq(self.wr_set[w]),
                wp.data.eq(self.wr_valid[w] | (self.wr_dirty[w] << 1) | (self.wr_tag[w] << 2)),
                rp.en.eq(self.rd_en),
                rp.addr.eq(self.rd_set),
                self.rd_valid[w].eq(rp.data[0]),
                self.rd_dirty[w].eq(rp.data[1]),
                self.rd_tag[w].eq(rp.data[2:]),
            ]
        ages0 = sum(i << (i * self.age_w) for i in range(W))
        ages = memory.Memory(shape=W * self.age_w, depth=cfg.sets, init=[ages0] * cfg.sets)
        m.submodules.ages = ages
        awp = ages.write_port()
        arp = ages.read_port(transparent_for=(awp,))
        m.d.comb += [
            awp.en.eq(self.ages_we),
            awp.addr.eq(self.ages_set),
            awp.data.eq(self.ages_data),
            arp.en.eq(self.rd_en),
            arp.addr.eq(self.rd_set),
            self.rd_ages.eq(arp.data),
        ]
        return m
