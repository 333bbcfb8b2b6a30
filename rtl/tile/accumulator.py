"""The compute tile's accumulator memory: D (and C) tiles, 32-bit elements, banked by word."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from tessera.rtl.config import FabricConfig
from tessera.rtl.tile.scratchpad import hold_response

__all__ = [
    "Accumulator", "acc_banks", "acc_write_layout", "acc_read_signature", "acc_core_write_layout",
    "acc_core_read_signature",
]


def acc_banks(cfg: FabricConfig) -> int:
    """Number of accumulator banks: a core row (4 * cols bytes) spans this many words."""
    return max(1, 4 * cfg.tensor.cols // cfg.tile.word_bytes)


def acc_write_layout(cfg: FabricConfig) -> data.StructLayout:
    """One byte-masked word write from the DMA: ``addr`` is a word address."""
    tile = cfg.tile
    return data.StructLayout({
        "addr": max(1, ceil_log2(tile.accumulator_words)),
        "data": tile.word_bytes * 8,
        "mask": tile.word_bytes,
    })


def acc_read_signature(cfg: FabricConfig) -> wiring.Signature:
    """The DMA's word-wide read port as its user sees it: ``req`` (word address) out, ``resp`` in."""
    tile = cfg.tile
    return wiring.Signature({
        "req": Out(stream.Signature(max(1, ceil_log2(tile.accumulator_words)))),
        "resp": In(stream.Signature(tile.word_bytes * 8)),
    })


def acc_core_write_layout(cfg: FabricConfig) -> data.StructLayout:
    """One core row write: byte ``addr`` (a multiple of W, or of 4*cols when 4*cols < W), ``cols``
    lanes of 32 bits (lane j at bits 32j), ``lanes`` (bit j: write lane j)."""
    C = cfg.tensor.cols
    return data.StructLayout({
        "addr": ceil_log2(cfg.tile.accumulator_bytes),
        "data": 32 * C,
        "lanes": C,
    })


def acc_core_read_signature(cfg: FabricConfig) -> wiring.Signature:
    """A core row read port as its user sees it: ``req`` (byte address) out, ``resp`` (row) in."""
    return wiring.Signature({
        "req": Out(stream.Signature(ceil_log2(cfg.tile.accumulator_bytes))),
        "resp": In(stream.Signature(32 * cfg.tensor.cols)),
    })


