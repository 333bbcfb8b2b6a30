"""One cache of exported Verilog, on disk, for every design that is slow to export.

:func:`cached_verilog` keeps the text under ``BUILD/verilog-cache/<name>-<key>.v`` (not in
``make verilog``'s ``build/verilog/``, every file of which ``make lint`` lints). The key hashes the
caller's description of the design (configuration, module name) with every Python source of
:mod:`tessera.rtl` (and any extra source file the design depends on, such as a testbench
wrapper), so an edited block is exported again and an unchanged one never is. Concurrent writers
(pytest-xdist workers, parallel jobs) each write a temporary file and rename it into place.
Every hit touches the file (its mtime is its last use, for :mod:`tessera.tools.build_cache`'s
least-recently-used order), and a new file is followed by
:func:`tessera.tools.build_cache.auto_prune`, which bounds the cache as a whole.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from tessera import rtl as rtl_package
from tessera.tools import build_cache
from tessera.tools.toolchain import BUILD

__all__ = ["cached_verilog", "sources_digest"]

RTL = Path(rtl_package.__file__).resolve().parent


def sources_digest(extra=()) -> str:
    """Hash of every ``.py`` file of ``tessera.rtl`` (path and contents) and of ``extra`` files."""
    h = hashlib.sha256()
    for path in sorted(RTL.rglob("*.py")) + [Path(p).resolve() for p in extra]:
        shown = path.relative_to(RTL.parent) if path.is_relative_to(RTL.parent) else path
        h.update(shown.as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def cached_verilog(name: str, description: str, make: Callable[[], str] | None, *,
                   extra_sources=()) -> str | None:
    """The Verilog ``make()`` returns for design ``name``, from the cache when ``description`` and
    the sources are unchanged; ``make=None`` only looks (None when it is not cached)."""
    key = hashlib.sha256(f"{name}|{description}|{sources_digest(extra_sources)}".encode()).hexdigest()[:16]
    path = BUILD / "verilog-cache" / f"{name}-{key}.v"
    try:
        text = path.read_text()
    except FileNotFoundError:
        pass
    else:
        build_cache.touch(path)
        return text
    if make is None:
        return None
    text = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(text)
    tmp.replace(path)
    build_cache.auto_prune()
    return text
