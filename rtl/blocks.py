"""Registry of every exportable block: name -> factory(FabricConfig) -> Component.

Each subsystem package (``rtl/numeric``, ``rtl/tensor``, ``rtl/noc``, ...) declares its own
``BLOCKS`` dict in its ``__init__.py``; this module merges them, so adding a block never
touches a shared file. ``tessera verilog`` and ``make verilog`` / ``make lint`` use it.
"""

from __future__ import annotations

import importlib

SUBSYSTEMS = ["numeric", "tensor", "noc", "cache", "tile", "fabric", "bus"]


def registry() -> dict:
    blocks = {}
    for sub in SUBSYSTEMS:
        mod = importlib.import_module(f"rtl.{sub}")
        for name, factory in getattr(mod, "BLOCKS", {}).items():
            if name in blocks:
                raise RuntimeError(f"block {name!r} registered twice")
            blocks[name] = factory
    return blocks


def make_block(name: str, config):
    blocks = registry()
    if name not in blocks:
        raise ValueError(f"unknown block {name!r}; allowed: {', '.join(sorted(blocks))}")
    return blocks[name](config)
