"""The compute tile's scratchpad: banked SRAM holding the A and B tiles."""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from tessera.rtl.config import FabricConfig
from tessera.rtl.tile.isa import scratchpad_read_signature, scratchpad_write_layout

__all__ = ["Scratchpad"]


def hold_response(m, resp, grant, word, name: str):
    """The response side of a synchronous-read port that holds one response.

    ``grant`` (this cycle) accepts a request; the memory output ``word`` is valid in the next
    cycle only, so it is offered on ``resp`` then and kept in a register while ``resp.ready`` is
    low. Shared by the scratchpad's and the accumulator's read ports."""
    fresh = Signal(name=f"{name}_fresh")        # the memory output holds this port's word
    held = Signal(len(word), name=f"{name}_held")
    m.d.sync += fresh.eq(grant)
    with m.If(grant):
        m.d.sync += resp.valid.eq(1)
    with m.Elif(resp.ready):
        m.d.sync += resp.valid.eq(0)
    with m.If(fresh & ~resp.ready):
        m.d.sync += held.eq(word)
    m.d.comb += resp.payload.eq(Mux(fresh, word, held))


class Scratchpad(wiring.Component):
    """``scratchpad_bytes`` of SRAM in ``scratchpad_banks`` banks of ``word_bytes``-wide words.

    Ports (word addresses, i.e. ISA byte address / ``word_bytes``; layouts in :mod:`tessera.rtl.tile.isa`):

    * ``wr`` (in, stream of :func:`tessera.rtl.tile.isa.scratchpad_write_layout`): one word per cycle,
      byte-masked (``mask`` bit i enables byte i, bits 8i..8i+7 of ``data``). Always ready.
    * ``rd0`` .. ``rd{P-1}`` (:func:`tessera.rtl.tile.isa.scratchpad_read_signature`, P =
      ``scratchpad_read_ports``): ``req`` carries a word address, ``resp`` the word, in request order.

    Bank mapping: block-interleaved. Bank = the high bits of the word address (bank b holds the
    contiguous byte range ``[b * bank_bytes, (b + 1) * bank_bytes)``), row = the low bits. Each
    bank is one ``Memory`` with one write port and one synchronous read port (a simple dual-port
    block RAM), so DMA writes never conflict with operand reads. Two read ports conflict only when
    they address the same bank in the same cycle; then the lower-numbered port wins and the other's
    ``req.ready`` is low for that cycle. Placing the A and B double buffers in four different banks
    (the default: 4 banks) makes operand fetch conflict-free.

    Latency: a request accepted in cycle t is answered (``resp.valid``) in cycle t + 1.
    Throughput: one word per cycle per read port without bank conflicts; one word per cycle per
    bank in total. Back-pressure: each read port holds one response; while it is not taken,
    ``req.ready`` is low unless ``resp.ready`` is high (so a port streams at full rate while its
    consumer keeps ``resp.ready`` high). A read and a write of the same word in the same cycle
    return the old data (read-before-write). Errors: none (addresses wrap within the scratchpad).
    """

    def __init__(self, cfg: FabricConfig | None = None):
        cfg = cfg or FabricConfig()
        if not isinstance(cfg, FabricConfig):
            raise ValueError("Scratchpad cfg must be a FabricConfig")
        self.cfg = cfg
        tile = cfg.tile
        self.words = tile.scratchpad_words
        self.banks = tile.scratchpad_banks
        self.bank_words = self.words // self.banks
        self.ports = tile.scratchpad_read_ports
        members = {"wr": In(stream.Signature(scratchpad_write_layout(tile)))}
        for p in range(self.ports):
            members[f"rd{p}"] = In(scratchpad_read_signature(tile))
        super().__init__(members)

    def read_port(self, p: int):
        return getattr(self, f"rd{p}")

    def elaborate(self, platform):
        m = Module()
        tile = self.cfg.tile
        row_bits = (self.bank_words - 1).bit_length()

        def bank_of(addr):
            return addr[row_bits:] if self.banks > 1 else 0

        def one_hot(addr, name):
            """Bank select of a word address, one bit per bank (decoded once, lint-clean)."""
            hot = Signal(self.banks, name=name)
            m.d.comb += hot.eq(Const(1, self.banks) << bank_of(addr))
            return hot

        def row_of(addr):
            return addr[:row_bits]

        # ---- the banks ---------------------------------------------------------------------
        rdata = []
        rports = []
        wr_hot = one_hot(self.wr.payload.addr, "wr_bank")
        for b in range(self.banks):
            mem = Memory(shape=tile.word_bytes * 8, depth=self.bank_words, init=[])
            m.submodules[f"bank{b}"] = mem
            w = mem.write_port(granularity=8)
            r = mem.read_port(domain="sync")
            with m.If(self.wr.valid & wr_hot[b]):
                m.d.comb += w.en.eq(self.wr.payload.mask)
            m.d.comb += [w.addr.eq(row_of(self.wr.payload.addr)), w.data.eq(self.wr.payload.data)]
            m.d.comb += r.en.eq(0)
            rdata.append(r.data)
            rports.append(r)
        m.d.comb += self.wr.ready.eq(1)

        # ---- read ports: fixed-priority arbitration per bank, one held response per port ------
        claimed = [Signal(name=f"bank{b}_claimed_0") for b in range(self.banks)]   # by a lower port
        for p in range(self.ports):
            port = self.read_port(p)
            addr = port.req.payload
            slot_free = ~port.resp.valid | port.resp.ready
            bank = one_hot(addr, f"rd{p}_bank")
            want = port.req.valid & slot_free
            next_claimed = []
            grant = Signal(name=f"rd{p}_grant")
            for b in range(self.banks):
                mine = want & bank[b] & ~claimed[b]
                with m.If(mine):
                    m.d.comb += [grant.eq(1), rports[b].en.eq(1), rports[b].addr.eq(row_of(addr))]
                c = Signal(name=f"bank{b}_claimed_{p + 1}")
                m.d.comb += c.eq(claimed[b] | mine)
                next_claimed.append(c)
            claimed = next_claimed
            m.d.comb += port.req.ready.eq(grant)

            sel = Signal.like(bank, name=f"rd{p}_sel")
            word = Signal(tile.word_bytes * 8, name=f"rd{p}_word")
            for b in range(self.banks):
                with m.If(sel[b]):
                    m.d.comb += word.eq(rdata[b])
            with m.If(grant):
                m.d.sync += sel.eq(bank)
            hold_response(m, port.resp, grant, word, f"rd{p}")
        return m
