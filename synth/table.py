"""The synthesis table: which designs are synthesised, and ``build/synth/results.json``.

A *design* is a registered block (``tessera.rtl.blocks.registry()``) elaborated with one preset, plus
``synth_probe`` (``rtl/board/probe.py``, the flow's own self-test design). ``tessera synth --all`` runs
every registered block with every preset in ``PRESETS``; when two presets give a block the same
RTLIL (a numeric unit does not depend on the mesh size) it is synthesised once and the other rows
record ``same_as``.

Each block is synthesised inside :class:`tessera.rtl.board.boundary.BoundaryRegisters` (a flip-flop on every
port bit) so that paths from and to its ports are timed; ``boundary_ff`` records how many
flip-flops that adds to ``ff``.

``results.json`` is a list of objects, one per (design, preset), updated in place as each design
finishes, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from tessera.rtl.board.boundary import BoundaryRegisters
from tessera.synth.flow import export_rtlil, synthesize_rtlil
from tessera.tools.toolchain import BUILD

ROOT = BUILD.parent      # workdirs are shown relative to the directory that holds build/
OUT = BUILD / "synth"
RESULTS = OUT / "results.json"

PRESETS = ["tiny", "ulx3s", "default"]
PROBE = "synth_probe"

# Clock targets (MHz) from issue 7: the fabric closes 60 MHz, every block alone 100 MHz.
FABRIC_MHZ = 60.0
BLOCK_MHZ = 100.0

# (design, preset) pairs that are not attempted, with the reason recorded in the table.
SKIP = {
    ("fabric", "default"): "the 16-tile default fabric is far larger than an ECP5-85F",
}


def target_mhz(design: str) -> float:
    return FABRIC_MHZ if design.startswith("fabric") else BLOCK_MHZ


def designs() -> list[str]:
    from tessera.rtl.blocks import registry

    return sorted(registry())


def make_design(name: str, preset_name: str):
    """The component of ``name`` under ``preset_name`` (``ValueError`` naming what is unknown)."""
    from tessera.rtl.config import preset

    cfg = preset(preset_name)
    if name == PROBE:
        from tessera.rtl.board.probe import SynthProbe

        return SynthProbe()
    from tessera.rtl.blocks import make_block

    return make_block(name, cfg)


def load_results(path: Path = RESULTS) -> list[dict]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def save_result(row: dict, path: Path = RESULTS) -> None:
    """Insert or replace the row of (design, preset); write atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [r for r in load_results(path)
            if (r.get("design"), r.get("preset")) != (row["design"], row["preset"])]
    rows.append(row)
    rows.sort(key=lambda r: (r.get("design", ""), PRESETS.index(r["preset"]) if r.get("preset") in PRESETS
                             else len(PRESETS)))
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    tmp.replace(path)


