"""The vector engine of a compute tile (docs/vector.md): VECTOR instructions on local memory."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from tessera.rtl.config import FabricConfig
from tessera.rtl.tile.accumulator import acc_read_signature, acc_write_layout
from tessera.rtl.tile.isa import Act, Reduce, VOp, YMode, scratchpad_write_layout, vector_desc_layout
from tessera.rtl.vector.lane import VectorLane
from tessera.rtl.vector.reduce import PARTIALS, RowReducer
from tessera.rtl.vector.writer import VectorWriter

__all__ = ["VectorEngine"]

FIFO_DEPTH = 4      # words of read-ahead per operand stream


def _taps(m: Module, en, value, cycles: int, name: str, clear) -> list:
    """``value`` delayed by 0 .. ``cycles`` enabled cycles (a register chain; its taps), every
    register zeroed when ``clear`` is high."""
    taps = [value]
    for k in range(cycles):
        reg = Signal(len(value), name=f"{name}_t{k + 1}")
        with m.If(clear):
            m.d.sync += reg.eq(0)
        with m.Elif(en):
            m.d.sync += reg.eq(taps[-1])
        taps.append(reg)
    return taps


class VectorEngine(wiring.Component):
    """Runs VECTOR descriptors (docs/isa.md, "VECTOR") one at a time over ``lanes`` = W / 4 lanes.

    Ports: ``desc`` (in, :func:`tessera.rtl.tile.isa.vector_desc_layout`), checked by the
    sequencer; ``done`` (out, one pulse per finished instruction, after its last write);
    ``busy`` (out); ``error`` (out, a pulse: an instruction this engine cannot run, i.e. a special
    function (GELU, EXP, RECIP, RSQRT) on an engine built with ``sfu=False``; the instruction is
    dropped with a ``done`` pulse (so that no count stays outstanding), nothing is written, and
    the tile maps ``error`` to FAULT); ``x_rd``, ``y_rd`` (word read ports of the accumulator
    memory: x and the second operand); ``acc_wr`` (word writes to the accumulator memory);
    ``sp_wr`` (word writes to the scratchpad).

    Dataflow: two address generators read x and y words (independently, ``FIFO_DEPTH`` words
    ahead, so that two read ports on the same bank alternate); each cycle one x word (and its y
    word, or the row's y value for a column operand, or the immediate) enters the lanes
    (:class:`VectorLane`); their results go to the :class:`RowReducer` (``red``) or to the
    :class:`VectorWriter` (format conversion and writes).

    Latency: the lanes' latency (``binary_latency`` + 2, or + 1 + the special functions' with
    GELU, EXP, RECIP, RSQRT) plus about 4 cycles of reads and writes per instruction; a reduction
    adds the tree (docs/vector.md). Throughput: one word (``lanes`` elements) per cycle when the
    memories keep up (the transposed formats: one element per cycle). Back-pressure: every stage
    stops together (``en``) while the writer or the reducer cannot take a result; read ports may
    refuse requests at any time. Errors: none (the sequencer refuses malformed instructions).
    """

    def __init__(self, cfg: FabricConfig, sfu: bool = True, sfu_module: str | None = None):
        if not isinstance(cfg, FabricConfig):
            raise ValueError(f"VectorEngine: cfg must be a FabricConfig, not {type(cfg).__name__}")
        self.cfg, self.sfu, self.sfu_module = cfg, sfu, sfu_module
        self.lanes = cfg.tile.word_bytes // 4
        numeric = cfg.tensor.numeric
        self.fadd_latency, self.fmul_latency = numeric.fadd_latency, max(numeric.fmul_latency, 1)
        if PARTIALS % self.lanes:
            raise ValueError(f"VectorEngine: tile.word_bytes = {cfg.tile.word_bytes} gives {self.lanes}"
                             f" lanes; rowsum's {PARTIALS} partial sums allow at most {PARTIALS}"
                             " (word_bytes <= 64)")
        super().__init__({
            "desc": In(stream.Signature(vector_desc_layout(cfg))),
            "done": Out(1),
            "busy": Out(1),
            "error": Out(1),
            "x_rd": Out(acc_read_signature(cfg)),
            "y_rd": Out(acc_read_signature(cfg)),
            "acc_wr": Out(stream.Signature(acc_write_layout(cfg))),
            "sp_wr": Out(stream.Signature(scratchpad_write_layout(cfg.tile))),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        d = Signal(vector_desc_layout(self.cfg))
        active = Signal()
        words = Signal(12)              # words per row: ceil(cols / lanes)
        m.d.comb += [self.desc.ready.eq(~active), self.busy.eq(active)]
        taken = self.desc.valid & self.desc.ready
        sfu_act = (self.desc.payload.act != Act.NONE) & (self.desc.payload.act != Act.RELU)
        unsupported = taken & sfu_act if not self.sfu else 0
        m.d.comb += self.error.eq(unsupported)
        start = Signal(name="start")
        m.d.comb += start.eq(taken & ~unsupported)
        with m.If(start):
            p = self.desc.payload
            m.d.sync += [d.eq(p), active.eq(1),
                         words.eq((p.cols + (lanes - 1)) >> ceil_log2(lanes))]
        m.submodules.writer = writer = VectorWriter(self.cfg)
        with m.If(writer.done):
            m.d.sync += active.eq(0)
        m.d.comb += self.done.eq(writer.done | unsupported)     # a refused instruction completes too
        m.d.comb += [writer.start.eq(start), writer.fmt.eq(self.desc.payload.fmt),
                     writer.d_addr.eq(self.desc.payload.d_addr), writer.d_pitch.eq(self.desc.payload.d_pitch),
                     writer.rows.eq(self.desc.payload.rows),
                     writer.words.eq((self.desc.payload.cols + (lanes - 1)) >> ceil_log2(lanes)),
                     writer.red.eq(self.desc.payload.red != Reduce.NONE)]
        with m.If(~start):
            m.d.comb += [writer.fmt.eq(d.fmt), writer.d_addr.eq(d.d_addr), writer.d_pitch.eq(d.d_pitch),
                         writer.rows.eq(d.rows), writer.words.eq(words), writer.red.eq(d.red != Reduce.NONE)]
        wiring.connect(m, writer.acc_wr, wiring.flipped(self.acc_wr))
        wiring.connect(m, writer.sp_wr, wiring.flipped(self.sp_wr))

        uses_y = (d.op != VOp.PASS) & (d.ymode != YMode.IMM)
        p = self.desc.payload
        xq = self._reader(m, "x", self.x_rd, start, p.x_addr, d.x_addr, d, words, active, False)
        yq = self._reader(m, "y", self.y_rd, start, p.y[:24], d.y[:24], d, words, active & uses_y, True)
        self._datapath(m, d, words, start, xq, yq, uses_y, writer)
        return m

    def _reader(self, m, name, port, start, first, base, d, words, enable, is_y: bool):
        """An address generator and its response FIFO for operand ``name``: x and a REGION y read
        every word of every row (row starts ``pitch`` apart); a ROW y reads words 0 .. words-1 of
        its vector for every row; a COL y reads the word holding element i once per row."""
        W, wlog = self.cfg.tile.word_bytes, ceil_log2(self.cfg.tile.word_bytes)
        i, wi = Signal(12, name=f"{name}_i"), Signal(12, name=f"{name}_wi")
        row = Signal(24 + 12, name=f"{name}_row")       # byte address of row i's first word
        going = Signal(name=f"{name}_going")
        col = (d.ymode == YMode.COL) if is_y else 0
        rowv = (d.ymode == YMode.ROW) if is_y else 0
        addr = Mux(col, base + (i << 2), Mux(rowv, base, row) + (wi << wlog))
        m.d.comb += [port.req.valid.eq(going & enable), port.req.payload.eq(addr[wlog:])]
        with m.If(port.req.valid & port.req.ready):
            with m.If(col | (wi == words - 1)):
                m.d.sync += [wi.eq(0), i.eq(i + 1), row.eq(row + d.x_pitch)]
                with m.If(i == d.rows - 1):
                    m.d.sync += going.eq(0)
            with m.Else():
                m.d.sync += wi.eq(wi + 1)
        with m.If(start):
            m.d.sync += [i.eq(0), wi.eq(0), going.eq(1), row.eq(first)]
        fifo = SyncFIFOBuffered(width=8 * W, depth=FIFO_DEPTH)
        m.submodules[f"{name}_fifo"] = fifo
        m.d.comb += [fifo.w_data.eq(port.resp.payload), fifo.w_en.eq(port.resp.valid),
                     port.resp.ready.eq(fifo.w_rdy)]
        return fifo

    def _datapath(self, m, d, words, start, xq, yq, uses_y, writer):
        """The issue counter, the lanes, the meta-data delay line, the reducer and the writer's input."""
        lanes = self.lanes
        slots = PARTIALS // lanes
        i, wi = Signal(12, name="iss_i"), Signal(12, name="iss_wi")
        issuing = Signal(name="issuing")
        col_y = Signal(32, name="col_y")
        col = d.ymode == YMode.COL
        need_y = uses_y & (~col | (wi == 0))
        en = Signal(name="en")
        fire = Signal(name="fire")
        spaced = Signal(name="spaced")        # a sum's words far enough apart (RowReducer.min_gap)
        m.d.comb += fire.eq(en & issuing & xq.r_rdy & (~need_y | yq.r_rdy) & spaced)
        m.d.comb += [xq.r_en.eq(fire), yq.r_en.eq(fire & need_y)]
        with m.If(fire):
            with m.If(wi == words - 1):
                m.d.sync += [wi.eq(0), i.eq(i + 1)]
                with m.If(i == d.rows - 1):
                    m.d.sync += issuing.eq(0)
            with m.Else():
                m.d.sync += wi.eq(wi + 1)
        with m.If(start):
            m.d.sync += [i.eq(0), wi.eq(0), issuing.eq(1)]
        y_lane = yq.r_data.word_select((d.y[2:24] + i)[:max(1, ceil_log2(lanes))] if lanes > 1 else 0, 32)
        with m.If(fire & col & (wi == 0)):
            m.d.sync += col_y.eq(y_lane)
        y_col_now = Mux(wi == 0, y_lane, col_y)

        left = d.cols - (wi << ceil_log2(lanes))          # elements of the row from this word on
        mask = Cat(*[left > l for l in range(lanes)])
        sbits = max(1, ceil_log2(slots))
        meta = Cat(fire, mask, wi[:sbits] if slots > 1 else Const(0, 1), wi == 0, wi < slots, wi == words - 1)
        outs = []
        for l in range(lanes):
            lane = VectorLane(self.fadd_latency, self.fmul_latency, sfu=self.sfu, sfu_module=self.sfu_module)
            m.submodules[f"lane{l}"] = lane
            ysrc = Mux(d.ymode == YMode.IMM, d.y, Mux(col, y_col_now, yq.r_data[32 * l:32 * (l + 1)]))
            m.d.comb += [lane.x.eq(xq.r_data[32 * l:32 * (l + 1)]), lane.y.eq(ysrc), lane.en.eq(en),
                         lane.op.eq(d.op), lane.act.eq(d.act), lane.itof.eq(d.itof)]
            outs.append(lane.r)
        short, long = lane.latency(Act.NONE), lane.latency(Act.GELU) if self.sfu else lane.latency(Act.NONE)
        # Cleared at each start: a short instruction's elements went on down the line past its
        # tap, and a long instruction (a special function) would take them for its own.
        taps = _taps(m, en, meta, max(short, long), "meta", start)
        is_long = (d.act != Act.NONE) & (d.act != Act.RELU)
        tail = Signal(len(meta), name="meta_tail")
        m.d.comb += tail.eq(Mux(is_long, taps[long], taps[short]))
        t_valid, t_mask = tail[0], tail[1:1 + lanes]
        t_slot = tail[1 + lanes:1 + lanes + sbits]
        rest = tail[1 + lanes + sbits:]
        t_first, t_fresh, t_last = rest[0], rest[1], rest[2]

        m.submodules.reducer = red = RowReducer(lanes, self.fadd_latency)
        if red.min_gap > 1:
            gap = Signal(range(red.min_gap + 1), name="sum_gap")
            with m.If(fire):
                m.d.sync += gap.eq(1)
            with m.Elif(en & (gap < red.min_gap)):
                m.d.sync += gap.eq(gap + 1)
            m.d.comb += spaced.eq((d.red != Reduce.SUM) | (gap >= red.min_gap) | (gap == 0))
        else:
            m.d.comb += spaced.eq(1)
        reducing = d.red != Reduce.NONE
        m.d.comb += [red.valid.eq(t_valid & reducing), red.r.eq(Cat(*outs)), red.mask.eq(t_mask),
                     red.slot.eq(t_slot), red.first.eq(t_first), red.fresh.eq(t_fresh), red.last.eq(t_last),
                     red.words.eq(words), red.mode.eq(d.red), red.en.eq(en)]
        wiring.connect(m, red.out, writer.row)
        m.d.comb += [writer.word.valid.eq(t_valid & ~reducing), writer.word.payload.r.eq(Cat(*outs)),
                     writer.word.payload.mask.eq(t_mask)]
        m.d.comb += en.eq(~(t_valid & ~reducing & ~writer.word.ready) & ~red.stall)
