"""The build cache under ``BUILD``: what it holds, how big it is, and its size bound.

Entries, one per design and build key (``BUILD`` is :data:`tessera.tools.toolchain.BUILD`, that is
``$TESSERA_BUILD`` or ``build/``):

  ``cocotb``   ``BUILD/sim/<name>-<key>/``: a Verilator build for the cocotb testbenches
               (:func:`tessera.tools.harness.build`), one subfolder per pytest-xdist worker
               (``gw0``, ``gw1``, ..., ``main`` outside pytest), each with its run directories
               (``runs/``) and its build lock (``<worker>.lock``)
  ``native``   ``BUILD/native/<name>-<key>/``: a native fabric library (:mod:`tessera.tools.native`),
               with its ``<name>-<key>.lock`` and any ``<name>-<key>.tmp<pid>/`` a failed build left
  ``verilog``  ``BUILD/verilog-cache/<name>-<key>.v``: exported Verilog
               (:func:`tessera.tools.verilog_cache.cached_verilog`)

Everything else under ``BUILD`` (``gemm/``, ``bench/``, ``build/sim/build_times.jsonl``, reports...)
is not an entry and is never touched here.

**Last used.** :func:`touch` marks an entry used: the mtime of a ``.last_used`` file in a build
directory (``harness.build`` and ``native.build`` touch it on every call, cached or not), the mtime
of the file itself for a ``.v`` (``cached_verilog`` touches it on every hit). An entry without a
stamp (made before stamps existed) counts as used at the newest mtime of its top-level paths.

**Size.** Apparent bytes (``du --apparent-size``) of every file of the entry.

**Prune** (:func:`prune`, ``tessera cache prune``): removes least recently used entries until the
total is at most the bound, but never an entry used in the last :data:`RECENT_S` seconds (10
minutes: a simulation that is starting or running is not pulled from under it) nor one with a held
lock (a cocotb build in progress or a run in progress, ``fcntl.flock`` on its ``.lock`` files; a
native build in progress or waiting). The locks of an entry are taken while it is removed, so no
build or run starts in it meanwhile, and a directory is renamed (``<name>-<key>.removing<pid>``)
before it is deleted, so a build that starts at that moment makes a fresh one. Before evicting
anything, a prune trims the finished cocotb builds made before trimming existed (below).
:func:`auto_prune` runs after every new build
(``harness.build``, ``native.build``, ``cached_verilog``) with the bound :func:`default_max_bytes`:
``$TESSERA_CACHE_MAX`` (``500M``, ``10G``, ``0``...), else :data:`DEFAULT_MAX`.

**Trim** (:func:`trim_build`): once a cocotb build has finished, its compile intermediates are
removed: the precompiled headers (``*.gch``, two of about 70 MB per Verilator model that is split
into several C++ files, that is every design but the smallest ones: 140 of the 145 MB of a
``noc_1x1`` build), the object files and archives (``*.o``, ``*.a``). The simulator executable
is already linked (statically against them; it loads only cocotb's libraries), ``runner.test``
only runs it, and ``harness.build`` never runs ``make`` again on a build that has its ``.built``
stamp, so nothing is rebuilt. The Verilated C++ sources, the Verilog and the build log stay.

The default bound, 2G: after trimming, every cocotb build of ``make test`` together is about 160M
(20 builds, most of them once per worker; 4.4G untrimmed), the native builds of a regression and of
``make sim`` about 70M, the Verilog cache about 10M. 2G keeps several versions of the whole
working set, so only builds of designs that changed long ago are evicted.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tessera.tools.toolchain import BUILD

__all__ = ["Entry", "PruneResult", "entries", "prune", "auto_prune", "touch", "trim_build", "parse_size",
           "format_size", "format_seconds", "default_max_bytes", "DEFAULT_MAX", "MAX_ENV", "RECENT_S"]

MAX_ENV = "TESSERA_CACHE_MAX"
DEFAULT_MAX = "2G"
RECENT_S = 600.0              # an entry used less than this many seconds ago is never pruned
STAMP = ".last_used"
KINDS = ("cocotb", "native", "verilog")
TRIM_SUFFIXES = (".gch", ".o", ".a")
TOMB = ".removing"            # an entry being removed: <name>-<key>.removing<pid>

_KEYED = re.compile(r"^(?P<name>.+)-(?P<key>[0-9a-f]{16})$")
_NATIVE_TMP = re.compile(r"^(?P<base>.+-[0-9a-f]{16})\.tmp\d+$")
_NATIVE_LOCK = re.compile(r"^(?P<base>.+-[0-9a-f]{16})\.lock$")
_VERILOG = re.compile(r"^(?P<name>.+)-(?P<key>[0-9a-f]{16})\.v$")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[KMGT]?)(?:I?B)?\s*$", re.I)


def _root(root: Path | None) -> Path:
    return Path(root) if root is not None else BUILD


# ---- sizes ---------------------------------------------------------------------------------------
def parse_size(text, what: str = "--max-size") -> int:
    """``"500M"``, ``"10G"``, ``"1.5G"``, ``"0"``, ``"123456"`` -> bytes (K, M, G, T are powers of
    1024; a trailing ``B`` or ``iB`` is allowed). A ``ValueError`` naming ``what`` otherwise."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"{what}: {text!r} is not a size; give bytes with an optional K, M, G or T "
                         "suffix (powers of 1024), e.g. 500M or 10G; 0 empties the cache")
    return int(float(m["num"]) * _UNITS[m["unit"].upper()])