def prepare(name: str, preset_name: str, *, freq_mhz: float | None = None) -> tuple[dict, str | None]:
    """Elaborate and export one design: its row so far and its RTLIL (None when skipped or failed)."""
    freq = target_mhz(name) if freq_mhz is None else freq_mhz
    row: dict = {"design": name, "preset": preset_name, "target_mhz": freq,
                 "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if (name, preset_name) in SKIP:
        row["status"] = "skipped: " + SKIP[(name, preset_name)]
        return _with_keys(row), None
    t0 = time.monotonic()
    try:
        wrapped = BoundaryRegisters(make_design(name, preset_name))
        row["boundary_ff"] = wrapped.boundary_ff
        # The same top name for every preset, so that identical designs hash identically.
        il = export_rtlil(wrapped, name)
    except Exception as e:  # an elaboration error of someone's block must not stop the table
        row["status"] = f"elaboration failed: {type(e).__name__}: {str(e)[:200]}"
        return _with_keys(row), None
    row["export_s"] = round(time.monotonic() - t0, 1)
    row["rtlil_sha1"] = hashlib.sha1(il.encode()).hexdigest()
    return row, il


def run_prepared(row: dict, il: str | None, *, timeout: float = 1800.0, seed: int = 1, out: Path = OUT,
                 known: dict | None = None, previous: list[dict] | None = None) -> dict:
    """Synthesise a prepared design and return its completed row (not saved).

    ``known`` maps an RTLIL hash to an earlier row of this run; a design with the same RTLIL
    copies that row's figures and names it in ``same_as`` instead of being synthesised again.
    ``previous`` (the rows of results.json): a row of the same design and preset with the same
    RTLIL hash, clock target and seed that completed place and route is reused (``cached``).
    """
    if il is None:
        return row
    digest = row["rtlil_sha1"]
    for old in previous or []:
        if ((old.get("design"), old.get("preset")) == (row["design"], row["preset"])
                and old.get("rtlil_sha1") == digest and old.get("target_mhz") == row["target_mhz"]
                and old.get("seed", 1) == seed and old.get("lut4") is not None and not old.get("same_as")):
            row = dict(old, cached=True)
            if known is not None:
                known[digest] = row
            return row
    if known is not None and digest in known and known[digest].get("target_mhz") == row["target_mhz"]:
        same = known[digest]
        row.update({k: v for k, v in same.items() if k not in ("design", "preset", "date", "same_as")})
        row["same_as"] = f"{same['design']}@{same['preset']}"
        return row
    workdir = Path(out) / f"{row['design']}_{row['preset']}"
    row.update(synthesize_rtlil(il, row["design"], workdir, freq_mhz=row["target_mhz"], timeout=timeout,
                                seed=seed))
    row["seed"] = seed
    row.pop("cached", None)
    row["workdir"] = os.path.relpath(workdir, ROOT) if workdir.is_relative_to(ROOT) else str(workdir)
    if known is not None:
        known[digest] = row
    return _with_keys(row)


def run_design(name: str, preset_name: str, *, freq_mhz: float | None = None, **kwargs) -> dict:
    """``prepare`` then ``run_prepared`` one design."""
    row, il = prepare(name, preset_name, freq_mhz=freq_mhz)
    return run_prepared(row, il, **kwargs)


def _with_keys(row: dict) -> dict:
    """Every row has the documented keys, None where nothing was measured."""
    for k in ("lut4", "lut4_available", "ff", "bram", "dsp", "fmax_mhz"):
        row.setdefault(k, None)
    return row


def progress_line(i: int, n: int, row: dict) -> str:
    tag = f"[{i}/{n}] {row['design']}@{row['preset']}"
    if row.get("lut4") is None:
        return f"{tag:36s} {row.get('status', '?')}"
    pct = 100.0 * row["lut4"] / row["lut4_available"] if row.get("lut4_available") else 0.0
    fmax = f"{row['fmax_mhz']:.1f}" if row.get("fmax_mhz") is not None else "-"
    secs = row.get("build_s") or (row.get("yosys_s") or 0) + (row.get("nextpnr_s") or 0)
    extra = (f" (same as {row['same_as']})" if row.get("same_as") else
             " (unchanged, from results.json)" if row.get("cached") else f" {secs:.0f} s")
    return (f"{tag:36s} LUT4 {row['lut4']:6d} ({pct:4.1f}%)  FF {row['ff']:6d}  BRAM {row['bram']:3d}  "
            f"DSP {row['dsp']:3d}  Fmax {fmax:>6s} MHz / {row['target_mhz']:.4g}  {row['status']}{extra}")


def markdown_table(rows: list[dict]) -> str:
    """The results as a Markdown table (the one in docs/synthesis.md)."""
    head = ("| design | preset | LUT4 | % of 83640 | FF | DP16KD | MULT18X18D | Fmax MHz | target | "
            "status | critical path (from -> to, cells, logic/routing ns) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    def status(r):
        text = r.get("status", "").replace(str(ROOT) + "/", "")
        return text if len(text) <= 120 else text[:117] + "..."

    for r in rows:
        if r.get("lut4") is None:
            lines.append(f"| {r['design']} | {r['preset']} | - | - | - | - | - | - | "
                         f"{r.get('target_mhz', 0):.4g} | {status(r)} | |")
            continue
        pct = 100.0 * r["lut4"] / r["lut4_available"] if r.get("lut4_available") else 0.0
        cp = r.get("critical_path")
        cps = (f"{cp['from']} -> {cp['to']}, {cp['logic_cells']}, {cp['logic_ns']:.1f}/{cp['routing_ns']:.1f}"
               if cp else "")
        if r.get("same_as"):
            cps = f"same netlist as {r['same_as']}"
        fmax = f"{r['fmax_mhz']:.1f}" if r.get("fmax_mhz") is not None else "-"
        lines.append(f"| {r['design']} | {r['preset']} | {r['lut4']} | {pct:.1f} | {r['ff']} | {r['bram']} | "
                     f"{r['dsp']} | {fmax} | {r['target_mhz']:.4g} | {status(r)} | {cps} |")
    return "\n".join(lines)
