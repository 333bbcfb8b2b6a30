"""What every ``tessera`` command shares: argument checks that name the flag, output paths checked
before any work starts (progress lines are :mod:`tessera.tools.progress`).

Commands call these before they export, build or simulate anything, so that a bad argument costs
nothing: :func:`check_output` for every file they will write, :func:`check_range` for every
number. Errors are ``ValueError`` naming the flag; ``tessera.cli.main`` prints them as one line.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def check_output(path, flag: str, suffix: str | None = None) -> Path | None:
    """``path`` (or None) as a ``Path`` once it is known to be writable: not a directory, its
    folder an existing or creatable directory with write permission, and (with ``suffix``)
    ending in ``suffix`` -- numpy's ``save`` would otherwise append one silently."""
    if path is None:
        return None
    p = Path(path)
    if str(path) == "" or p.is_dir():
        raise ValueError(f"{flag}: {path!r} is a directory; name a file"
                         + (f" ending in {suffix}" if suffix else ""))
    if suffix and p.suffix != suffix:
        raise ValueError(f"{flag}: {path} does not end in {suffix} (the file is written as {suffix})")
    if p.exists():                       # an existing file (or /dev/null): its own permission counts
        if not os.access(p, os.W_OK):
            raise ValueError(f"{flag}: {path} exists and is not writable")
        return p
    folder = p.resolve().parent
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag}: cannot create {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}: cannot write into {existing} (permission denied)")
    return p


def write_output(path: Path, text: str):
    """Write ``text`` to an output checked by :func:`check_output`, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def check_range(value, flag: str, lo=None, hi=None, *, lo_open: bool = False, hi_open: bool = False):
    """``value`` if it lies in [lo, hi] (bounds left out are unbounded; ``*_open`` excludes them)
    and is finite; else a ``ValueError`` naming ``flag``."""
    if value is None:
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{flag}: {value} is not a finite number")
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if too_low or too_high:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        span = f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
        raise ValueError(f"{flag}: {value} is out of range; allowed: {span}")
    return value


SEED_MAX = (1 << 31) - 1


def check_seed(value, flag: str = "--seed"):
    """A seed is an integer in 0 .. 2**31 - 1 (numpy's and Verilator's range both hold it)."""
    return check_range(value, flag, 0, SEED_MAX)


def refuse_inapplicable(args, defaults: dict, why: str):
    """Refuse every option of ``defaults`` (``{dest: default}``) that ``args`` sets to something
    else: it would be ignored silently. ``why`` says when the options apply."""
    for dest, default in defaults.items():
        if getattr(args, dest, default) != default:
            raise ValueError(f"--{dest.replace('_', '-')}: {why}")