def format_size(n: int) -> str:
    """Bytes as ``812K``, ``145.3M``, ``4.4G`` (powers of 1024, as :func:`parse_size` reads them)."""
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return f"{n}B"


def format_seconds(s: float) -> str:
    """``8.5 s``, ``45 s``, ``2 min 10 s`` (how long a build took, in the "building" lines)."""
    if s < 10:
        return f"{s:.1f} s"
    if s < 120:
        return f"{s:.0f} s"
    return f"{int(s // 60)} min {int(s % 60):02d} s"


def default_max_bytes() -> int:
    """The bound of :func:`auto_prune` and of ``tessera cache prune`` without ``--max-size``."""
    return parse_size(os.environ.get(MAX_ENV) or DEFAULT_MAX, f"${MAX_ENV}")


def _tree_bytes(path: Path) -> int:
    try:
        st = path.lstat()
    except OSError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return st.st_size
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
            except OSError:
                pass
    return total


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# ---- entries -------------------------------------------------------------------------------------
@dataclass
class Entry:
    """One cached build: ``paths`` are everything it consists of (``path`` first), ``locks`` the
    lock files that a build or run in it holds, ``last_used`` a Unix time."""

    kind: str
    name: str                 # design name and key as on disk: ``noc_1x1-93050f88fd844e54``
    path: Path
    bytes: int
    last_used: float
    paths: tuple[Path, ...] = ()
    locks: tuple[Path, ...] = ()


def touch(path: Path):
    """Mark the entry at ``path`` (a build directory or a cached ``.v`` file) used now."""
    path = Path(path)
    try:
        if path.is_dir():
            (path / STAMP).touch()
        elif path.exists():
            os.utime(path)
    except OSError:
        pass                  # a read-only cache still works; it is only pruned by age of creation


def _last_used(paths) -> float:
    main = paths[0]
    if main.is_dir() and (main / STAMP).exists():
        return _mtime(main / STAMP)
    return max((_mtime(p) for p in paths), default=0.0)


def _cocotb_locks(path: Path) -> tuple[Path, ...]:
    return tuple(sorted(path.glob("*.lock"))) + tuple(sorted(path.glob("*/runs/*/.lock")))


def entries(root: Path | None = None) -> list[Entry]:
    """Every entry of the cache, least recently used first."""
    root = _root(root)
    out: list[Entry] = []
    sim = root / "sim"
    if sim.is_dir():
        for p in sim.iterdir():
            if p.is_dir() and not p.is_symlink() and _KEYED.match(p.name):
                out.append(Entry("cocotb", p.name, p, _tree_bytes(p), _last_used([p]), (p,),
                                 _cocotb_locks(p)))
    native = root / "native"
    if native.is_dir():
        groups: dict[str, list[Path]] = {}
        for p in native.iterdir():
            base = None
            if p.is_dir() and _KEYED.match(p.name):
                base = p.name
            elif m := _NATIVE_TMP.match(p.name) or _NATIVE_LOCK.match(p.name):
                base = m["base"]
            if base:
                groups.setdefault(base, []).append(p)
        for base, paths in groups.items():
            main = native / base
            paths.sort(key=lambda q: (q != main, q.name))
            lock = native / f"{base}.lock"
            out.append(Entry("native", base, paths[0], sum(_tree_bytes(q) for q in paths),
                             _last_used(paths), tuple(paths), (lock,) if lock.exists() else ()))
    vcache = root / "verilog-cache"
    if vcache.is_dir():
        for p in vcache.iterdir():
            if p.is_file() and _VERILOG.match(p.name):
                out.append(Entry("verilog", p.name[:-2], p, _tree_bytes(p), _mtime(p), (p,), ()))
    out.sort(key=lambda e: (e.last_used, e.kind, e.name))
    return out


# ---- trimming ------------------------------------------------------------------------------------
def trim_build(build_dir: Path) -> int:
    """Remove the compile intermediates (``*.gch``, ``*.o``, ``*.a``) of one finished cocotb build
    directory (``BUILD/sim/<name>-<key>/<worker>``, with its ``.built`` stamp); return the bytes freed.
    A directory without the stamp (a build in progress or a failed one) is left alone."""
    build_dir = Path(build_dir)
    if not (build_dir / ".built").exists():
        return 0
    freed = 0
    for dirpath, dirnames, filenames in os.walk(build_dir):
        if Path(dirpath) == build_dir and "runs" in dirnames:
            dirnames.remove("runs")
        for n in filenames:
            if n.endswith(TRIM_SUFFIXES):
                p = os.path.join(dirpath, n)
                try:
                    size = os.lstat(p).st_size
                    os.unlink(p)
                    freed += size
                except OSError:
                    pass
    return freed


