"""tessera.rtl.fabric: the top level (docs/fabric.md, docs/csr.md).

* :mod:`tessera.rtl.fabric.messages` -- tile <-> L2 slice packets over the NoC, line interleaving.
* :class:`tessera.rtl.fabric.slice_port.SlicePort` (``slice_port``) -- an L2 slice's NoC endpoint.
* :class:`tessera.rtl.fabric.csr.Csr` (``fabric_csr``) -- the AXI4-Lite host port and its registers.
* :class:`tessera.rtl.fabric.fabric.Fabric` (``fabric``) -- the mesh of tiles, slices and memory ports.
* :mod:`tessera.rtl.fabric.export` -- its hierarchical Verilog export.

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
    """:func:`tessera.rtl.fabric.export.fabric_verilog` (the fabric's hierarchical Verilog)."""
    from tessera.rtl.fabric.export import fabric_verilog as export

    return export(cfg, top, wrap)


BLOCKS: dict = {"fabric": _fabric, "slice_port": _slice_port, "fabric_csr": _csr}
EXPORTERS: dict = {"fabric": fabric_verilog}
