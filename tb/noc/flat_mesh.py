"""``FlatMesh``: the Mesh with every endpoint's streams packed into a few wide vectors.

A testbench then touches six signals per cycle instead of six per endpoint, which is what makes a
4 x 4 sweep from cocotb fast. Endpoint ``e`` occupies bit ``e`` of ``*_valid`` / ``*_ready`` and
bits ``[e * W, (e + 1) * W)`` of ``*_payload`` (``W`` = beat width). Pure wiring, no logic.

:func:`mesh_verilog` caches the exported Verilog by configuration and by the text of the NoC
sources, because elaborating a 4 x 4 mesh takes tens of seconds.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.noc.layouts import beat_layout
from tessera.rtl.noc.mesh import Mesh
from tessera.tools.verilog_cache import cached_verilog


class FlatMesh(wiring.Component):
    def __init__(self, cfg):
        self.cfg = cfg
        self.endpoints = e = cfg.nodes * cfg.local_ports
        self.beat_bits = w = beat_layout(cfg).size
        super().__init__({
            "tx_valid": In(e), "tx_ready": Out(e), "tx_payload": In(e * w),
            "rx_valid": Out(e), "rx_ready": In(e), "rx_payload": Out(e * w),
            "errors": Out(32), "link_flits": Out(32), "eject_flits": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mesh = mesh = Mesh(self.cfg)
        w = self.beat_bits
        txr, rxv, rxp = [], [], []
        for e in range(self.endpoints):
            tx, rx = mesh.tx[e], mesh.rx[e]
            m.d.comb += [
                tx.valid.eq(self.tx_valid[e]),
                tx.payload.eq(self.tx_payload[e * w:(e + 1) * w]),
                rx.ready.eq(self.rx_ready[e]),
            ]
            txr.append(tx.ready)
            rxv.append(rx.valid)
            rxp.append(rx.payload)
        m.d.comb += [
            self.tx_ready.eq(Cat(txr)), self.rx_valid.eq(Cat(rxv)), self.rx_payload.eq(Cat(rxp)),
            self.errors.eq(mesh.errors), self.link_flits.eq(mesh.link_flits),
            self.eject_flits.eq(mesh.eject_flits),
        ]
        return m


# Flattened and optimised: cocotb builds with --public-flat-rw, which keeps every wire of the
# design as a C++ variable; Amaranth's netlist has many intermediate wires, and without this the
# C++ of a 4 x 4 mesh is ~30 MB (hours of g++ on a loaded machine). This cuts it by ~2.5x.
YOSYS_SCRIPT = ["proc", "flatten", "opt -full", "opt_clean -purge", "memory_collect"]


def export_optimised(top, name: str) -> str:
    from tessera.rtl.export import to_rtlil
    from tessera.rtl.tensor.export import run_yosys

    text = to_rtlil(top, name, emit_src=False)
    return run_yosys(text, [*YOSYS_SCRIPT, "write_verilog -norename -noattr"])


def mesh_verilog(cfg, name: str) -> str:
    """Verilog text of ``FlatMesh(cfg)`` as module ``name`` (:mod:`tessera.tools.verilog_cache`)."""
    return cached_verilog(name, repr(cfg), lambda: export_optimised(FlatMesh(cfg), name),
                          extra_sources=[__file__])
