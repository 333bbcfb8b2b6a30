"""Run a cocotb test module against an Amaranth component under Verilator.

``run(top, "tessera.tb.numeric.test_fmul", name="fmul", params={...})`` exports ``top`` to Verilog,
builds it with Verilator through the cocotb Python runner in a directory keyed by a hash of
the Verilog (and the build options), unique per pytest-xdist worker, reuses that build when
nothing changed, and runs the named cocotb module with a printed, replayable seed.

Environment:
  SEED=N      replay a run with this seed (printed by every run)
  WAVES=1     build with tracing (a separate build) and write ``dump.vcd`` in the run directory
  TESSERA_BUILD_VERBOSE=1  show Verilator/compiler output
  TESSERA_CXX_OPT=-O0      g++ optimisation of builds that do not choose one (see CXX_OPTS);
                           the regression sets -O0 (tests/conftest.py), the CLI keeps -Os

Every build that is not reused appends one JSON line (name, Verilog lines, export and Verilator
build seconds, g++ optimisation, worker) to ``build/sim/build_times.jsonl``;
``python -m tessera.tools.harness`` prints them as a table.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

from tessera.tools.toolchain import BUILD, setup_environment

PARAMS_ENV = "TESSERA_PARAMS"


def hier_args(text: str) -> list[str]:
    """Hierarchical verilation when the design marks modules ``/*verilator hier_block*/``: each
    such module is verilated and compiled once and shared by all its instances (the fabric's PEs,
    tiles and L2 slices), instead of once per instance."""
    return ["--hierarchical", "-Wno-UNOPTFLAT"] if "/*verilator hier_block*/" in text else []


# -Wno-fatal: Yosys output carries unavoidable lint warnings (see sim/verilator_waivers.vlt);
# make lint checks them with -Wall separately.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast", "--x-initial", "fast"]

# C++ optimisation of the Verilated model (verilated.mk's OPT_FAST / OPT_SLOW / OPT_GLOBAL).
# ``None`` keeps the wheel's -Os: fastest simulation, for benchmarks and `make sim`. But g++ at
# -Os on a large design takes long (the flattened 4 x 4 mesh: about 10 minutes against 83 s at
# -O0 on a 2-core machine) and most tests simulate for seconds, so the regression builds at -O0
# (TESSERA_CXX_OPT, set by tests/conftest.py).
CXX_OPTS = (None, "-O0", "-O1", "-O2", "-Os")
CXX_OPT_ENV = "TESSERA_CXX_OPT"


def export_verilog(top, name: str) -> str:
    """Amaranth component (or a zero-argument callable returning one) -> Verilog text."""
    from tessera.rtl.export import to_verilog

    if callable(top) and not hasattr(top, "elaborate"):
        top = top()
    return to_verilog(top, name, emit_src=False)


def _runner():
    """cocotb's Verilator runner, but with only the top module's signals public.

    The stock runner passes ``--public-flat-rw``, which keeps every internal wire of every
    instance as a VPI-visible variable: large designs then take many minutes to compile. The
    testbenches only touch top-level ports, so a control file makes just those public.
    """
    from cocotb_tools.runner import Verilator

    class _TopPublicVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
            return cmds

    return _TopPublicVerilator()


def _public_vlt(build_dir: Path, top: str) -> Path:
    path = build_dir / "public.vlt"
    path.write_text(f'`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n')
    return path


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def build(top, name: str, *, waves: bool | None = None, verilog_text: str | None = None,
          cxx_opt: str | None = None) -> Path:
    """Export and build ``top``; return the build directory. An unchanged design is not rebuilt.
    ``cxx_opt``: see :data:`CXX_OPTS`; None takes ``$TESSERA_CXX_OPT`` if set."""
    cxx_opt = cxx_opt or os.environ.get(CXX_OPT_ENV) or None
    if cxx_opt not in CXX_OPTS:
        raise ValueError(f"cxx_opt = {cxx_opt!r} (or ${CXX_OPT_ENV}); allowed:"
                         f" {', '.join(map(str, CXX_OPTS))}")
    env = setup_environment()
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    t0 = time.monotonic()
    text = verilog_text if verilog_text is not None else export_verilog(top, name)
    t_export = time.monotonic() - t0
    key = hashlib.sha256("\n".join([text, " ".join(VERILATOR_ARGS), "top-public", str(waves)]
                                   + ([f"cxx {cxx_opt}"] if cxx_opt else [])).encode())
    key = key.hexdigest()[:16]
    build_dir = BUILD / "sim" / f"{name}-{key}" / _worker()
    stamp = build_dir / ".built"
    if not stamp.exists():
        build_dir.mkdir(parents=True, exist_ok=True)
        src = build_dir / f"{name}.v"
        src.write_text(text)
        runner = _runner()
        plain_makeflags = env["MAKEFLAGS"]
        if cxx_opt:
            env["MAKEFLAGS"] += f" OPT_FAST={cxx_opt} OPT_SLOW={cxx_opt} OPT_GLOBAL={cxx_opt}"
        try:
            runner.build(
                sources=[src],
                hdl_toplevel=name,
                build_dir=build_dir,
                build_args=[*VERILATOR_ARGS, *hier_args(text), str(_public_vlt(build_dir, name))],
                waves=waves,
                timescale=("1ns", "1ps"),
                verbose=os.environ.get("TESSERA_BUILD_VERBOSE", "0") != "0",
                log_file=build_dir / "build.log",
            )
        finally:
            env["MAKEFLAGS"] = plain_makeflags
        stamp.write_text(key)
        record = {"name": name, "key": key, "verilog_lines": text.count("\n"),
                  "export_s": round(t_export, 1) if verilog_text is None else None,
                  "build_s": round(time.monotonic() - t0 - t_export, 1), "cxx_opt": cxx_opt or "-Os",
                  "worker": _worker()}
        with open(BUILD_TIMES, "a") as f:
            f.write(json.dumps(record) + "\n")
    return build_dir


BUILD_TIMES = BUILD / "sim" / "build_times.jsonl"


def build_times_table(path: Path = BUILD_TIMES) -> str:
    """The records of :data:`BUILD_TIMES` as a Markdown table, slowest build first."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: -r["build_s"])
    out = ["| build | Verilog lines | export (s) | Verilator + g++ (s) | g++ | worker |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        exp = "-" if r["export_s"] is None else f"{r['export_s']:.1f}"
        out.append(f"| {r['name']} | {r['verilog_lines']:,} | {exp} | {r['build_s']:.1f} | {r['cxx_opt']}"
                   f" | {r['worker']} |")
    return "\n".join(out)


# Seeds that resolve_seed(None) handed out in this process (``$SEED`` or drawn): the regression's
# seed plugin (tb/soak.py) checks that a test which takes one is marked ``randomized``, so the soak runs it.
SEEDS_TAKEN: list[int] = []


def resolve_seed(seed: int | None = None) -> int:
    """``seed`` if given, else ``$SEED`` if set, else a fresh random seed (recorded in SEEDS_TAKEN)."""
    if seed is None:
        env = os.environ.get("SEED")
        seed = int(env) if env else random.randrange(1 << 31)
        SEEDS_TAKEN.append(seed)
    return seed


def run(
    top,
    test_module: str,
    *,
    name: str,
    params: dict | None = None,
    seed: int | None = None,
    testcase: str | None = None,
    waves: bool | None = None,
    verilog_text: str | None = None,
    cxx_opt: str | None = None,
) -> Path:
    """Build ``top`` and run cocotb ``test_module`` on it; raise ``AssertionError`` on any failure.

    ``params`` (JSON-serialisable) reach the testbench through :func:`tessera.tb.params`.
    Returns the run directory, where the testbench may leave result files.
    """
    from cocotb_tools.runner import get_results, get_runner

    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    build_dir = build(top, name, waves=waves, verilog_text=verilog_text, cxx_opt=cxx_opt)
    seed = resolve_seed(seed)
    print(f"[tessera] {name}: {test_module} seed={seed} (replay with SEED={seed}); build {build_dir}")
    runner = get_runner("verilator")
    run_dir = build_dir / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "results.xml").unlink(missing_ok=True)   # the run directory is reused per build
    try:
        results = runner.test(
            test_module=test_module,
            hdl_toplevel=name,
            hdl_toplevel_lang="verilog",
            build_dir=build_dir,
            test_dir=run_dir,
            testcase=testcase,
            seed=seed,
            waves=waves,
            extra_env={PARAMS_ENV: json.dumps(params or {}), "TESSERA_RUN_DIR": str(run_dir)},
            results_xml=str(run_dir / "results.xml"),
            log_file=run_dir / "sim.log",
        )
        total, failed = get_results(results)
        detail = f"{failed} of {total} cocotb tests failed" if failed or not total else ""
    except (SystemExit, RuntimeError) as e:
        # Under pytest the runner exits (SystemExit) on a failed test or a crashed simulator;
        # the results file, if the simulator got to write it, says how many tests failed.
        xml = run_dir / "results.xml"
        try:
            total, failed = get_results(xml)
            detail = f"{failed} of {total} cocotb tests failed"
        except Exception:
            detail = f"the simulator crashed or wrote no results ({e!r})"
    if detail:
        log = run_dir / "sim.log"
        tail = log.read_text(errors="replace")[-8000:] if log.exists() else "(no sim.log)"
        raise AssertionError(
            f"{name}: {test_module}: {detail} (seed={seed}); "
            f"replay with SEED={seed}; log {log}\n{tail}"
        )
    return run_dir


if __name__ == "__main__":
    if not BUILD_TIMES.exists():
        sys.exit(f"{BUILD_TIMES}: no build recorded yet (run `make test` or any testbench first)")
    print(build_times_table())
