"""``AxiBram``: on-chip block RAM behind an AXI4 slave port (for the fabric) and a 32-bit AXI4-Lite
slave port (for the host), the board's stand-in for DRAM.

One memory of ``memory_bytes`` in words of ``data_bytes`` (the fabric's memory port width), with
one write port (byte enables) and one synchronous read port: Yosys maps it to DP16KD blocks in
simple dual-port mode (64 KiB at 8-byte words = 32 DP16KD).

AXI4 slave ``s_axi_*`` (the fabric's ``m_axi``):

* writes: AW, then one W beat per cycle into memory (``wstrb`` honoured), then B. The next AW is
  taken once B is accepted. INCR bursts; a burst that touches a word at or beyond
  ``memory_bytes`` writes nothing and answers DECERR.
* reads: AR, then one R beat per cycle while ``rready`` holds; the read port's output is held
  under back-pressure (its enable drops), so there is no skid buffer. The next AR is taken in the
  cycle the previous burst's last beat is issued, so back-to-back bursts do not lose a cycle. An
  out-of-range burst returns its beats with DECERR (data 0).

Host slave ``h_axil_*`` (32-bit address and data): byte address ``HOST_MEM_BASE + a`` reaches
byte ``a`` of the memory; any other address (bit 31 clear or ``a`` beyond the memory) answers
DECERR. The host shares the ports with the fabric and waits while a burst is in progress (the
fabric's bursts win; a host that accesses memory while the fabric streams may wait for a gap).
Host latency: a write 2 cycles, a read 3 cycles, one at a time.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In

from tessera.rtl.bus.axi import (
    AXI_RESP_DECERR,
    AXI_RESP_OKAY,
    AXI4LiteSignature,
    AXI4Signature,
)

__all__ = ["AxiBram", "HOST_MEM_BASE"]

HOST_MEM_BASE = 0x8000_0000


class AxiBram(wiring.Component):
    def __init__(self, *, data_bytes: int, addr_bits: int, id_bits: int, memory_bytes: int = 64 * 1024):
        if data_bytes not in (4, 8, 16, 32, 64):
            raise ValueError(f"AxiBram.data_bytes = {data_bytes!r}; allowed: 4, 8, 16, 32, 64")
        if memory_bytes < data_bytes or memory_bytes & (memory_bytes - 1) or memory_bytes > 1 << 24:
            raise ValueError(f"AxiBram.memory_bytes = {memory_bytes!r}; allowed: a power of two from"
                             f" data_bytes ({data_bytes}) to 16 MiB")
        if not 1 <= addr_bits <= 32:
            raise ValueError(f"AxiBram.addr_bits = {addr_bits!r}; allowed: 1..32")
        self.data_bytes, self.addr_bits, self.id_bits = data_bytes, addr_bits, id_bits
        self.memory_bytes = memory_bytes
        self.depth = memory_bytes // data_bytes
        self._shift = (data_bytes - 1).bit_length()              # byte address -> word index
        self._word_bits = max(1, (self.depth - 1).bit_length())
        self._lane_bits = max(0, self._shift - 2)                # 32-bit lanes in a word
        super().__init__({
            "s_axi": In(AXI4Signature(addr_bits=addr_bits, data_bits=8 * data_bytes, id_bits=id_bits)),
            "h_axil": In(AXI4LiteSignature(addr_bits=32, data_bits=32)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=unsigned(8 * self.data_bytes), depth=self.depth, init=[])
        wp = mem.write_port(granularity=8)
        rp = mem.read_port(domain="sync")
        axi, host = self.s_axi, self.h_axil
        # The host takes the write / read port this cycle (the AXI side then holds off AW / AR).
        # Keep the host after the AXI side: its ``rp.addr`` assignment overrides the AXI default.
        host_w_go = Signal()
        host_r_go = Signal()
        w_active, b_valid = self._axi_write(m, axi, wp, host_w_go)
        r_left, r_valid = self._axi_read(m, axi, rp, host_r_go)
        self._host_write(m, host, wp, host_w_go, w_active, b_valid)
        self._host_read(m, host, axi, rp, host_r_go, r_left, r_valid)
        return m

    def _in_range(self, byte_addr, beats):
        """The burst's last byte is inside the memory (``beats`` = AxLEN + 1)."""
        last = (byte_addr >> self._shift) + beats - 1
        return last < self.depth

    def _host_decode(self, addr):
        """(in the memory, word index, 32-bit lane in the word) of a host byte address."""
        shift = self._shift
        off = addr[:31]
        lane = off[2:shift] if self._lane_bits else Const(0, 1)
        return addr[31] & (off < self.memory_bytes), off[shift:shift + self._word_bits], lane

    def _axi_write(self, m, axi, wp, host_w_go):
        """AXI4 write: AW -> W beats -> B. Returns ``(w_active, b_valid)``, the registers that keep
        the write port (and the next AW) away from the host.

        AW is taken (``awready``) when no burst or B is pending and the host is not writing this
        cycle. Each W beat is written into memory in the cycle it is accepted (``wready`` while the
        burst is active, so W is never back-pressured within a burst); an out-of-range burst
        writes nothing. B is valid the cycle after the last beat and holds until ``bready``.
        """
        w_active = Signal()
        w_addr = Signal(self._word_bits)
        w_ok = Signal()
        b_valid = Signal()
        b_id = Signal(self.id_bits)
        b_resp = Signal(2)
        m.d.comb += [
            axi.awready.eq(~w_active & ~b_valid & ~host_w_go),
            axi.wready.eq(w_active),
            axi.bvalid.eq(b_valid),
            axi.bid.eq(b_id),
            axi.bresp.eq(b_resp),
        ]
        with m.If(axi.awvalid & axi.awready):
            m.d.sync += [
                w_active.eq(1),
                w_addr.eq(axi.awaddr >> self._shift),
                w_ok.eq(self._in_range(axi.awaddr, axi.awlen + 1)),
                b_id.eq(axi.awid),
            ]
        with m.If(axi.wvalid & axi.wready):
            m.d.sync += w_addr.eq(w_addr + 1)
            m.d.comb += [wp.addr.eq(w_addr), wp.data.eq(axi.wdata),
                         wp.en.eq(Mux(w_ok, axi.wstrb, 0))]
            with m.If(axi.wlast):
                m.d.sync += [w_active.eq(0), b_valid.eq(1),
                             b_resp.eq(Mux(w_ok, AXI_RESP_OKAY, AXI_RESP_DECERR))]
        with m.If(axi.bvalid & axi.bready):
            m.d.sync += b_valid.eq(0)
        return w_active, b_valid

    def _axi_read(self, m, axi, rp, host_r_go):
        """AXI4 read: AR -> R beats, read port held under back-pressure. Returns ``(r_left, r_valid)``.

        A beat is *issued* (read port enabled at its address) when R is empty or being taken; its
        data, id and response appear in R the next cycle (latency 1 from issue). Under
        back-pressure (``rvalid`` and not ``rready``) the read port's enable drops, so R holds
        without a skid buffer. The next burst's AR is taken in the cycle the previous burst's last
        beat is issued (the beat takes the old id and response); AR waits while the host reads.
        """
        r_left = Signal(9)  # beats still to issue
        r_addr = Signal(self._word_bits)
        r_ok = Signal()
        r_id = Signal(self.id_bits)
        r_valid = Signal()
        r_last = Signal()
        r_beat_ok = Signal()
        r_beat_id = Signal(self.id_bits)
        advance = ~r_valid | axi.rready
        issue = advance & (r_left != 0)
        m.d.comb += [
            axi.arready.eq(((r_left == 0) | (issue & (r_left == 1))) & ~host_r_go),
            axi.rvalid.eq(r_valid),
            axi.rlast.eq(r_last),
            axi.rresp.eq(Mux(r_beat_ok, AXI_RESP_OKAY, AXI_RESP_DECERR)),
            axi.rid.eq(r_beat_id),
            axi.rdata.eq(Mux(r_beat_ok, rp.data, 0)),
            rp.addr.eq(r_addr),
            rp.en.eq(advance | host_r_go),
        ]
        with m.If(advance):
            m.d.sync += r_valid.eq(issue)
            with m.If(issue):
                m.d.sync += [r_addr.eq(r_addr + 1), r_left.eq(r_left - 1), r_last.eq(r_left == 1),
                             r_beat_ok.eq(r_ok), r_beat_id.eq(r_id)]
        with m.If(axi.arvalid & axi.arready):
            m.d.sync += [
                r_left.eq(axi.arlen + 1),
                r_addr.eq(axi.araddr >> self._shift),
                r_ok.eq(self._in_range(axi.araddr, axi.arlen + 1)),
                r_id.eq(axi.arid),
            ]
        return r_left, r_valid

    def _host_write(self, m, host, wp, host_w_go, w_active, b_valid):
        """Host write: AW and W (in either order) -> one 32-bit lane written -> B.

        ``host_w_go`` rises once both AW and W are held and no AXI write burst or B holds the
        write port; the lane is written in that cycle (nothing if the address is outside the
        memory: DECERR) and B is valid the next cycle, until ``bready``. A new AW / W is taken only
        after B is accepted. Latency 2 cycles from AW and W with the port free.
        """
        h_aw = Signal(32)
        h_aw_seen = Signal()
        h_w_seen = Signal()
        h_wdata = Signal(32)
        h_bvalid = Signal()
        h_bresp = Signal(2)
        m.d.comb += [
            host.awready.eq(~h_aw_seen & ~h_bvalid),
            host.wready.eq(~h_w_seen & ~h_bvalid),
            host.bvalid.eq(h_bvalid),
            host.bresp.eq(h_bresp),
        ]
        with m.If(host.awvalid & host.awready):
            m.d.sync += [h_aw.eq(host.awaddr), h_aw_seen.eq(1)]
        with m.If(host.wvalid & host.wready):
            m.d.sync += [h_wdata.eq(host.wdata), h_w_seen.eq(1)]

        hw_ok, hw_word, hw_lane = self._host_decode(h_aw)
        # The write port is free when no AXI write burst holds it (and no AW is taken this cycle).
        m.d.comb += host_w_go.eq(h_aw_seen & h_w_seen & ~w_active & ~b_valid)
        with m.If(host_w_go):
            with m.If(hw_ok):
                m.d.comb += [wp.addr.eq(hw_word), wp.data.eq(h_wdata.replicate(self.data_bytes // 4)),
                             wp.en.eq(Const(0xF, self.data_bytes) << (hw_lane * 4))]
            m.d.sync += [h_aw_seen.eq(0), h_w_seen.eq(0), h_bvalid.eq(1),
                         h_bresp.eq(Mux(hw_ok, AXI_RESP_OKAY, AXI_RESP_DECERR))]
        with m.If(host.bvalid & host.bready):
            m.d.sync += h_bvalid.eq(0)

    def _host_read(self, m, host, axi, rp, host_r_go, r_left, r_valid):
        """Host read: AR -> read port -> lane selected into R.

        ``host_r_go`` rises when AR is held and the AXI read side leaves the read port free (no
        beat to issue or held in R, no AR waiting); the port reads the word that cycle, the lane
        is registered from its output the next, and R is valid the cycle after, until ``rready``
        (data 0 and DECERR outside the memory). The next AR is taken after R is accepted.
        Latency 3 cycles from AR with the port free.
        """
        lane_bits = self._lane_bits
        h_ar = Signal(32)
        h_ar_seen = Signal()
        h_r_wait = Signal()  # read port output is the host's word this cycle
        h_rvalid = Signal()
        h_rdata = Signal(32)
        h_rresp = Signal(2)
        hr_ok, hr_word, hr_lane = self._host_decode(h_ar)
        hr_lane_q = Signal(max(1, lane_bits))
        hr_ok_q = Signal()
        m.d.comb += [
            host.arready.eq(~h_ar_seen & ~h_rvalid & ~h_r_wait),
            host.rvalid.eq(h_rvalid),
            host.rdata.eq(h_rdata),
            host.rresp.eq(h_rresp),
        ]
        with m.If(host.arvalid & host.arready):
            m.d.sync += [h_ar.eq(host.araddr), h_ar_seen.eq(1)]
        # The read port is free when no burst is being issued or held in R, and no AR is pending.
        m.d.comb += host_r_go.eq(h_ar_seen & (r_left == 0) & ~r_valid & ~axi.arvalid)
        with m.If(host_r_go):
            m.d.comb += rp.addr.eq(hr_word)
            m.d.sync += [h_ar_seen.eq(0), h_r_wait.eq(1), hr_lane_q.eq(hr_lane), hr_ok_q.eq(hr_ok)]
        with m.If(h_r_wait):
            word = rp.data.word_select(hr_lane_q, 32) if lane_bits else rp.data[:32]
            m.d.sync += [h_r_wait.eq(0), h_rvalid.eq(1), h_rdata.eq(Mux(hr_ok_q, word, 0)),
                         h_rresp.eq(Mux(hr_ok_q, AXI_RESP_OKAY, AXI_RESP_DECERR))]
        with m.If(host.rvalid & host.rready):
            m.d.sync += h_rvalid.eq(0)
