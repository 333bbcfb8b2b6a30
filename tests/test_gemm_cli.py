"""`tessera gemm`: bad arguments refused before building anything, naming the argument; one run
end to end on the tiny fabric (files in, D and the report out, checked)."""

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tessera.cli.main import main
from tessera.rtl.config import preset
from tessera.runtime.gemm_map import plan_gemm
from tessera.tb.models import tile_isa
from tessera.tb.models.gemm import gemm
from tessera.tb.tensor.feed import random_bf16, random_f32, random_i32, random_int8
from tessera.tools.harness import resolve_seed

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("argv,flag", [
    (["--preset", "huge", "--m", "4", "--n", "4", "--k", "4"], "--preset"),
    (["--preset", "tiny", "--m", "0", "--n", "4", "--k", "4"], "--m"),
    (["--preset", "tiny", "--n", "4", "--k", "4"], "--m"),
    (["--preset", "tiny", "--m", "4", "--n", "4", "--k", "4", "--mem-latency", "0"], "--mem-latency"),
    (["--preset", "tiny", "--m", "4", "--n", "4", "--k", "4", "--mem-bytes-per-cycle", "-1"],
     "--mem-bytes-per-cycle"),
    (["--preset", "tiny", "--m", "4", "--n", "4", "--k", "4", "--no-multicast", "--compare-multicast"],
     "--compare-multicast"),
    (["--preset", "tiny", "--a", "/nonexistent/A.npy", "--b", "/nonexistent/B.npy"], "--a"),
])
def test_gemm_rejects_bad_arguments(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["gemm", *argv])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


def test_gemm_rejects_mismatched_arrays(tmp_path, capsys):
    np.save(tmp_path / "A.npy", np.zeros((4, 5), np.uint16))
    np.save(tmp_path / "B.npy", np.zeros((6, 3), np.uint16))
    with pytest.raises(SystemExit) as exc:
        main(["gemm", "--preset", "tiny", "--a", str(tmp_path / "A.npy"), "--b", str(tmp_path / "B.npy")])
    assert exc.value.code == 2
    assert "--b" in capsys.readouterr().err


@pytest.mark.parametrize("extra,flag", [
    (["--m", "4"], "--m"),
    (["--k", "5"], "--k"),
    (["--n", "4", "--m", "4", "--k", "4"], "--m"),
    (["--special-prob", "0.1"], "--special-prob"),
])
def test_gemm_rejects_random_data_arguments_with_files(tmp_path, extra, flag, capsys):
    """--m/--n/--k (and --special-prob) with --a/--b are an error naming the argument, not ignored."""
    np.save(tmp_path / "A.npy", np.zeros((4, 5), np.int8))
    np.save(tmp_path / "B.npy", np.zeros((5, 3), np.int8))
    with pytest.raises(SystemExit) as exc:
        main(["gemm", "--preset", "tiny", "--dtype", "int8", "--a", str(tmp_path / "A.npy"),
              "--b", str(tmp_path / "B.npy"), *extra])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


