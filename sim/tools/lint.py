"""``verilator --lint-only -Wall`` on generated Verilog, with the commented waiver file.

Usage: ``python -m tessera.tools.lint DIR_OR_FILES...`` (``make lint`` runs it on build/verilog/).
Exits non-zero when any module has a warning or error that the waiver file does not cover.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tessera.tools.toolchain import setup_environment

WAIVERS = Path(__file__).with_name("verilator_waivers.vlt")


def top_module(path: Path) -> str:
    """The module marked (* top = 1 *) by Yosys, else the file stem."""
    text = path.read_text()
    m = re.search(r"\(\* top =\s*1\s*\*\)\s*(?:\(\*[^)]*\*\)\s*)*module\s+(\S+?)\s*\(", text)
    return m.group(1) if m else path.stem


def lint_file(path: Path) -> list[str]:
    """Return the diagnostics Verilator prints for ``path`` (empty when clean)."""
    env = setup_environment(dict(__import__("os").environ))
    cmd = ["verilator", "--lint-only", "-Wall", str(WAIVERS), str(path), "--top-module", top_module(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("%")]
    if proc.returncode != 0 and not lines:
        lines = [f"%Error: verilator exited with {proc.returncode}: {proc.stderr.strip()[:500]}"]
    return lines


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    files: list[Path] = []
    for arg in argv or ["build/verilog"]:
        p = Path(arg)
        files += sorted(p.glob("*.v")) if p.is_dir() else [p]
    if not files:
        print("lint: no Verilog files found (run `make verilog` first)", file=sys.stderr)
        return 1
    bad = 0
    for f in files:
        diags = lint_file(f)
        print(f"{'ok  ' if not diags else 'FAIL'} {f}")
        for d in diags[:20]:
            print(f"     {d}")
        bad += bool(diags)
    print(f"lint: {len(files) - bad} of {len(files)} modules clean")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
