"""tessera.rtl.noc: the 2D-mesh network-on-chip (layouts, Router, NetworkInterface, Mesh)."""


def _router(cfg):
    from tessera.rtl.noc.router import Router

    # The router of a middle node has every port; at a mesh edge the missing ports are omitted.
    return Router(cfg.noc, min(1, cfg.noc.width - 1), min(1, cfg.noc.height - 1))


def _ni(cfg):
    from tessera.rtl.noc.ni import NetworkInterface

    return NetworkInterface(cfg.noc, 0, 0)


def _mesh(cfg):
    from tessera.rtl.noc.mesh import Mesh

    return Mesh(cfg.noc)


BLOCKS: dict = {"noc_router": _router, "noc_ni": _ni, "noc_mesh": _mesh}
