"""Registry of every exportable block: name -> factory(FabricConfig) -> Component.

Each subsystem package (``rtl/numeric``, ``rtl/tensor``, ``rtl/noc``, ...) declares its own
``BLOCKS`` dict in its ``__init__.py``; this module merges them, so adding a block never
touches a shared file. ``tessera verilog`` and ``make verilog`` / ``make lint`` use it.

A subsystem may also declare ``EXPORTERS = {"name": fn(config, top_name) -> verilog_text}`` for a
block whose flat Amaranth export is impractically large (e.g. a systolic array written with one
PE module instantiated R x C times); :func:`export_verilog` uses it.
"""

from __future__ import annotations

import importlib

SUBSYSTEMS = ["numeric", "tensor", "noc", "cache", "tile", "vector", "fabric", "bus"]


def registry() -> dict:
    blocks = {}
    for sub in SUBSYSTEMS:
        mod = importlib.import_module(f"tessera.rtl.{sub}")
        for name, factory in getattr(mod, "BLOCKS", {}).items():
            if name in blocks:
                raise RuntimeError(f"block {name!r} registered twice")
            blocks[name] = factory
    return blocks


def _exporters() -> dict:
    out = {}
    for sub in SUBSYSTEMS:
        out.update(getattr(importlib.import_module(f"tessera.rtl.{sub}"), "EXPORTERS", {}))
    return out


def export_verilog(name: str, config, top_name: str | None = None) -> str:
    """Verilog text of block ``name`` for ``config``; the top module is ``top_name``."""
    top_name = top_name or f"{name}_{config.name}"
    exporter = _exporters().get(name)
    if exporter is not None:
        return exporter(config, top_name)
    from tessera.rtl.export import to_verilog

    return to_verilog(make_block(name, config), top_name, emit_src=False)


def make_block(name: str, config):
    blocks = registry()
    if name not in blocks:
        raise ValueError(f"unknown block {name!r}; allowed: {', '.join(sorted(blocks))}")
    return blocks[name](config)
