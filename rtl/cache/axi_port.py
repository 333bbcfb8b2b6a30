"""AXI4 master memory port of an L2 slice: one INCR burst per line."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.bus.axi import AXI_BURST_INCR, AXI_RESP_OKAY, AXI4Signature
from tessera.rtl.cache.lru import way_bits
from tessera.rtl.cache.mshr import mshr_bits


def axi_params(cfg) -> dict:
    return dict(addr_bits=cfg.addr_bits, data_bits=cfg.data_bytes * 8, id_bits=mshr_bits(cfg))


class AxiMemPort(wiring.Component):
    """Turns line fetches and line write-backs into AXI4 bursts on ``m_axi_*``.

    Read side: an ``ar_cmd`` (line address, MSHR id) is accepted when the AR register is free and
    becomes one AR (``arlen = beats_per_line - 1``, full-width beats, INCR, ``arid`` = MSHR id),
    valid from the next cycle until ``arready``. Any number of reads may be outstanding. R beats
    pass combinationally to ``r_beat`` (``err`` = RRESP not OKAY); ``r_beat.ready`` drives RREADY.
    Write side: a ``wb_cmd`` (victim line, MSHR id, set, way) is accepted when the write engine is
    idle (one write-back at a time); it issues the AW and streams the line's beats, read from the
    data memories through ``wb_way``/``wb_addr``/``wb_en`` -> ``wb_data`` (latency 1), one beat per
    cycle while WREADY is high. When the AW and every W beat are accepted, ``wb_done`` pulses with
    the id; the data memory may then be overwritten. Each B pulses ``b_valid`` with ``b_id`` and
    ``b_err`` (BRESP not OKAY); BREADY is always high.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        ib = mshr_bits(cfg)
        lb = cfg.addr_bits - cfg.offset_bits
        sb = max(1, cfg.index_bits)
        rows = cfg.sets * cfg.beats_per_line
        self.addr_w = max(1, (rows - 1).bit_length())
        super().__init__(
            {
                "m_axi": Out(AXI4Signature(**axi_params(cfg))),
                "ar_cmd": In(stream.Signature(data.StructLayout({"line": lb, "id": ib}))),
                "r_beat": Out(
                    stream.Signature(
                        data.StructLayout({"id": ib, "data": cfg.data_bytes * 8, "last": 1, "err": 1})
                    )
                ),
                "wb_cmd": In(
                    stream.Signature(
                        data.StructLayout({"line": lb, "id": ib, "set": sb, "way": way_bits(cfg.ways)})
                    )
                ),
                "wb_way": Out(way_bits(cfg.ways)),
                "wb_addr": Out(self.addr_w),
                "wb_en": Out(1),
                "wb_data": In(cfg.data_bytes * 8),
                "wb_done": Out(1),
                "wb_done_id": Out(ib),
                "b_valid": Out(1),
                "b_id": Out(ib),
                "b_err": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        B = cfg.beats_per_line
        ob = cfg.offset_bits
        size = (cfg.data_bytes - 1).bit_length()
        axi = self.m_axi

        # Constant attributes of every burst.
        m.d.comb += [
            axi.arlen.eq(B - 1),
            axi.arsize.eq(size),
            axi.arburst.eq(AXI_BURST_INCR),
            axi.awlen.eq(B - 1),
            axi.awsize.eq(size),
            axi.awburst.eq(AXI_BURST_INCR),
            axi.wstrb.eq(-1),
            axi.bready.eq(1),
        ]

        # ---- read: AR register, R pass-through
        with m.If(axi.arvalid & axi.arready):
            m.d.sync += axi.arvalid.eq(0)
        m.d.comb += self.ar_cmd.ready.eq(~axi.arvalid | axi.arready)
        with m.If(self.ar_cmd.valid & self.ar_cmd.ready):
            m.d.sync += [
                axi.arvalid.eq(1),
                axi.araddr.eq(self.ar_cmd.payload.line << ob),
                axi.arid.eq(self.ar_cmd.payload.id),
            ]
        m.d.comb += [
            self.r_beat.valid.eq(axi.rvalid),
            axi.rready.eq(self.r_beat.ready),
            self.r_beat.payload.id.eq(axi.rid),
            self.r_beat.payload.data.eq(axi.rdata),
            self.r_beat.payload.last.eq(axi.rlast),
            self.r_beat.payload.err.eq(axi.rresp != AXI_RESP_OKAY),
        ]

        # ---- write-back engine
        busy = Signal()
        wid = Signal.like(axi.awid)
        wset = Signal.like(self.wb_cmd.payload.set)
        issued = Signal(range(B + 1))
        sent = Signal(range(B + 1))
        m.d.comb += self.wb_cmd.ready.eq(~busy)
        with m.If(self.wb_cmd.valid & ~busy):
            p = self.wb_cmd.payload
            m.d.sync += [
                busy.eq(1),
                wid.eq(p.id),
                wset.eq(p.set),
                issued.eq(0),
                sent.eq(0),
                axi.awvalid.eq(1),
                axi.awaddr.eq(p.line << ob),
                axi.awid.eq(p.id),
                self.wb_way.eq(p.way),
            ]
        with m.If(axi.awvalid & axi.awready):
            m.d.sync += axi.awvalid.eq(0)
        fire = axi.wvalid & axi.wready
        m.d.comb += [
            self.wb_en.eq(busy & (issued < B) & (~axi.wvalid | axi.wready)),
            self.wb_addr.eq(wset * B + issued) if B > 1 else self.wb_addr.eq(wset),
            axi.wdata.eq(self.wb_data),
            axi.wlast.eq(sent == B - 1),
        ]
        with m.If(self.wb_en):
            m.d.sync += [issued.eq(issued + 1), axi.wvalid.eq(1)]
        with m.Elif(fire):
            m.d.sync += axi.wvalid.eq(0)
        with m.If(fire):
            m.d.sync += sent.eq(sent + 1)
        done = busy & (sent == B) & ~axi.awvalid
        m.d.comb += [self.wb_done.eq(done), self.wb_done_id.eq(wid)]
        with m.If(done):
            m.d.sync += busy.eq(0)

        m.d.comb += [
            self.b_valid.eq(axi.bvalid),
            self.b_id.eq(axi.bid),
            self.b_err.eq(axi.bresp != AXI_RESP_OKAY),
        ]
        return m
