"""The vector engine's output stage: format conversion and local-memory writes (docs/vector.md)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from tessera.rtl.config import FabricConfig
from tessera.rtl.tile.accumulator import acc_write_layout
from tessera.rtl.tile.isa import LOCAL_ADDR_BITS, PITCH_BITS, VFmt, scratchpad_write_layout
from tessera.rtl.vector.lane import is_nan

__all__ = ["VectorWriter", "to_bf16", "to_int8"]


def to_bf16(x):
    """FP32 -> BF16 pattern: round to nearest even, NaN -> 0x7FC0 (combinational)."""
    rounded = (x + 0x7FFF + x[16])[16:32]
    return Mux(is_nan(x), 0x7FC0, rounded)


def to_int8(m: Module, x, name: str):
    """FP32 -> INT8: nearest integer (ties to even), saturated to -128..127, NaN -> 0 (combinational)."""
    sign, exp = x[31], x[23:31]
    sig = Cat(x[0:23], Const(1, 1))                    # 24 bits, value sig * 2^(exp - 150)
    shift = Signal(5, name=f"{name}_shift")
    m.d.comb += shift.eq(150 - exp)                    # 17..24 where it matters (exp 126..133)
    whole = Signal(9, name=f"{name}_whole")
    m.d.comb += whole.eq(sig >> shift)
    below = Signal(24, name=f"{name}_below")           # the bits shifted out, guard first
    m.d.comb += below.eq((Cat(Const(0, 24), sig) >> shift)[0:24])
    guard, sticky = below[23], below[0:23].any()
    mag = Signal(10, name=f"{name}_mag")
    m.d.comb += mag.eq(whole + (guard & (sticky | whole[0])))
    out = Signal(8, name=f"{name}_q")
    with m.If(is_nan(x) | (exp < 126)):
        m.d.comb += out.eq(0)
    with m.Elif(sign):
        m.d.comb += out.eq(Mux((exp >= 134) | (mag >= 128), 0x80, -mag))
    with m.Else():
        m.d.comb += out.eq(Mux((exp >= 134) | (mag >= 127), 127, mag))
    return out


class VectorWriter(wiring.Component):
    """Writes the engine's results to the accumulator memory or the scratchpad, in the layout of
    ``fmt`` (docs/isa.md, "VECTOR"), and signals the instruction's end.

    Inputs: ``start`` (pulse: a new instruction; ``fmt``, ``red``, ``d_addr``, ``d_pitch``, ``rows``
    and ``words`` (words per row) stay constant until ``done``), ``word`` (stream of one lane word:
    ``r``, ``mask``; words in row order) and ``row`` (stream of row results, with a reduction).
    Outputs: ``acc_wr``, ``sp_wr`` (byte-masked word writes; either may be refused), ``done``
    (pulse after the instruction's last write).

    A word is converted as it is taken (BF16 or INT8, per lane) into a holding register, then
    written: FP32, BF16 and INT8 rows in one write per word (a half or a quarter of a local word,
    byte-masked), transposed layouts one element per cycle (``lanes`` writes per word), row
    results one write each. Latency: 1 cycle from ``word`` to the write. Throughput: one word per
    cycle (transposed: one element per cycle). Back-pressure: ``word.ready`` / ``row.ready`` are
    high when the holding register is free or is being emptied. Errors: none (the sequencer has
    checked the regions).
    """

    def __init__(self, cfg: FabricConfig):
        self.cfg = cfg
        self.lanes = cfg.tile.word_bytes // 4
        lanes = self.lanes
        super().__init__({
            "start": In(1), "fmt": In(VFmt), "red": In(1), "d_addr": In(LOCAL_ADDR_BITS),
            "d_pitch": In(PITCH_BITS), "rows": In(12), "words": In(12),
            "word": In(stream.Signature(data.StructLayout({"r": 32 * lanes, "mask": lanes}))),
            "row": In(stream.Signature(32)),
            "acc_wr": Out(stream.Signature(acc_write_layout(cfg))),
            "sp_wr": Out(stream.Signature(scratchpad_write_layout(cfg.tile))),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W, lanes = self.cfg.tile.word_bytes, self.lanes
        wlog = ceil_log2(W)
        # ---- position of the next word (row i, word wi) and its addresses
        i, wi = Signal(12), Signal(12)
        row_base = Signal(LOCAL_ADDR_BITS + 12)     # d_addr + i * d_pitch
        col_base = Signal(LOCAL_ADDR_BITS + 24)     # d_addr + lanes * wi * d_pitch (transposed)
        red_addr = Signal(LOCAL_ADDR_BITS)          # d_addr + 4 * i (row results)
        transposed = (self.fmt == VFmt.BF16_T) | (self.fmt == VFmt.INT8_T)
        ebytes = Mux((self.fmt == VFmt.INT8) | (self.fmt == VFmt.INT8_T), 1, 2)

        # ---- the holding register: one write (or ``lanes`` element writes) pending
        h_valid, h_to_sp = Signal(), Signal()
        h_addr = Signal(LOCAL_ADDR_BITS + 24)       # byte address of the (first) write
        h_data, h_mask = Signal(8 * W), Signal(W)
        h_elems = Signal(32 * lanes)                # converted elements, transposed layouts
        h_lane, h_valids, h_t = Signal(range(lanes + 1)), Signal(lanes), Signal()
        h_last = Signal()                           # the instruction's final write
        word_addr = h_addr[wlog:]
        offset = h_addr[:wlog]
        e_data = (h_elems.word_select(h_lane, 32)[:16] << (offset << 3))[:8 * W]
        e_mask = (Mux(ebytes == 2, 0b11, 0b1) << offset)[:W]
        sel_data = Mux(h_t, e_data, h_data)
        sel_mask = Mux(h_t, Mux(h_valids.bit_select(h_lane, 1), e_mask, 0), h_mask)
        for port in (self.acc_wr, self.sp_wr):
            m.d.comb += [port.payload.addr.eq(word_addr), port.payload.data.eq(sel_data),
                         port.payload.mask.eq(sel_mask)]
        m.d.comb += [self.acc_wr.valid.eq(h_valid & ~h_to_sp), self.sp_wr.valid.eq(h_valid & h_to_sp)]
        wrote = (self.acc_wr.valid & self.acc_wr.ready) | (self.sp_wr.valid & self.sp_wr.ready)
        final_step = ~h_t | (h_lane == lanes - 1)
        emptying = wrote & final_step
        free = ~h_valid | emptying
        with m.If(wrote & ~final_step):
            m.d.sync += [h_lane.eq(h_lane + 1), h_addr.eq(h_addr + self.d_pitch)]
        with m.If(emptying):
            m.d.sync += h_valid.eq(0)
            m.d.comb += self.done.eq(h_last)

        m.d.comb += [self.word.ready.eq(free & ~self.red), self.row.ready.eq(free & self.red)]
        take_word = self.word.valid & self.word.ready
        take_row = self.row.valid & self.row.ready
        last_row = i == self.rows - 1
        with m.If(take_word):
            self._load_word(m, i, row_base, col_base, wi, h_addr, h_data, h_mask, h_elems, h_valids,
                            transposed, ebytes)
            m.d.sync += [h_valid.eq(1), h_to_sp.eq(self.fmt != VFmt.FP32), h_t.eq(transposed), h_lane.eq(0),
                         h_last.eq(last_row & (wi == self.words - 1))]
            with m.If(wi == self.words - 1):
                m.d.sync += [wi.eq(0), i.eq(i + 1), row_base.eq(row_base + self.d_pitch),
                             col_base.eq(self.d_addr)]
            with m.Else():
                m.d.sync += [wi.eq(wi + 1), col_base.eq(col_base + (self.d_pitch << ceil_log2(lanes)))]
        with m.If(take_row):
            m.d.sync += [
                h_valid.eq(1), h_to_sp.eq(0), h_t.eq(0), h_last.eq(last_row), h_addr.eq(red_addr),
                h_data.eq(self.row.payload << (red_addr[:wlog] << 3)),
                h_mask.eq(Const(0b1111, W) << red_addr[:wlog]),
                i.eq(i + 1), red_addr.eq(red_addr + 4),
            ]
        with m.If(self.start):
            m.d.sync += [i.eq(0), wi.eq(0), row_base.eq(self.d_addr), col_base.eq(self.d_addr),
                         red_addr.eq(self.d_addr)]
        return m

    def _load_word(self, m, i, row_base, col_base, wi, h_addr, h_data, h_mask, h_elems, h_valids,
                   transposed, ebytes):
        """Converts the word on ``word`` and loads the holding register (address, data, mask)."""
        W, lanes = self.cfg.tile.word_bytes, self.lanes
        r, mask = self.word.payload.r, self.word.payload.mask
        lane = [r[32 * l:32 * (l + 1)] for l in range(lanes)]
        bf = Cat(*[to_bf16(v) for v in lane])                               # 16 bits per lane
        q8 = Cat(*[to_int8(m, v, f"q{l}") for l, v in enumerate(lane)])      # 8 bits per lane
        m4 = Cat(*[mask[l].replicate(4) for l in range(lanes)])
        m2 = Cat(*[mask[l].replicate(2) for l in range(lanes)])
        with m.Switch(self.fmt):
            with m.Case(VFmt.BF16):
                off = Mux(wi[0], W // 2, 0)
                m.d.sync += [h_addr.eq(row_base + wi * (W // 2)), h_data.eq(bf << (off << 3)),
                             h_mask.eq(m2 << off)]
            with m.Case(VFmt.INT8):
                off = wi[:2] * (W // 4)
                m.d.sync += [h_addr.eq(row_base + wi * (W // 4)), h_data.eq(q8 << (off << 3)),
                             h_mask.eq(mask << off)]
            with m.Case(VFmt.BF16_T, VFmt.INT8_T):
                m.d.sync += [h_addr.eq(col_base + i * ebytes), h_valids.eq(mask)]
                m.d.sync += h_elems.eq(Mux(self.fmt == VFmt.BF16_T,
                                           Cat(*[Cat(to_bf16(v), Const(0, 16)) for v in lane]),
                                           Cat(*[Cat(q8[8 * l:8 * l + 8], Const(0, 24))
                                                 for l in range(lanes)])))
            with m.Default():
                m.d.sync += [h_addr.eq(row_base + wi * W), h_data.eq(r), h_mask.eq(m4)]
