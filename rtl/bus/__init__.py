"""tessera.rtl.bus: AXI4 / AXI4-Lite port sets (:mod:`tessera.rtl.bus.axi`) and the N:1 AXI4 arbiter."""


def _arbiter(cfg):
    from tessera.rtl.bus.axi_arbiter import AxiArbiter
    from tessera.rtl.cache.axi_port import axi_params

    return AxiArbiter(max(2, cfg.tiles // cfg.mem_ports), **axi_params(cfg.cache))


BLOCKS: dict = {"axi_arbiter": _arbiter}
