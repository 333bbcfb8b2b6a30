"""``ComputeTile``: sequencer + tensor DMA + matmul engine (scratchpad, accumulators, fetch, core) +
vector engine."""

from __future__ import annotations

from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.config import FabricConfig
from tessera.rtl.fabric.csr_map import TILE_COUNTERS
from tessera.rtl.noc.layouts import beat_layout
from tessera.rtl.tile.dma import TensorDma
from tessera.rtl.tile.isa import INSTRUCTION, status_layout
from tessera.rtl.tile.matmul_engine import MatmulEngine
from tessera.rtl.tile.sequencer import Sequencer
from tessera.rtl.vector.engine import VectorEngine

__all__ = ["ComputeTile"]

# Per-tile event counters (32-bit, wrapping), readable through the fabric's CSRs (docs/csr.md).


class ComputeTile(wiring.Component):
    """One compute tile of the fabric at mesh node ``node`` (docs/fabric.md).

    Ports:
      ``cmd`` (in, stream of 128-bit instructions) -- the tile's command queue (docs/isa.md);
      ``clear`` (in, pulse) -- back to IDLE, SYNC count and DMA LOAD sequence number to 0;
      ``status`` (out) -- state, error code, pc.
      ``tx`` / ``rx`` -- packets to and from NoC endpoint port 0 of this node
      (rtl/fabric/messages.py).
      ``sync_count`` (out, 8) / ``sync_counts`` (in, 8 per tile) -- the SYNC barrier wires.
      ``node_id`` (in; only with ``node=None``) -- this tile's node index.
      ``busy_cycles``, ``loads``, ``stores``, ``matmuls`` (out, 32 bits each, wrapping) -- cycles
      the tensor core was busy and LOADs / STOREs / MATMULs completed since reset.

    The sequencer issues LOAD / STORE to the tensor DMA, MATMUL to the matmul engine and VECTOR
    to the vector engine (docs/vector.md), which reads and writes the accumulator memory and
    writes the scratchpad through ports of its own (last in priority); they run concurrently
    (the program orders them with BARRIER, docs/isa.md). An error response
    from memory, or the tensor core rejecting an operation, stops the tile with FAULT. Latency
    and throughput are those of the parts: 3 cycles per instruction issued, one READ request per
    cycle from the DMA, one MAC per PE per cycle in the core.
    """

    def __init__(self, cfg: FabricConfig, node: int | None, pe_module: str | None = None,
                 sfu_module: str | None = None):
        if not isinstance(cfg, FabricConfig):
            raise ValueError(f"ComputeTile: cfg must be a FabricConfig, not {type(cfg).__name__}")
        if node is not None and not 0 <= node < cfg.tiles:
            raise ValueError(f"ComputeTile node = {node} is not a tile of the mesh (0..{cfg.tiles - 1})")
        self.cfg, self.node, self.pe_module, self.sfu_module = cfg, node, pe_module, sfu_module
        members = {
            "cmd": In(stream.Signature(INSTRUCTION)),
            "clear": In(1),
            "status": Out(status_layout()),
            "tx": Out(stream.Signature(beat_layout(cfg.noc))),
            "rx": In(stream.Signature(beat_layout(cfg.noc))),
            "sync_count": Out(8),
            "sync_counts": In(8 * cfg.tiles),
        }
        members.update({name: Out(32) for name in TILE_COUNTERS})
        if node is None:  # the node index as an input: every tile of a fabric is the same module
            members["node_id"] = In(max(1, (cfg.tiles - 1).bit_length()))
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        m.submodules.seq = seq = Sequencer(cfg)
        # ``clear`` also resets the DMA: its LOAD sequence number (the completion slot that pairs
        # a SEND with its RECVs) restarts at 0 on every tile of a new program. Clear a tile only
        # while no data is in flight to it (the host clears tiles between programs).
        dma = TensorDma(cfg, self.node)
        m.submodules.dma = ResetInserter(self.clear)(dma)
        if self.node is None:
            m.d.comb += dma.node_id.eq(self.node_id)
        m.submodules.engine = eng = MatmulEngine(cfg, pe_module=self.pe_module)
        # Special functions only with TileConfig.sfu (off in the presets: docs/vector.md, "State");
        # without them a VECTOR with GELU, EXP, RECIP or RSQRT stops the tile with FAULT.
        m.submodules.vector = vec = VectorEngine(cfg, sfu=cfg.tile.sfu, sfu_module=self.sfu_module)

        wiring.connect(m, wiring.flipped(self.cmd), seq.cmd)
        m.d.comb += [
            seq.clear.eq(self.clear),
            self.status.eq(seq.status),
            self.sync_count.eq(seq.sync_count),
            seq.sync_counts.eq(self.sync_counts),
            seq.load_done.eq(dma.load_done),
            seq.store_done.eq(dma.store_done),
            seq.matmul_done.eq(eng.done),
            seq.vector_done.eq(vec.done),
            seq.fault.eq(dma.fault | eng.error | vec.error),
        ]
        wiring.connect(m, seq.load, dma.load)
        wiring.connect(m, seq.store, dma.store)
        wiring.connect(m, seq.matmul, eng.desc)
        wiring.connect(m, seq.vector, vec.desc)
        wiring.connect(m, vec.x_rd, eng.acc_vec_x_rd)
        wiring.connect(m, vec.y_rd, eng.acc_vec_y_rd)
        wiring.connect(m, vec.acc_wr, eng.acc_vec_wr)
        wiring.connect(m, vec.sp_wr, eng.sp_vec_wr)
        wiring.connect(m, dma.sp_wr, eng.sp_wr)
        wiring.connect(m, dma.acc_wr, eng.acc_dma_wr)
        wiring.connect(m, dma.acc_rd, eng.acc_dma_rd)
        wiring.connect(m, dma.tx, wiring.flipped(self.tx))
        wiring.connect(m, wiring.flipped(self.rx), dma.rx)

        for name, event in (("busy_cycles", eng.busy), ("loads", dma.load_done),
                            ("stores", dma.store_done), ("matmuls", eng.done)):
            count = Signal(32, name=f"count_{name}")
            with m.If(event):
                m.d.sync += count.eq(count + 1)
            m.d.comb += getattr(self, name).eq(count)
        return m
