"""Build hygiene: the size-bounded build cache (tessera.tools.build_cache, `tessera cache`), the
per-run directories of tessera.tools.harness.run, its build line, waveform line and replay hint.

The cache tests work on fake entries in a temporary BUILD; the run tests use the small
``stream_fifo`` design (one Verilator build of about 10 s, in a temporary BUILD, shared by two
concurrent processes)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tessera.cli.main import main
from tessera.tools import build_cache as bc
from tessera.tools import harness

HOUR = 3600.0


def _key(i: int) -> str:
    return f"{i:016x}"


def _file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def _used(path: Path, ago: float):
    """Mark an entry last used ``ago`` seconds ago (its stamp, or the .v file itself)."""
    t = time.time() - ago
    target = path / bc.STAMP if path.is_dir() else path
    target.touch()
    os.utime(target, (t, t))


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setattr(bc, "BUILD", tmp_path)
    monkeypatch.delenv(bc.MAX_ENV, raising=False)
    return tmp_path


def _fake_cache(root: Path) -> dict[str, Path]:
    """Five entries of every kind, 1,000 to 5,000 bytes, used 5 h .. 1 h ago (oldest first)."""
    cocotb_old = root / "sim" / f"noc_1x1-{_key(1)}"
    _file(cocotb_old / "gw0" / "noc_1x1", 1000)
    native = root / "native" / f"fabric_tiny-{_key(2)}"
    _file(native / "libtessera_fabric_tiny.so", 2000)
    (root / "native" / f"fabric_tiny-{_key(2)}.lock").touch()
    _file(root / "native" / f"fabric_tiny-{_key(2)}.tmp4242" / "build.log", 500)   # a failed build's
    verilog = _file(root / "verilog-cache" / f"fabric_tiny-{_key(3)}.v", 3000)
    cocotb_new = root / "sim" / f"l2_small-{_key(4)}"
    _file(cocotb_new / "gw0" / "l2_small", 4000)
    _file(cocotb_new / "gw1" / "l2_small", 1000)
    native_new = root / "native" / f"fabric_default-{_key(5)}"
    _file(native_new / "libtessera_fabric_default.so", 5000)
    # not entries: never listed, never removed
    _file(root / "sim" / "build_times.jsonl", 100)
    _file(root / "gemm" / "fabric_tiny-8x8x8-bf16-abc" / "report.json", 100)
    paths = {"noc_1x1": cocotb_old, "fabric_tiny": native, "fabric_tiny.v": verilog, "l2_small": cocotb_new,
             "fabric_default": native_new}
    for ago, p in zip((5, 4, 3, 2, 1), paths.values(), strict=True):
        _used(p, ago * HOUR)
    return paths


def test_entries_kinds_sizes_and_lru_order(root):
    _fake_cache(root)
    found = bc.entries()
    assert [(e.kind, e.name) for e in found] == [
        ("cocotb", f"noc_1x1-{_key(1)}"), ("native", f"fabric_tiny-{_key(2)}"),
        ("verilog", f"fabric_tiny-{_key(3)}"), ("cocotb", f"l2_small-{_key(4)}"),
        ("native", f"fabric_default-{_key(5)}")]
    # sizes: files plus the 0-byte stamps; the native entry counts its .tmp leftover and its .lock
    assert [e.bytes for e in found] == [1000, 2500, 3000, 5000, 5000]
    assert found[1].locks == (root / "native" / f"fabric_tiny-{_key(2)}.lock",)
    assert abs(found[0].last_used - (time.time() - 5 * HOUR)) < 60


def test_prune_removes_least_recently_used_down_to_the_bound(root):
    paths = _fake_cache(root)
    tomb = _file(root / "sim" / f"noc_2x2-{_key(9)}{bc.TOMB}999" / "gw0" / "x.o", 10**6)   # interrupted prune
    r = bc.prune(10_000)                         # 16,500 bytes -> the three oldest go (6,500)
    assert not tomb.parent.parent.exists()
    assert [e.name for e in r.removed] == [f"noc_1x1-{_key(1)}", f"fabric_tiny-{_key(2)}",
                                           f"fabric_tiny-{_key(3)}"]
    assert r.freed == 6500 and r.total == 10_000 and not r.busy
    assert not paths["noc_1x1"].exists() and not paths["fabric_tiny"].exists()
    assert not list((root / "native").glob(f"fabric_tiny-{_key(2)}*"))       # its .lock and .tmp too
    assert not paths["fabric_tiny.v"].exists()
    assert paths["l2_small"].exists() and paths["fabric_default"].exists()
    assert (root / "sim" / "build_times.jsonl").exists() and (root / "gemm").exists()
    assert bc.prune(10_000).removed == []       # already within the bound
    r = bc.prune(0)
    assert len(r.removed) == 2 and r.total == 0 and not bc.entries()


def test_prune_keeps_recent_and_locked_entries(root):
    paths = _fake_cache(root)
    _used(paths["l2_small"], 60)                 # used a minute ago: a simulation may be starting
    run_lock = paths["noc_1x1"] / "gw0" / "runs" / "20260101-000000-1-0" / ".lock"
    run_lock.parent.mkdir(parents=True)
    run_lock.touch()
    os.utime(paths["noc_1x1"] / bc.STAMP, (time.time() - 5 * HOUR,) * 2)
    native_lock = root / "native" / f"fabric_tiny-{_key(2)}.lock"
    with open(run_lock) as run_f, open(native_lock) as native_f:
        fcntl.flock(run_f, fcntl.LOCK_EX)            # a run in progress
        fcntl.flock(native_f, fcntl.LOCK_EX)         # a native build in progress
        r = bc.prune(0)
        kept = {e.name for e in r.busy}
        assert kept == {f"noc_1x1-{_key(1)}", f"fabric_tiny-{_key(2)}", f"l2_small-{_key(4)}"}
        assert {e.name for e in r.removed} == {f"fabric_tiny-{_key(3)}", f"fabric_default-{_key(5)}"}
        assert paths["noc_1x1"].exists() and paths["fabric_tiny"].exists() and paths["l2_small"].exists()
    r = bc.prune(0)                                   # locks released: only the recent one stays
    assert {e.name for e in r.removed} == {f"noc_1x1-{_key(1)}", f"fabric_tiny-{_key(2)}"}
    assert [e.name for e in bc.entries()] == [f"l2_small-{_key(4)}"]
    assert bc.prune(0, recent_s=0).total == 0


def test_trim_build_removes_only_intermediates_of_finished_builds(root):
    d = root / "sim" / f"noc_1x1-{_key(1)}" / "gw0"
    for name, size in (("Vtop__pch.h.fast.gch", 7000), ("verilated.o", 300), ("Vtop__ALL.a", 200),
                       ("Vsub/Vsub__ALL.a", 100), ("noc_1x1", 900), ("Vtop.cpp", 50), ("runs/x/keep.o", 10)):
        _file(d / name, size)
    assert bc.trim_build(d) == 0                      # no .built: a build in progress, left alone
    (d / ".built").write_text("key")
    assert bc.trim_build(d) == 7600
    left = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
    assert left == [".built", "Vtop.cpp", "noc_1x1", "runs/x/keep.o"]
    _file(d / "verilated.o", 300)                     # prune trims finished builds first
    assert bc.prune(10**9).trimmed == 300


@pytest.mark.parametrize("text, n", [("0", 0), ("123", 123), ("500M", 500 << 20), ("10G", 10 << 30),
                                     ("1.5g", 3 << 29), ("64KiB", 64 << 10), ("2TB", 2 << 40)])
def test_parse_size(text, n):
    assert bc.parse_size(text) == n


@pytest.mark.parametrize("text", ["x", "", "-5", "10Q", "1e9", "G"])
def test_parse_size_errors_name_the_flag(text):
    with pytest.raises(ValueError, match=r"^--max-size: .* is not a size"):
        bc.parse_size(text)


def test_default_bound_from_the_environment(monkeypatch):
    monkeypatch.delenv(bc.MAX_ENV, raising=False)
    assert bc.default_max_bytes() == bc.parse_size(bc.DEFAULT_MAX)
    monkeypatch.setenv(bc.MAX_ENV, "750M")
    assert bc.default_max_bytes() == 750 << 20
    monkeypatch.setenv(bc.MAX_ENV, "lots")
    with pytest.raises(ValueError, match=r"^\$TESSERA_CACHE_MAX: 'lots' is not a size"):
        bc.default_max_bytes()


@pytest.mark.parametrize("size", ["x", "-5", "10Q"])
def test_cli_bad_max_size_is_one_line_naming_the_flag(root, capsys, size):
    _fake_cache(root)
    with pytest.raises(SystemExit) as e:
        main(["cache", "prune", "--max-size", size])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tessera cache: error: --max-size: {size!r} is not a size")
    assert err.count("\n") == 1
    assert len(bc.entries()) == 5                     # nothing removed


def test_cli_list_and_prune(root, capsys):
    _fake_cache(root)
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert f"cocotb   noc_1x1-{_key(1)}" in out and f"native   fabric_default-{_key(5)}" in out
    assert "(5 h ago)" in out and "total 16.1K in 5 entries; bound 2.0G" in out
    assert main(["cache", "prune", "--max-size", "13000"]) == 0
    out = capsys.readouterr().out
    assert f"removed cocotb   noc_1x1-{_key(1)}" in out and f"removed native   fabric_tiny-{_key(2)}" in out
    assert "freed 3.4K (3,500 bytes); 12.7K left, bound 12.7K" in out and out.count("removed") == 2
    assert main(["cache", "prune", "--max-size", "0"]) == 0
    assert "freed 12.7K (13,000 bytes); 0B left, bound 0B" in capsys.readouterr().out
    assert main(["cache", "list"]) == 0
    assert "(empty)" in capsys.readouterr().out


def test_run_directories_pruned_beyond_the_newest(tmp_path):
    runs = tmp_path / "runs"
    old = time.time() - HOUR
    dirs = []
    for i in range(8):
        d = runs / f"20260101-0000{i:02d}-{100 + i}-{i}"
        _file(d / "sim.log", 10)
        (d / ".lock").touch()
        os.utime(d, (old, old))
        dirs.append(d)
    os.utime(dirs[1], None)                           # ended a moment ago: its caller may be reading it
    (runs / "not-a-run").mkdir()
    with open(dirs[0] / ".lock") as f:
        fcntl.flock(f, fcntl.LOCK_EX)                 # a run in progress
        removed = harness.prune_runs(runs, keep=3)
    assert sorted(removed) == dirs[2:5]
    left = sorted(p.name for p in runs.iterdir())
    assert left == sorted([d.name for d in dirs[:2] + dirs[5:]] + ["not-a-run"])


# ---- real runs of the stream_fifo design -------------------------------------------------------------

_CHILD = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from amaranth import Module
    from amaranth.lib import stream, wiring
    from amaranth.lib.fifo import SyncFIFOBuffered
    from amaranth.lib.wiring import In, Out
    from tessera.tools.harness import run

    class Fifo(wiring.Component):
        def __init__(self):
            super().__init__({"i": In(stream.Signature(37)), "o": Out(stream.Signature(37))})

        def elaborate(self, platform):
            m = Module()
            m.submodules.fifo = fifo = SyncFIFOBuffered(width=37, depth=4)
            m.d.comb += [fifo.w_data.eq(self.i.payload), fifo.w_en.eq(self.i.valid),
                         self.i.ready.eq(fifo.w_rdy), self.o.payload.eq(fifo.r_data),
                         self.o.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.o.ready)]
            return m

    ready, seed = Path(sys.argv[1]), int(sys.argv[2])
    ready.touch()
    t0 = time.monotonic()
    while len(list(ready.parent.glob("ready-*"))) < 2 and time.monotonic() - t0 < 120:
        time.sleep(0.01)                       # start both runs at once
    d = run(Fifo(), "tessera.tb.common.test_stream_fifo", name="bc_fifo", seed=seed,
            params={"width": 37, "count": 300}, replay="--seed {seed}")
    print("RUN_DIR", d)
''')


def test_concurrent_runs_get_their_own_directories(tmp_path):
    """Two processes run a design that is not built yet, at once: it is built once (the other waits
    on the build lock, then reuses it), each run has its own directory and results, the build's
    object files are trimmed, and the printed replay hint is the one passed in."""
    build = tmp_path / "build"
    env = dict(os.environ, TESSERA_BUILD=str(build))
    env.pop("WAVES", None)
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path / f"ready-{i}"), str(seed)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i, seed in enumerate((11, 12))]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out
    run_dirs = [Path(next(line for line in out.splitlines() if line.startswith("RUN_DIR")).split()[1])
                for out in outs]
    assert run_dirs[0] != run_dirs[1] and run_dirs[0].parent == run_dirs[1].parent
    build_dir = run_dirs[0].parent.parent
    assert run_dirs[0].parent == build_dir / "runs" and build_dir.parent.parent == (build / "sim").resolve()
    from cocotb_tools.runner import get_results

    words = []
    for d, seed, out in zip(run_dirs, (11, 12), outs, strict=True):
        assert get_results(d / "results.xml") == (1, 0)
        assert f"Seeding Python random module with {seed}" in (d / "sim.log").read_text()
        assert f"seed={seed} (replay with --seed {seed}); run directory {d}" in out
        words.append((d / "words.txt").read_text())
    assert words[0] != words[1] and all(w.count("\n") == 300 for w in words)
    building = [line for out in outs for line in out.splitlines() if line.startswith("[tessera] building")]
    assert building == ["[tessera] building bc_fifo under Verilator (not cached; no earlier build of it"
                        " recorded)"], outs
    assert (build_dir / ".built").exists() and not list(build_dir.rglob("*.o"))
    assert (build_dir.parent / bc.STAMP).exists()
    assert len((build / "sim" / "build_times.jsonl").read_text().splitlines()) == 1
    assert harness.last_build_seconds("bc_fifo", "-O0", build / "sim" / "build_times.jsonl") > 0


def test_waves_run_prints_the_waveform_and_failures_the_replay_hint(monkeypatch, capsys):
    """WAVES=1: the run names its VCD and the viewers; a failing run's message carries the replay
    hint it was given. (The design and testbench of tests/test_harness.py, so the builds are shared.)"""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from test_harness import _StreamFifo
    finally:
        sys.path.pop(0)
    monkeypatch.setenv("WAVES", "1")
    run_dir = harness.run(_StreamFifo(37, 4), "tessera.tb.common.test_stream_fifo", name="stream_fifo",
                          seed=12, params={"width": 37, "count": 50})
    out = capsys.readouterr().out
    assert (f"[tessera] waveform: {run_dir / 'dump.vcd'} -- open it with GTKWave (gtkwave FILE) or Surfer"
            " (surfer FILE)") in out
    assert "(replay with SEED=12)" in out and (run_dir / "dump.vcd").exists()
    monkeypatch.delenv("WAVES")
    with pytest.raises(AssertionError, match=r"\(seed=4242\); replay with --seed 4242; log .*/runs/"):
        harness.run(_StreamFifo(37, 4), "tessera.tb.common.test_stream_fifo", name="stream_fifo", seed=4242,
                    params={"width": 37, "count": 50, "corrupt": 17}, replay="--seed {seed}")
    with pytest.raises(ValueError, match="must contain"):
        harness.run(None, "tessera.tb.common.test_stream_fifo", name="stream_fifo", replay="--seed")


def test_build_line_estimate_from_build_times(tmp_path):
    log = tmp_path / "build_times.jsonl"
    log.write_text('{"name": "noc_1x1", "build_s": 18.9, "cxx_opt": "-O0"}\n'
                   '{"name": "noc_1x1", "build_s": 45.2, "cxx_opt": "-Os"}\nnot json\n')
    assert harness.last_build_seconds("noc_1x1", "-O0", log) == 18.9
    assert harness.last_build_seconds("noc_1x1", None, log) == 45.2
    assert harness.last_build_seconds("l2_small", None, log) is None
    assert harness.last_build_seconds("noc_1x1", None, tmp_path / "missing.jsonl") is None
    assert [bc.format_seconds(s) for s in (8.46, 45.2, 130)] == ["8.5 s", "45 s", "2 min 10 s"]
