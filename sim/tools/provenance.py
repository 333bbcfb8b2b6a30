"""Where a result came from: the Tessera version and the git commit of the sources that ran.

Reports (``tessera gemm --json/--csv``, the Python API) and ``tessera --version`` carry both, so
that a figure can be traced to the code that produced it.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import tessera

SOURCE = Path(tessera.__file__).resolve().parent.parent


@functools.cache
def commit() -> str:
    """The git commit of the sources (``+dirty`` when they differ from it), or ``unknown`` outside
    a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=SOURCE, capture_output=True,
                              text=True, timeout=10)
        if head.returncode:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=SOURCE,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def version() -> str:
    return f"tessera {tessera.__version__} (commit {commit()})"