def _tessera() -> list[str]:
    script = Path(sys.executable).with_name("tessera")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tessera.cli.main"]


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny")
def test_gemm_cli_end_to_end(tmp_path):
    """``tessera gemm --preset tiny --a --b --c --dtype --out --report`` as a user runs it (a
    subprocess): D bit-exact against the golden model, every report field of the issue checked
    against the data, the plan and the other fields, and the simulation's own figures
    (``sim_seconds``, ``sim_cycles``, ``sim_cycles_per_second``). It runs on the native engine
    (the default), whose build of the tiny fabric the other fabric tests share."""
    seed = resolve_seed(None)
    r = random.Random(seed)
    rng = np.random.default_rng(seed)
    dtype = r.choice(["int8", "bf16"])
    m, n, k = r.randint(9, 31), r.randint(9, 31), r.randint(10, 40)
    print(f"tessera gemm {m}x{n}x{k} {dtype} with C, seed {seed}")
    if dtype == "bf16":
        a, b = random_bf16(rng, (m, k), 0.02, finite=True), random_bf16(rng, (k, n), 0.02, finite=True)
        c = random_f32(rng, (m, n), 0.02, finite=True)
    else:
        a, b, c = random_int8(rng, (m, k)), random_int8(rng, (k, n)), random_i32(rng, (m, n))
    for name, arr in (("A", a), ("B", b), ("C", c)):
        np.save(tmp_path / f"{name}.npy", arr)
    out, report = tmp_path / "out" / "D.npy", tmp_path / "out" / "R.json"
    cmd = _tessera() + ["gemm", "--preset", "tiny", "--a", str(tmp_path / "A.npy"), "--b",
                        str(tmp_path / "B.npy"), "--c", str(tmp_path / "C.npy"), "--dtype", dtype,
                        "--out", str(out), "--report", str(report), "--csv", str(tmp_path / "out" / "R.csv"),
                        "--mem-latency", "40",
                        "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert f"GEMM {m}x{n}x{k} {dtype}" in proc.stdout and "bit-exact" in proc.stdout, proc.stdout

    golden = gemm(a, b, c, dtype)
    d = np.load(out)
    assert d.dtype == golden.dtype and d.shape == (m, n), (d.dtype, d.shape)
    bad = np.argwhere(d != golden)
    assert not len(bad), f"{len(bad)} elements differ, first {tuple(bad[0])} (seed {seed})"

    rep = json.loads(report.read_text())
    cfg = preset("tiny")
    pes = cfg.tiles * cfg.tensor.rows * cfg.tensor.cols
    plan = plan_gemm(cfg, m, n, k, dtype, has_c=True, multicast=True)
    assert (rep["m"], rep["n"], rep["k"], rep["dtype"], rep["preset"]) == (m, n, k, dtype, "tiny")
    assert rep["bit_exact"] is True and rep["accumulate"] is True and rep["flush_errors"] == 0
    assert set(rep["tile_states"].values()) == {"DONE"}
    assert rep["plan"] == plan.summary()
    cycles = rep["cycles"]
    assert isinstance(cycles, int) and cycles >= m * n * k / pes > 0
    assert rep["macs"] == m * n * k
    assert rep["utilization"] == pytest.approx(m * n * k / (pes * cycles)) and 0 < rep["utilization"] <= 1
    compulsory = a.nbytes + b.nbytes + c.nbytes
    assert rep["compulsory_read_bytes"] == compulsory
    assert compulsory <= rep["dram_read_bytes"] <= rep["l2_misses"] * cfg.cache.line_bytes
    assert rep["dram_write_bytes"] >= d.nbytes
    assert rep["l2_hits"] >= 0 and rep["l2_misses"] > 0
    assert rep["noc_link_traversals"] > 0
    w = cfg.tile.word_bytes
    sends = [tile_isa.decode(x) for words in plan.words.values() for x in words
             if tile_isa.opcode_of(x) == 1 and tile_isa.decode(x)["mode"] == tile_isa.MODES["send"]]
    assert rep["multicast_packets"] == sum(f["rows"] * -(-f["row_bytes"] // w) for f in sends)
    assert (rep["multicast_packets"] > 0) == (plan.summary()["tiles_used"] > 1)
    busy = rep["per_tile_busy_cycles"]
    assert len(busy) == cfg.tiles and all(0 <= x <= cycles for x in busy)
    assert sum(busy) >= m * n * k / (cfg.tensor.rows * cfg.tensor.cols)
    assert rep["sim_cycles"] > cycles + rep["flush_cycles"] and rep["sim_seconds"] > 0
    assert rep["sim_cycles_per_second"] == round(rep["sim_cycles"] / rep["sim_seconds"])
    assert "cycles/s (native engine;" in proc.stdout and "legend" in proc.stdout, proc.stdout
    # issue 17: the provenance and the L2's whole story in the report; the CSV beside the JSON
    assert rep["seed"] == seed and rep["config"]["name"] == "tiny" and rep["commit"]
    assert rep["wall_seconds"] > 0
    assert rep["l2_hits"] + rep["l2_misses"] + rep["l2_secondary_misses"] == rep["l2_requests"]
    assert rep["flush_cycles"] > 0 and rep["input_conversion"] == [] and rep["engine"] == "native"
    head, row = (tmp_path / "out" / "R.csv").read_text().splitlines()
    fields = dict(zip(head.split(","), row.split(","), strict=True))
    assert int(fields["cycles"]) == cycles and fields["seed"] == str(seed) and fields["bit_exact"] == "True"


def test_sim_gemm_workload_seed(monkeypatch, capsys):
    """`tessera sim` (gemm workload) uses the seed its help names (1 unless --seed) and prints it."""
    from tessera.cli import cmd_gemm

    seen = []
    monkeypatch.setattr(cmd_gemm, "run", lambda args: seen.append(args) or 0)
    assert main(["sim", "--preset", "tiny", "--size", "12"]) == 0
    assert main(["sim", "--preset", "tiny", "--size", "12", "--seed", "7"]) == 0
    assert [(a.seed, a.m, a.n, a.k) for a in seen] == [(1, 12, 12, 12), (7, 12, 12, 12)]
    out = capsys.readouterr().out
    assert "seed 1" in out and "seed 7" in out, out