def _trim_all(root: Path) -> int:
    freed = 0
    sim = root / "sim"
    if sim.is_dir():
        for stamp in sim.glob("*/*/.built"):
            if _KEYED.match(stamp.parent.parent.name):
                freed += trim_build(stamp.parent)
    return freed


# ---- pruning -------------------------------------------------------------------------------------
@dataclass
class PruneResult:
    """What :func:`prune` did: ``removed`` entries, ``freed`` bytes (``trimmed`` of them by
    trimming), the ``total`` left, the ``max_bytes`` asked for and the ``busy`` entries it had to
    keep (used recently or locked) although the total was over the bound."""

    max_bytes: int
    removed: list[Entry] = field(default_factory=list)
    busy: list[Entry] = field(default_factory=list)
    freed: int = 0
    trimmed: int = 0
    total: int = 0


_GONE = object()


def _try_lock(path: Path):
    """The open, exclusively locked file ``path``; None if another holder has it; ``_GONE`` if the
    file no longer exists (its run directory was pruned meanwhile)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return _GONE
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def _remove(entry: Entry, recent_s: float) -> bool:
    """Remove ``entry`` while holding all its locks; False if one of them is held elsewhere or the
    entry was used meanwhile (checked again once the locks are held)."""
    held = []
    try:
        for lock in entry.locks:
            f = _try_lock(lock)
            if f is None:
                return False
            if f is not _GONE:
                held.append(f)
        if time.time() - _last_used(list(entry.paths)) < recent_s:
            return False
        for p in entry.paths:
            if p.is_dir() and not p.is_symlink():
                # renamed first, atomically: a build that starts now finds no directory and makes a
                # fresh one, instead of racing the removal inside this one
                tomb = p.with_name(f"{p.name}{TOMB}{os.getpid()}")
                try:
                    p.rename(tomb)
                except OSError:
                    continue
                shutil.rmtree(tomb, ignore_errors=True)
            else:
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
        return True
    finally:
        for f in held:
            f.close()


def prune(max_bytes: int, *, root: Path | None = None, recent_s: float = RECENT_S, trim: bool = True,
          wait: bool = True) -> PruneResult:
    """Remove least recently used entries until the cache holds at most ``max_bytes`` (see the
    module's docstring for what is never removed). One prune at a time runs under ``BUILD``;
    with ``wait=False`` a prune that finds another one running returns at once, doing nothing."""
    root = _root(root)
    result = PruneResult(max_bytes)
    if not root.is_dir():
        return result
    with open(root / ".cache-prune.lock", "a") as guard:
        try:
            fcntl.flock(guard, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            result.total = -1
            return result
        for tomb in [*root.glob(f"sim/*{TOMB}*"), *root.glob(f"native/*{TOMB}*")]:
            shutil.rmtree(tomb, ignore_errors=True)          # left by a prune that was interrupted
        if trim:
            result.trimmed = result.freed = _trim_all(root)
        found = entries(root)
        result.total = sum(e.bytes for e in found)
        now = time.time()
        for e in found:
            if result.total <= max_bytes:
                break
            if now - e.last_used < recent_s or not _remove(e, recent_s):
                result.busy.append(e)
                continue
            result.removed.append(e)
            result.freed += e.bytes
            result.total -= e.bytes
    return result


def auto_prune(log: Callable[[str], None] | None = print) -> PruneResult | None:
    """:func:`prune` to :func:`default_max_bytes`, after a new build; says what it did in one line
    (nothing when it did nothing). Skipped when another prune is running. A bad ``$TESSERA_CACHE_MAX``
    is said in one line and the default bound used: the build it follows is not lost over it."""
    try:
        bound = default_max_bytes()
    except ValueError as e:
        bound = parse_size(DEFAULT_MAX, "DEFAULT_MAX")
        if log is not None:
            log(f"[tessera] build cache: {e}; pruning to the default {DEFAULT_MAX}")
    r = prune(bound, wait=False)
    if r.total < 0 or log is None:
        return r
    if r.removed or r.trimmed:
        what = []
        if r.trimmed:
            what.append(f"trimmed earlier builds' object files ({format_size(r.trimmed)})")
        if r.removed:
            what.append(f"removed {len(r.removed)} least recently used "
                        f"{'entry' if len(r.removed) == 1 else 'entries'} "
                        f"({format_size(r.freed - r.trimmed)}: {', '.join(e.name for e in r.removed[:4])}"
                        f"{', ...' if len(r.removed) > 4 else ''})")
        log(f"[tessera] build cache: {'; '.join(what)}; {format_size(r.total)} left of"
            f" {format_size(bound)} (${MAX_ENV}; `tessera cache list`)")
    if r.total > bound:
        log(f"[tessera] build cache: {format_size(r.total)}, over its bound of {format_size(bound)}; the"
            f" rest is in use or used in the last {RECENT_S / 60:.0f} minutes (`tessera cache prune`)")
    return r
