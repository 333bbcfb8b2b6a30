"""The fabric's hierarchical Verilog export: each distinct module converted once, in parallel.

Amaranth's Verilog backend writes a copy of every sub-component per instance. The fabric is
exported instead as its top module plus one module each for the compute tile (instantiated once
per node, with a ``node_id`` port), the L2 slice (once per node), the processing element (rows x
cols times per tile), the NoC mesh (once) and each of its routers (the routers differ by position:
their ports and routing constants, so each is a module of its own), see rtl/instance.py. Each
module goes through Yosys ``proc; flatten;
opt -purge`` (:func:`tessera.rtl.tensor.export.verilog_optimized`).

The modules are independent, so about half of them (by a rough cost estimate) are converted in a
second Python process (``python -m tessera.rtl.fabric.export``, the configuration and the module
list on its standard input) while this one converts the top and the rest: on two cores that
about halves the wall time. Converting each router on its own is also cheaper than converting
the mesh with its routers inline (Amaranth's conversion grows faster than the design).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile

__all__ = ["fabric_verilog", "module_verilog", "module_specs"]


def module_specs(cfg, top: str) -> list[tuple]:
    """The modules below the top, each ``(kind, *position)``: the PE, the tile, the L2 slice, the
    mesh, the mesh's routers ``("router", x, y)``, and with ``TileConfig.sfu`` the vector lanes'
    special-function unit ``("sfu",)``."""
    noc = cfg.noc
    return [("pe",), ("tile",), ("l2",), ("mesh",)] + [("sfu",)] * cfg.tile.sfu + [
        ("router", x, y) for y in range(noc.height) for x in range(noc.width)]


def module_name(top: str, spec) -> str:
    return "_".join([top, *map(str, spec)])


def _weight(cfg, spec) -> float:
    """Rough conversion cost of a module (seconds on ``default``), to share the work out."""
    from tessera.rtl.noc.router import router_ports

    if spec[0] == "router":
        return 0.5 * len(router_ports(cfg.noc, spec[1], spec[2]))
    return {"pe": 2.4, "tile": 7.0, "l2": 5.0, "sfu": 4.0,
            "mesh": 0.3 * cfg.noc.nodes * cfg.noc.local_ports}[spec[0]]


def module_verilog(cfg, top: str, spec) -> str:
    """The Verilog of one module of :func:`module_specs` (named by :func:`module_name`)."""
    from tessera.rtl.cache.slice import CacheSlice
    from tessera.rtl.noc.mesh import Mesh
    from tessera.rtl.noc.router import Router
    from tessera.rtl.tensor.export import mark_module, strip_zero_memory_init, verilog_optimized
    from tessera.rtl.tensor.pe import ProcessingElement
    from tessera.rtl.tile.tile import ComputeTile
    from tessera.rtl.vector.sfu import SpecialFunctions

    kind, name = spec[0], module_name(top, spec)
    if kind == "pe":
        pe = ProcessingElement(cfg.tensor.numeric, cfg.tensor.interleave)
        return mark_module(verilog_optimized(pe, name), name, "hier_block")
    if kind == "sfu":
        numeric = cfg.tensor.numeric
        sfu = SpecialFunctions(numeric.fadd_latency, max(numeric.fmul_latency, 1))
        return mark_module(verilog_optimized(sfu, name), name, "hier_block")
    if kind == "mesh":
        return verilog_optimized(Mesh(cfg.noc, router_module=module_name(top, ("router",))), name)
    if kind == "router":
        return verilog_optimized(Router(cfg.noc, spec[1], spec[2]), name)
    if kind not in ("tile", "l2"):
        raise ValueError(f"module kind {kind!r}; allowed: pe, tile, l2, mesh, router, sfu")
    if kind == "tile":
        block = ComputeTile(cfg, None, pe_module=module_name(top, ("pe",)),
                            sfu_module=module_name(top, ("sfu",)) if cfg.tile.sfu else None)
    else:
        block = CacheSlice(cfg.cache)
    # hier_block: Verilator generates code per instance even for a module it does not inline; a
    # hier_block is verilated and compiled once (the cocotb harness passes --hierarchical).
    return mark_module(strip_zero_memory_init(verilog_optimized(block, name)), name, "hier_block")


def fabric_verilog(cfg, top: str, wrap=None) -> str:
    """The fabric with the modules of :func:`module_specs` each written once (``<top>_pe``,
    ``<top>_tile``, ``<top>_l2``, ``<top>_mesh``, ``<top>_router_<x>_<y>``), the tile, slice and PE
    marked ``hier_block`` for Verilator. ``wrap(fabric) -> component``: export a design around the
    fabric instead (the board's rtl/board/fabric_link.py)."""
    from tessera.rtl.fabric.fabric import Fabric
    from tessera.rtl.tensor.export import strip_zero_memory_init, verilog_optimized

    specs = module_specs(cfg, top)
    # Greedy split by weight: the second process takes about half, this one the rest and the top.
    mine, theirs, load = [], [], [14.0, 0.0]
    for spec in sorted(specs, key=lambda s: -_weight(cfg, s)):
        side = 0 if load[0] <= load[1] else 1
        (mine if side == 0 else theirs).append(spec)
        load[side] += _weight(cfg, spec)
    request = json.dumps({"cfg": dataclasses.asdict(cfg), "top": top, "specs": theirs})
    err = tempfile.TemporaryFile("w+")
    worker = subprocess.Popen([sys.executable, "-m", "tessera.rtl.fabric.export"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        worker.stdin.write(request)
        worker.stdin.close()
        fabric = Fabric(cfg, pe_module=module_name(top, ("pe",)), tile_module=module_name(top, ("tile",)),
                        l2_module=module_name(top, ("l2",)), mesh_module=module_name(top, ("mesh",)))
        texts = [strip_zero_memory_init(verilog_optimized(fabric if wrap is None else wrap(fabric), top))]
        texts += [module_verilog(cfg, top, spec) for spec in mine]
        texts.append(worker.stdout.read())
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    if worker.returncode:
        err.seek(0)
        raise RuntimeError(f"exporting the fabric's modules failed ({worker.returncode}):\n"
                           f"{err.read()[-4000:]}")
    err.close()
    return "\n".join(texts)


def _main():
    from tessera.rtl.config import fabric_from_dict

    request = json.loads(sys.stdin.read())
    cfg = fabric_from_dict(request["cfg"])
    sys.stdout.write("\n".join(module_verilog(cfg, request["top"], tuple(s)) for s in request["specs"]))


if __name__ == "__main__":
    _main()
