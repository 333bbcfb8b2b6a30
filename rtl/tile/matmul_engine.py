"""The compute tile's MATMUL path: scratchpad + accumulator + operand fetch + tensor core."""

from __future__ import annotations

from amaranth import Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.config import FabricConfig
from tessera.rtl.tensor.tensor_core import TensorCore
from tessera.rtl.tile.accumulator import Accumulator, acc_read_signature, acc_write_layout
from tessera.rtl.tile.fetch import OperandFetch
from tessera.rtl.tile.isa import matmul_desc_layout, scratchpad_write_layout
from tessera.rtl.tile.scratchpad import Scratchpad

__all__ = ["MatmulEngine"]


class MatmulEngine(wiring.Component):
    """Scratchpad, accumulator memory, operand fetch and tensor core, joined.

    Ports:

    * ``desc`` (in, :func:`tessera.rtl.tile.isa.matmul_desc_layout`): MATMULs from the sequencer.
    * ``done`` (out): one-cycle pulse per MATMUL whose last D row has been written.
    * ``error`` (out): the tensor core's error flag (a rejected op descriptor; only a bug can
      raise it, since the sequencer checks sizes and dtype); the tile maps it to ``fault``.
    * ``busy`` (out): a MATMUL accepted and not done, or the core busy.
    * ``sp_wr`` (in): the scratchpad's write port (DMA fills), passed through.
    * ``acc_dma_wr`` / ``acc_dma_rd``: the accumulator's DMA ports, passed through.
    * ``acc_vec_wr``, ``acc_vec_x_rd``, ``acc_vec_y_rd``: the accumulator's vector-engine ports,
      passed through; ``sp_vec_wr``: the vector engine's scratchpad writes, which share the
      scratchpad's write port with ``sp_wr`` (``sp_wr`` first: ``sp_vec_wr.ready`` is low while
      ``sp_wr`` writes).

    Scratchpad read port 0 fetches A, port 1 fetches B (a bank conflict between them halves the
    step rate; ``scratchpad_read_ports`` > 2 leaves the others unused). Timing: see
    :class:`OperandFetch` (one core step per cycle from different banks; the next MATMUL is
    accepted while the previous one computes) and :class:`tessera.rtl.tensor.tensor_core.TensorCore`.
    """

    def __init__(self, cfg: FabricConfig | None = None, pe_module: str | None = None):
        cfg = cfg or FabricConfig()
        if not isinstance(cfg, FabricConfig):
            raise ValueError("MatmulEngine cfg must be a FabricConfig")
        if cfg.tile.scratchpad_read_ports < 2:
            raise ValueError(f"TileConfig.scratchpad_read_ports = {cfg.tile.scratchpad_read_ports}:"
                             " the MATMUL path needs at least 2 (A and B)")
        self.cfg = cfg
        self.pe_module = pe_module
        super().__init__({
            "desc": In(stream.Signature(matmul_desc_layout(cfg))),
            "done": Out(1),
            "error": Out(1),
            "busy": Out(1),
            "sp_wr": In(stream.Signature(scratchpad_write_layout(cfg.tile))),
            "acc_dma_wr": In(stream.Signature(acc_write_layout(cfg))),
            "acc_dma_rd": In(acc_read_signature(cfg)),
            "acc_vec_wr": In(stream.Signature(acc_write_layout(cfg))),
            "acc_vec_x_rd": In(acc_read_signature(cfg)),
            "acc_vec_y_rd": In(acc_read_signature(cfg)),
            "sp_vec_wr": In(stream.Signature(scratchpad_write_layout(cfg.tile))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.scratchpad = sp = Scratchpad(cfg)
        m.submodules.accumulator = acc = Accumulator(cfg)
        m.submodules.fetch = fetch = OperandFetch(cfg)
        m.submodules.core = core = TensorCore(cfg.tensor, pe_module=self.pe_module)

        wiring.connect(m, wiring.flipped(self.desc), fetch.desc)
        self.share_scratchpad_write(m, sp, self.sp_wr, self.sp_vec_wr)
        wiring.connect(m, wiring.flipped(self.acc_dma_wr), acc.dma_wr)
        wiring.connect(m, wiring.flipped(self.acc_dma_rd), acc.dma_rd)
        wiring.connect(m, wiring.flipped(self.acc_vec_wr), acc.vec_wr)
        wiring.connect(m, wiring.flipped(self.acc_vec_x_rd), acc.vec_x_rd)
        wiring.connect(m, wiring.flipped(self.acc_vec_y_rd), acc.vec_y_rd)
        wiring.connect(m, fetch.rd_a, sp.rd0)
        wiring.connect(m, fetch.rd_b, sp.rd1)
        wiring.connect(m, fetch.acc_wr, acc.core_wr)
        wiring.connect(m, fetch.acc_rd, acc.core_rd)
        for name in ("op", "a", "b", "c"):
            wiring.connect(m, getattr(fetch, name), getattr(core, name))
        wiring.connect(m, core.d, fetch.d)
        m.d.comb += [
            self.done.eq(fetch.done),
            self.error.eq(core.error),
            self.busy.eq(fetch.busy | core.busy),
        ]
        return m

    @staticmethod
    def share_scratchpad_write(m, sp, dma, vec):
        """The scratchpad ``sp``'s one write port: ``dma`` when it is valid, else ``vec``."""
        m.d.comb += [
            sp.wr.valid.eq(dma.valid | vec.valid),
            sp.wr.payload.eq(Mux(dma.valid, dma.payload, vec.payload)),
            dma.ready.eq(sp.wr.ready),
            vec.ready.eq(sp.wr.ready & ~dma.valid),
        ]
