"""Run a cocotb test module against an Amaranth component under Verilator.

``run(top, "tessera.tb.numeric.test_fmul", name="fmul", params={...})`` exports ``top`` to Verilog,
builds it with Verilator through the cocotb Python runner in a directory keyed by a hash of
the Verilog (and the build options), unique per pytest-xdist worker, reuses that build when
nothing changed, and runs the named cocotb module with a printed, replayable seed in a run
directory of its own.

Builds: ``BUILD/sim/<name>-<key>/<worker>/`` (``<worker>``: the pytest-xdist worker, ``main``
outside pytest). A build that is not reused prints one line first (what is built, with waveform
tracing or not, and how long the last build of that name took, from ``build_times.jsonl``); builds
of one directory are serialised by ``<worker>.lock`` (concurrent runs of a new design build it
once). After the build its compile intermediates (precompiled headers, object files: about 140 MB
of a 145 MB build) are removed (:func:`tessera.tools.build_cache.trim_build`) and the build cache
is pruned to its bound (:func:`tessera.tools.build_cache.auto_prune`, ``$TESSERA_CACHE_MAX``).
Every call marks the build used (``.last_used``), for the cache's least-recently-used order.

Run directories: every :func:`run` gets its own, ``<build>/runs/<yyyymmdd-hhmmss>-<pid>-<n>/``
(``sim.log``, ``results.xml``, ``dump.vcd`` with waves, and what the testbench writes into
``$TESSERA_RUN_DIR``), so that concurrent runs of one design (a design-space sweep, two
terminals) never share one. The newest :data:`KEEP_RUNS` of a build are kept; older ones are
removed when a new run starts, except one whose run is in progress (it holds ``.lock`` in its
directory with ``fcntl.flock`` while the simulator runs) or ended less than :data:`RUN_GRACE_S`
seconds ago (its caller may still be reading its results).

Environment:
  SEED=N      replay a run with this seed (printed by every run; the ``tessera`` commands take
              ``--seed N`` instead and pass ``replay="--seed {seed}"``, so the hint says that)
  WAVES=1     build with tracing (a separate build) and write ``dump.vcd`` in the run directory;
              the run prints its path and the viewers that open it (GTKWave, Surfer)
  TESSERA_BUILD_VERBOSE=1  show Verilator/compiler output
  TESSERA_CXX_OPT=-O0      g++ optimisation of builds that do not choose one (see CXX_OPTS);
                           the regression sets -O0 (tests/conftest.py), the CLI keeps -Os
  TESSERA_CACHE_MAX=10G    bound of the build cache (tessera.tools.build_cache)

Every build that is not reused appends one JSON line (name, Verilog lines, export and Verilator
build seconds, g++ optimisation, waves, worker) to ``build/sim/build_times.jsonl``;
``python -m tessera.tools.harness`` prints them as a table.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path

from tessera.tools import build_cache
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


def waveform_line(path) -> str:
    """What every command prints about a waveform it wrote."""
    return f"waveform: {path} -- open it with GTKWave (gtkwave FILE) or Surfer (surfer FILE)"


def build(top, name: str, *, waves: bool | None = None, verilog_text: str | None = None,
          cxx_opt: str | None = None, probe: bool = False) -> Path | None:
    """Export and build ``top``; return the build directory. An unchanged design is not rebuilt.
    ``cxx_opt``: see :data:`CXX_OPTS`; None takes ``$TESSERA_CXX_OPT`` if set. ``probe``: build
    nothing, return None when this build does not exist yet."""
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
    entry = BUILD / "sim" / f"{name}-{key}"
    build_dir = entry / _worker()
    stamp = build_dir / ".built"
    if probe:
        return build_dir if stamp.exists() else None
    built = False
    if not stamp.exists():
        build_dir.mkdir(parents=True, exist_ok=True)
        build_cache.touch(entry)
        with open(entry / f"{_worker()}.lock", "w") as lock:   # one build at a time in this directory
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"[tessera] waiting for another process building {name} in {build_dir}", flush=True)
                fcntl.flock(lock, fcntl.LOCK_EX)
            if not stamp.exists():
                _build(text, name, key, build_dir, env, waves, cxx_opt, t0, t_export,
                       exported=verilog_text is None)
                built = True
    build_cache.touch(entry)
    if built:
        build_cache.auto_prune()
    return build_dir


def _build(text, name, key, build_dir, env, waves, cxx_opt, t0, t_export, exported):
    last = last_build_seconds(name, cxx_opt or "-Os")
    print(f"[tessera] building {name}{' with waveform tracing' if waves else ''} under Verilator (not cached;"
          + (f" the last build of {name} took {build_cache.format_seconds(last)})" if last is not None else
             " no earlier build of it recorded)"), flush=True)
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
    (build_dir / ".built").write_text(key)
    build_cache.trim_build(build_dir)
    record = {"name": name, "key": key, "verilog_lines": text.count("\n"),
              "export_s": round(t_export, 1) if exported else None,
              "build_s": round(time.monotonic() - t0 - t_export, 1), "cxx_opt": cxx_opt or "-Os",
              "waves": bool(waves), "worker": _worker()}
    BUILD_TIMES.parent.mkdir(parents=True, exist_ok=True)
    with open(BUILD_TIMES, "a") as f:
        f.write(json.dumps(record) + "\n")


def last_build_seconds(name: str, cxx_opt: str | None = None, path: Path | None = None) -> float | None:
    """Verilator + g++ seconds (the export not counted) of the last recorded build of ``name``
    (with g++ level ``cxx_opt`` if given) in :data:`BUILD_TIMES`; None when there is none."""
    path = path or BUILD_TIMES
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("name") == name and (cxx_opt is None or r.get("cxx_opt") == cxx_opt):
            return float(r["build_s"])
    return None


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


KEEP_RUNS = 4            # run directories kept per build (more while runs are in progress)
RUN_GRACE_S = 60.0       # a run directory that ended less than this many seconds ago is kept
_RUN_NAME = re.compile(r"^(\d{8}-\d{6})-(\d+)-(\d+)$")
_RUN_COUNT = itertools.count()
WAVE_FILES = ("dump.vcd", "dump.fst")     # what cocotb's Verilator main writes (VCD unless built for FST)


def prune_runs(runs: Path, keep: int = KEEP_RUNS, grace_s: float = RUN_GRACE_S) -> list[Path]:
    """Remove the run directories of ``runs`` beyond the newest ``keep``, except those whose
    ``.lock`` is held (a run in progress) or that changed in the last ``grace_s`` seconds; return
    the removed ones."""
    if not runs.is_dir():
        return []
    dirs = []
    for d in runs.iterdir():
        m = _RUN_NAME.match(d.name)
        if m and d.is_dir():
            dirs.append(((m[1], int(m[3]), int(m[2])), d))
    dirs.sort(reverse=True)
    removed = []
    now = time.time()
    for _, d in dirs[keep:]:
        try:
            if now - d.stat().st_mtime < grace_s:
                continue
            lock = open(d / ".lock", "a")
        except OSError:
            continue
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue                          # in use by a run of another process
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def new_run_dir(build_dir: Path):
    """A fresh run directory under ``build_dir/runs`` (older ones pruned first) and its open,
    locked ``.lock`` file; the caller closes the file when the run has ended."""
    runs = build_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    prune_runs(runs, KEEP_RUNS - 1)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    while True:
        run_dir = runs / f"{stamp}-{os.getpid()}-{next(_RUN_COUNT)}"
        try:
            run_dir.mkdir()
            break
        except FileExistsError:                   # a previous process with the same pid
            continue
    lock = open(run_dir / ".lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return run_dir, lock


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
    replay: str | None = None,
) -> Path:
    """Build ``top`` and run cocotb ``test_module`` on it; raise ``AssertionError`` on any failure.

    ``params`` (JSON-serialisable) reach the testbench through :func:`tessera.tb.params`.
    ``replay``: how to replay the run, a format string with ``{seed}`` (default ``"SEED={seed}"``,
    for pytest; the ``tessera`` commands pass ``"--seed {seed}"``), used in the printed seed line
    and in the failure message.
    Returns the run's own directory (module docstring), where the testbench may leave result files.
    """
    from cocotb_tools.runner import get_results, get_runner

    replay = replay or "SEED={seed}"
    if "{seed}" not in replay:
        raise ValueError(f"replay = {replay!r}: must contain {{seed}}")
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    build_dir = build(top, name, waves=waves, verilog_text=verilog_text, cxx_opt=cxx_opt)
    seed = resolve_seed(seed)
    hint = replay.format(seed=seed)
    run_dir, lock = new_run_dir(build_dir)
    print(f"[tessera] {name}: {test_module} seed={seed} (replay with {hint}); run directory {run_dir}",
          flush=True)
    runner = get_runner("verilator")
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
    finally:
        lock.close()
    for wave in WAVE_FILES:
        if (run_dir / wave).exists():
            print(f"[tessera] {waveform_line(run_dir / wave)}", flush=True)
    if detail:
        log = run_dir / "sim.log"
        tail = log.read_text(errors="replace")[-8000:] if log.exists() else "(no sim.log)"
        raise AssertionError(
            f"{name}: {test_module}: {detail} (seed={seed}); "
            f"replay with {hint}; log {log}\n{tail}"
        )
    return run_dir


if __name__ == "__main__":
    if not BUILD_TIMES.exists():
        sys.exit(f"{BUILD_TIMES}: no build recorded yet (run `make test` or any testbench first)")
    print(build_times_table())
