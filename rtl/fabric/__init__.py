"""rtl.fabric: the top level (docs/fabric.md, docs/csr.md).

* :mod:`rtl.fabric.messages` -- tile <-> L2 slice packets over the NoC, line interleaving.
* :class:`rtl.fabric.slice_port.SlicePort` (``slice_port``) -- an L2 slice's NoC endpoint.
* :class:`rtl.fabric.csr.Csr` (``fabric_csr``) -- the AXI4-Lite host port and its registers.
* :class:`rtl.fabric.fabric.Fabric` (``fabric``) -- the mesh of tiles, slices and memory ports.

Imports are lazy so that ``rtl.blocks`` loads without elaborating anything.
"""


def _fabric(cfg, pe_module=None):
    from rtl.fabric.fabric import Fabric

    return Fabric(cfg, pe_module=pe_module)


def _slice_port(cfg):
    from rtl.fabric.slice_port import SlicePort

    return SlicePort(cfg, 0)


def _csr(cfg):
    from rtl.fabric.csr import Csr

    return Csr(cfg)


def fabric_verilog(cfg, top: str) -> str:
    """The fabric with its tensor cores' PE written once (see rtl/tensor/export.py)."""
    from rtl.tensor.export import verilog_with_pe

    return verilog_with_pe(lambda pe: _fabric(cfg, pe), cfg.tensor, top)


BLOCKS: dict = {"fabric": _fabric, "slice_port": _slice_port, "fabric_csr": _csr}
EXPORTERS: dict = {"fabric": fabric_verilog}