@dataclass(frozen=True)
class _Geometry:
    """The banking of an :class:`Accumulator` and its address arithmetic (Python-time constants)."""

    B: int                  # banks
    W: int                  # word bytes
    C: int                  # core lanes (tensor cols)
    wbits: int              # word bits
    wlog: int               # log2(W)
    blog: int               # log2(B)
    row_bits: int           # bits of a bank row address
    chunks: int             # core rows per word (B == 1 only)
    clog: int               # log2(chunks)
    lanes_per_word: int     # core lanes in one bank word

    @classmethod
    def of(cls, acc: Accumulator) -> _Geometry:
        """The geometry of ``acc`` (from its config, ``banks`` and ``bank_words``)."""
        tile, C = acc.cfg.tile, acc.cfg.tensor.cols
        B, W = acc.banks, tile.word_bytes
        chunks = max(1, W // (4 * C))
        return cls(B=B, W=W, C=C, wbits=W * 8, wlog=ceil_log2(W), blog=ceil_log2(B),
                   row_bits=max(1, ceil_log2(acc.bank_words)), chunks=chunks, clog=ceil_log2(chunks),
                   lanes_per_word=W // 4 if B > 1 else C)

    def word_bank(self, waddr: Value) -> Value:
        """The bank of word address ``waddr``."""
        return waddr[:self.blog] if self.B > 1 else Const(0, 1)

    def word_row(self, waddr: Value) -> Value:
        """The row (in its bank) of word address ``waddr``."""
        return waddr[self.blog:self.blog + self.row_bits]

    # ---- core row addressing: word w0 and (B == 1) chunk index
    def core_split(self, addr: Value) -> tuple[Value, Value]:
        """A core row's byte ``addr`` -> (its first word address, its chunk in that word)."""
        w0 = addr[self.wlog:]
        chunk = addr[self.wlog - self.clog:self.wlog] if self.chunks > 1 else Const(0, 1)
        return w0, chunk


class Accumulator(wiring.Component):
    """``accumulator_bytes`` of SRAM in B = max(1, 4*cols/W) banks of W-byte words.

    Word ``w`` is in bank ``w % B`` at row ``w // B`` (word-interleaved), so a core row of
    ``cols`` 32-bit lanes (4*cols bytes at a word-aligned byte address, or inside one word at a
    multiple of 4*cols when 4*cols < W) is one word of each bank (B > 1) or (part of) one word.
    Each bank is one ``Memory`` with one write port (byte granularity) and one synchronous read
    port: a simple dual-port block RAM.

    Ports (layouts: module functions):

    * ``core_wr`` (in, :func:`acc_core_write_layout`): one core row per cycle, lane-masked.
      Always ready (it has priority over ``dma_wr``).
    * ``core_rd`` (:func:`acc_core_read_signature`, flipped): byte address -> one core row.
      Priority over ``dma_rd``.
    * ``dma_wr`` (in, :func:`acc_write_layout`): one byte-masked word per cycle; ``ready`` is low
      in a cycle where ``core_wr`` writes the same bank.
    * ``dma_rd`` (:func:`acc_read_signature`, flipped): word address -> word; ``req.ready`` is
      low in a cycle where ``core_rd`` reads the same bank.
    * ``vec_wr``, ``vec_x_rd``, ``vec_y_rd``: the vector engine's word ports, like ``dma_wr`` /
      ``dma_rd`` but last in priority (``vec_x_rd`` before ``vec_y_rd``).

    Latency: a read request accepted in cycle t is answered (``resp.valid``) in cycle t + 1.
    Throughput: one access per cycle per port when they do not collide (a core row read and a
    core row write in the same cycle never collide: separate memory ports). Back-pressure: each
    read port holds one response; a new request is accepted only if the held one is being taken
    (``resp.ready``) or there is none. A read of a word written in the same cycle returns the old
    data. Addresses wrap; there are no errors.
    """

    def __init__(self, cfg: FabricConfig | None = None):
        cfg = cfg or FabricConfig()
        if not isinstance(cfg, FabricConfig):
            raise ValueError("Accumulator cfg must be a FabricConfig")
        tile, C = cfg.tile, cfg.tensor.cols
        self.cfg = cfg
        self.banks = acc_banks(cfg)
        if tile.accumulator_words < self.banks:
            raise ValueError(f"TileConfig.accumulator_bytes = {tile.accumulator_bytes} is smaller than one"
                             f" core row of {4 * C} bytes")
        self.bank_words = tile.accumulator_words // self.banks
        super().__init__({
            "core_wr": In(stream.Signature(acc_core_write_layout(cfg))),
            "core_rd": In(acc_core_read_signature(cfg)),
            "dma_wr": In(stream.Signature(acc_write_layout(cfg))),
            "dma_rd": In(acc_read_signature(cfg)),
            "vec_wr": In(stream.Signature(acc_write_layout(cfg))),
            "vec_x_rd": In(acc_read_signature(cfg)),
            "vec_y_rd": In(acc_read_signature(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        geo = _Geometry.of(self)

        mems = []
        for b in range(geo.B):
            mem = Memory(shape=geo.wbits, depth=self.bank_words, init=[])
            m.submodules[f"bank{b}"] = mem
            w = mem.write_port(granularity=8)
            r = mem.read_port(domain="sync")
            m.d.comb += r.en.eq(0)
            mems.append((w, r))

        self._writes(m, geo, mems)
        # ---- reads: core_rd first, then dma_rd on the banks core_rd leaves free
        core_rbank = self._core_read(m, geo, mems)
        taken = core_rbank
        for name in ("dma_rd", "vec_x_rd", "vec_y_rd"):
            taken = self._word_read(m, geo, mems, taken, name)
        return m

    # ---- writes: core_wr has priority; dma_wr waits if core_wr writes its bank
    def _writes(self, m: Module, geo: _Geometry, mems: list):
        """The write ports of the banks: a ``core_wr`` row (lane masks -> byte masks, its words
        rotated onto their banks) or else a ``dma_wr`` word. Combinational into the memories'
        write ports (written at the clock edge). Back-pressure: ``core_wr`` is always ready;
        ``dma_wr.ready`` is low when ``core_wr`` writes the bank of its word this cycle."""
        B, W, C, wbits, blog = geo.B, geo.W, geo.C, geo.wbits, geo.blog
        row_bits, chunks, lanes_per_word = geo.row_bits, geo.chunks, geo.lanes_per_word
        cw = self.core_wr.payload
        cw_w0, cw_chunk = geo.core_split(cw.addr)
        m.d.comb += self.core_wr.ready.eq(1)
        core_wbank = Signal(B, name="core_wr_bank")    # banks core_wr writes this cycle
        dw = self.dma_wr.payload
        dw_hot = Signal(B, name="dma_wr_bank")
        m.d.comb += dw_hot.eq(Const(1, B) << geo.word_bank(dw.addr))
        vw = self.vec_wr.payload
        vw_hot = Signal(B, name="vec_wr_bank")
        m.d.comb += vw_hot.eq(Const(1, B) << geo.word_bank(vw.addr))
        for b, (w, _) in enumerate(mems):
            if B > 1:
                g = Signal(blog, name=f"core_wr_g{b}")          # lane group of this bank
                m.d.comb += g.eq(Const(b, blog) - cw_w0[:blog])
                wdata = Signal(wbits, name=f"core_wr_data{b}")
                wlanes = Signal(lanes_per_word, name=f"core_wr_lanes{b}")
                with m.Switch(g):
                    for x in range(B):
                        with m.Case(x):
                            m.d.comb += [
                                wdata.eq(cw.data[x * wbits:(x + 1) * wbits]),
                                wlanes.eq(cw.lanes[x * lanes_per_word:(x + 1) * lanes_per_word]),
                            ]
                waddr = Signal(row_bits, name=f"core_wr_row{b}")
                m.d.comb += waddr.eq(geo.word_row(cw_w0 + g))
                bmask = Cat(*[wlanes[j].replicate(4) for j in range(lanes_per_word)])
            else:
                wdata = Signal(wbits, name="core_wr_data0")
                m.d.comb += wdata.eq(cw.data.replicate(chunks))
                waddr = Signal(row_bits, name="core_wr_row0")
                m.d.comb += waddr.eq(geo.word_row(cw_w0))
                lane_mask = Cat(*[cw.lanes[j].replicate(4) for j in range(C)])
                bmask = Signal(W, name="core_wr_mask0")
                m.d.comb += bmask.eq(lane_mask << (cw_chunk * (4 * C)) if chunks > 1 else lane_mask)
            hit = Signal(name=f"core_wr_hit{b}")
            m.d.comb += [hit.eq(self.core_wr.valid & bmask.any()), core_wbank[b].eq(hit)]
            with m.If(hit):
                m.d.comb += [w.addr.eq(waddr), w.data.eq(wdata), w.en.eq(bmask)]
            with m.Elif(self.dma_wr.valid & dw_hot[b]):
                m.d.comb += [w.addr.eq(geo.word_row(dw.addr)), w.data.eq(dw.data), w.en.eq(dw.mask)]
            with m.Elif(self.vec_wr.valid & vw_hot[b]):
                m.d.comb += [w.addr.eq(geo.word_row(vw.addr)), w.data.eq(vw.data), w.en.eq(vw.mask)]
        dma_wbank = Mux(self.dma_wr.valid, dw_hot, 0)
        m.d.comb += [self.dma_wr.ready.eq(~(core_wbank & dw_hot).any()),
                     self.vec_wr.ready.eq(~((core_wbank | dma_wbank) & vw_hot).any())]

    def _core_read(self, m: Module, geo: _Geometry, mems: list) -> Signal:
        """The ``core_rd`` port: reads one word of each bank (B > 1) or one word (B == 1) and, one
        cycle later, rotates the words into row order (or selects the row's chunk of the word).
        Latency 1 (response held by :func:`hold_response`); back-pressure: ``req.ready`` while no
        response is held or the held one is being taken. Returns the banks it reads this cycle."""
        B, C, blog, chunks, clog = geo.B, geo.C, geo.blog, geo.chunks, geo.clog
        rdata = [r.data for _, r in mems]
        crp = self.core_rd
        cr_w0, cr_chunk = geo.core_split(crp.req.payload)
        cr_free = ~crp.resp.valid | crp.resp.ready
        cr_grant = Signal(name="core_rd_grant")
        m.d.comb += [cr_grant.eq(crp.req.valid & cr_free), crp.req.ready.eq(cr_free)]
        core_rbank = Signal(B, name="core_rd_bank")
        for b, (_, r) in enumerate(mems):
            if B > 1:
                g = Signal(blog, name=f"core_rd_g{b}")
                m.d.comb += g.eq(Const(b, blog) - cr_w0[:blog])
                with m.If(cr_grant):
                    m.d.comb += [r.en.eq(1), r.addr.eq(geo.word_row(cr_w0 + g)), core_rbank[b].eq(1)]
            else:
                with m.If(cr_grant):
                    m.d.comb += [r.en.eq(1), r.addr.eq(geo.word_row(cr_w0)), core_rbank[b].eq(1)]
        cr_rot = Signal(max(1, blog), name="core_rd_rot")   # bank of the row's first word
        cr_sel = Signal(max(1, clog), name="core_rd_chunk")
        cr_word = Signal(32 * C, name="core_rd_word")
        with m.If(cr_grant):
            if B > 1:
                m.d.sync += cr_rot.eq(cr_w0[:blog])
            if chunks > 1:
                m.d.sync += cr_sel.eq(cr_chunk)
        if B > 1:
            with m.Switch(cr_rot):
                for rot in range(B):
                    with m.Case(rot):
                        m.d.comb += cr_word.eq(Cat(*[rdata[(rot + x) % B] for x in range(B)]))
        elif chunks > 1:
            m.d.comb += cr_word.eq(rdata[0].word_select(cr_sel, 32 * C))
        else:
            m.d.comb += cr_word.eq(rdata[0])
        hold_response(m, crp.resp, cr_grant, cr_word, "core_rd")
        return core_rbank

    def _word_read(self, m: Module, geo: _Geometry, mems: list, taken: Signal, name: str) -> Signal:
        """A word read port (``dma_rd``, ``vec_x_rd``, ``vec_y_rd``): reads the bank of its word unless
        a port before it reads that bank this cycle (``taken``), and selects that bank's output one
        cycle later. Latency 1 (response held by :func:`hold_response`); back-pressure:
        ``req.ready`` is the grant, high only with ``req.valid``, no held response left untaken and
        the bank free. Returns ``taken`` with this port's bank added."""
        B = geo.B
        rdata = [r.data for _, r in mems]
        drp = getattr(self, name)
        dr_hot = Signal(B, name=f"{name}_bank")
        m.d.comb += dr_hot.eq(Const(1, B) << geo.word_bank(drp.req.payload))
        dr_free = ~drp.resp.valid | drp.resp.ready
        dr_grant = Signal(name=f"{name}_grant")
        m.d.comb += [
            dr_grant.eq(drp.req.valid & dr_free & ~(taken & dr_hot).any()),
            drp.req.ready.eq(dr_grant),
        ]
        for b, (_, r) in enumerate(mems):
            with m.If(dr_grant & dr_hot[b]):
                m.d.comb += [r.en.eq(1), r.addr.eq(geo.word_row(drp.req.payload))]
        dr_sel = Signal(max(1, geo.blog), name=f"{name}_sel")
        dr_word = Signal(geo.wbits, name=f"{name}_word")
        if B > 1:
            with m.If(dr_grant):
                m.d.sync += dr_sel.eq(geo.word_bank(drp.req.payload))
        if B > 1:
            with m.Switch(dr_sel):
                for b in range(B):
                    with m.Case(b):
                        m.d.comb += dr_word.eq(rdata[b])
        else:
            m.d.comb += dr_word.eq(rdata[0])
        hold_response(m, drp.resp, dr_grant, dr_word, name)
        return taken | Mux(dr_grant, dr_hot, 0)
