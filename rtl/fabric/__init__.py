"""tessera.rtl.fabric: the top level (docs/fabric.md, docs/csr.md).

* :mod:`tessera.rtl.fabric.messages` -- tile <-> L2 slice packets over the NoC, line interleaving.
* :class:`tessera.rtl.fabric.slice_port.SlicePort` (``slice_port``) -- an L2 slice's NoC endpoint.
* :class:`tessera.rtl.fabric.csr.Csr` (``fabric_csr``) -- the AXI4-Lite host port and its registers.
* :class:`tessera.rtl.fabric.fabric.Fabric` (``fabric``) -- the mesh of tiles, slices and memory ports.

Imports are lazy so that ``tessera.rtl.blocks`` loads without elaborating anything.
"""


def _fabric(cfg, **modules):
    from tessera.rtl.fabric.fabric import Fabric

    return Fabric(cfg, **modules)


def _slice_port(cfg):
    from tessera.rtl.fabric.slice_port import SlicePort

    return SlicePort(cfg, 0)


def _csr(cfg):
    from tessera.rtl.fabric.csr import Csr

    return Csr(cfg)


def fabric_verilog(cfg, top: str, wrap=None) -> str:
    """The fabric with the compute tile, the L2 slice and the PE each written once, as modules
    ``<top>_tile``, ``<top>_l2`` and ``<top>_pe`` (see rtl/instance.py, rtl/tensor/export.py).
    ``wrap(fabric) -> component``: export a design around the fabric instead (the board's
    rtl/board/fabric_link.py)."""
    from tessera.rtl.cache.slice import CacheSlice
    from tessera.rtl.tensor.export import (
        mark_module,
        strip_zero_memory_init,
        verilog_optimized,
        verilog_with_pe,
    )
    from tessera.rtl.tile.tile import ComputeTile

    tile_mod, l2_mod = f"{top}_tile", f"{top}_l2"
    # hier_block: Verilator generates code per instance even for a module it does not inline; a
    # hier_block is verilated and compiled once (sim/tools/harness.py passes --hierarchical).
    def make_top(pe):
        fabric = _fabric(cfg, pe_module=pe, tile_module=tile_mod, l2_module=l2_mod)
        return fabric if wrap is None else wrap(fabric)

    text = verilog_with_pe(make_top, cfg.tensor, top, pragma="hier_block")
    tile = verilog_optimized(ComputeTile(cfg, None, pe_module=f"{top}_pe"), tile_mod)
    l2 = verilog_optimized(CacheSlice(cfg.cache), l2_mod)
    parts = [text] + [mark_module(strip_zero_memory_init(v), mod, "hier_block")
                      for v, mod in ((tile, tile_mod), (l2, l2_mod))]
    return "\n".join(parts)


BLOCKS: dict = {"fabric": _fabric, "slice_port": _slice_port, "fabric_csr": _csr}
EXPORTERS: dict = {"fabric": fabric_verilog}
