"""The user's side (issue 17): the Python API, the input formats, the cost model and its guard,
outputs checked before any work, and runs that can go on side by side.

The fast tests build nothing: every check they exercise happens before the export. The fabric
tests share the native build of the tiny fabric with the other fabric tests."""

import io
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import tessera
from tessera.cli import cmd_gemm
from tessera.cli.main import main
from tessera.rtl.config import preset
from tessera.runtime.gemm_inputs import f32_to_bf16_bits, load_array, operands
from tessera.runtime.random_data import random_bf16
from tessera.runtime.vector_programs import with_sfu
from tessera.tb.models import vector as vector_model
from tessera.tb.models.gemm import gemm
from tessera.tools import fabric_run
from tessera.tools.harness import resolve_seed
from tessera.tools.progress import Progress

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- input formats (no simulation)

def test_float32_to_bf16_is_round_to_nearest_even():
    """The conversion agrees with ml_dtypes (RNE) on every non-NaN pattern drawn, ties go to even,
    overflow goes to infinity, and every NaN becomes the canonical 0x7FC0."""
    rng = np.random.default_rng(17)
    x = rng.integers(0, 1 << 32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    ok = ~np.isnan(x)
    with np.errstate(invalid="ignore"):
        ref = x.astype(ml_dtypes.bfloat16).view(np.uint16)
    assert np.array_equal(f32_to_bf16_bits(x)[ok], ref[ok])
    assert set(f32_to_bf16_bits(x)[~ok].tolist()) == {0x7FC0}
    ties = np.array([0x3F808000, 0x3F818000, 0x7F7FFFFF, 0x00008000], np.uint32).view(np.float32)
    assert f32_to_bf16_bits(ties).tolist() == [0x3F80, 0x3F82, 0x7F80, 0x0000]


def test_operands_accept_the_documented_formats():
    rng = np.random.default_rng(3)
    a32 = rng.standard_normal((5, 7), dtype=np.float32)
    b16 = rng.standard_normal((7, 3)).astype(ml_dtypes.bfloat16)
    c32 = rng.standard_normal((5, 3), dtype=np.float32)
    a, b, c, dtype, notes = operands(a32, b16, c32)
    assert dtype == "bf16" and a.dtype == np.uint16 and b.dtype == np.uint16 and c.dtype == np.uint32
    assert np.array_equal(a, f32_to_bf16_bits(a32)) and np.array_equal(b, b16.view(np.uint16))
    assert np.array_equal(c.view(np.float32), c32)
    assert len(notes) == 1 and notes[0].startswith("a: float32 -> BF16, round to nearest even")
    i8 = rng.integers(-128, 128, (4, 4), dtype=np.int8)
    *_, dtype, notes = operands(i8, i8, np.zeros((4, 4), np.int32))
    assert dtype == "int8" and notes == []


@pytest.mark.parametrize("a,b,c,dtype,flag,words", [
    (np.zeros((2, 2), np.float64), np.zeros((2, 2), np.float32), None, None, "--a", "astype(np.float32)"),
    (np.zeros((2, 2), np.int16), np.zeros((2, 2), np.int16), None, None, "--a", "int8"),
    (np.zeros((2, 2), np.int8), np.zeros((2, 2), np.float32), None, None, "--b", "both int8"),
    (np.zeros((2, 2), np.int8), np.zeros((2, 2), np.int8), None, "bf16", "--dtype", "does not match"),
    (np.zeros((2, 3), np.float32), np.zeros((2, 2), np.float32), None, None, "--b", "rows"),
    (np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32), np.zeros((2, 2), np.int32), None, "--c",
     "float32 or uint32"),
    (np.zeros((2, 2), np.int8), np.zeros((2, 2), np.int8), np.zeros((2, 2), np.float32), None, "--c",
     "int32"),
    (np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32), np.zeros((3, 2), np.float32), None, "--c",
     "shape"),
    (np.zeros(4, np.float32), np.zeros((2, 2), np.float32), None, None, "--a", "2-D"),
])
def test_operands_errors_name_the_argument_and_the_formats(a, b, c, dtype, flag, words):
    with pytest.raises(ValueError) as e:
        operands(a, b, c, dtype)
    assert str(e.value).startswith(flag + ":") and words in str(e.value), e.value


def test_load_array_npy_npz_and_errors(tmp_path):
    x = np.arange(6, dtype=np.int8).reshape(2, 3)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "one.npz", a=x)
    np.savez(tmp_path / "two.npz", a=x, b=x + 1)
    bf = np.ones((2, 2), ml_dtypes.bfloat16)
    np.save(tmp_path / "bf.npy", bf)                     # reads back as two-byte void
    assert np.array_equal(load_array(tmp_path / "x.npy", "--a"), x)
    assert np.array_equal(load_array(tmp_path / "one.npz", "--a"), x)
    assert np.array_equal(load_array(f"{tmp_path / 'two.npz'}:b", "--a"), x + 1)
    a, *_ = operands(load_array(tmp_path / "bf.npy", "--a"), bf)
    assert np.array_equal(a, bf.view(np.uint16))
    good = (tmp_path / "one.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])               # truncated archive
    (tmp_path / "bad.npz").write_bytes(good.replace(x.tobytes(), bytes(6)))  # member fails its CRC
    for spec, words in ((tmp_path / "cut.npz", "cannot read"), (tmp_path / "bad.npz", "cannot read"),
                        (tmp_path / "two.npz", "name one"), (f"{tmp_path / 'two.npz'}:z", "no array 'z'"),
                        (tmp_path / "x.txt", "not a .npy or .npz"), (tmp_path / "none.npy", "cannot read")):
        with pytest.raises(ValueError) as e:
            load_array(spec, "--b")
        assert str(e.value).startswith("--b:") and words in str(e.value), e.value


# ------------------------------------------------------ the command line before it builds anything

@pytest.fixture
def no_build(monkeypatch):
    """Fail the test if anything is exported, built or simulated."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the command started to export, build or simulate")

    for name in ("run_jobs", "native_library", "fabric_verilog_cached"):
        monkeypatch.setattr(fabric_run, name, forbidden)
    monkeypatch.setattr(fabric_run, "build_state", lambda cfg, **kw: {"verilog": True, "built": True})


def _bad(argv, flag, capsys, words=""):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert f"error: {flag}:" in err and words in err and "Traceback" not in err, err
    return err


def test_gemm_checks_outputs_before_any_work(tmp_path, capsys, no_build):
    """--out / --json / --csv that cannot be written fail at once, naming the flag."""
    afile = tmp_path / "a_file"
    afile.write_text("x")
    base = ["gemm", "--preset", "tiny", "--m", "8", "--n", "8", "--k", "8"]
    _bad(base + ["--out", str(tmp_path)], "--out", capsys, "directory")
    _bad(base + ["--out", str(tmp_path / "D")], "--out", capsys, ".npy")
    _bad(base + ["--out", str(afile / "D.npy")], "--out", capsys, "is a file")
    _bad(base + ["--json", str(tmp_path)], "--json", capsys, "directory")
    _bad(base + ["--report", str(afile / "r.json")], "--json", capsys)
    _bad(base + ["--csv", str(tmp_path / "r.txt")], "--csv", capsys, ".csv")


@pytest.mark.parametrize("extra,flag,words", [
    (["--seed", "-3"], "--seed", "out of range"),
    (["--special-prob", "5"], "--special-prob", "out of range"),
    (["--mem-latency", "0"], "--mem-latency", "out of range"),
    (["--mem-bytes-per-cycle", "nan"], "--mem-bytes-per-cycle", "positive"),
    (["--dtype", "int8", "--special-prob", "0.1"], "--special-prob", "BF16"),
    (["--c", "C.npy"], "--c", "random"),
])
def test_gemm_rejects_bad_numbers_naming_the_flag(extra, flag, words, capsys, no_build):
    _bad(["gemm", "--preset", "tiny", "--m", "8", "--n", "8", "--k", "8", *extra], flag, capsys, words)


def test_gemm_size_limit_in_user_terms(capsys, no_build):
    err = _bad(["gemm", "--preset", "tiny", "--m", "40000", "--n", "40000", "--k", "16", "--dtype", "int8"],
               "--m", capsys, "of fabric memory")
    assert "GiB" in err and "addresses 4.0 GiB" in err, err


def test_gemm_file_inputs_errors(tmp_path, capsys, no_build):
    np.save(tmp_path / "A64.npy", np.zeros((4, 4)))
    np.save(tmp_path / "B.npy", np.zeros((4, 4), np.float32))
    np.savez(tmp_path / "AB.npz", a=np.zeros((4, 4), np.float32), b=np.zeros((4, 4), np.float32))
    base = ["gemm", "--preset", "tiny", "--b", str(tmp_path / "B.npy")]
    _bad(base + ["--a", str(tmp_path / "A64.npy")], "--a", capsys, "float64")
    _bad(base + ["--a", str(tmp_path / "AB.npz")], "--a", capsys, "name one")
    _bad(base + ["--a", str(tmp_path / "B.npy"), "--dtype", "int8"], "--dtype", capsys, "does not match")
    _bad(base + ["--a", str(tmp_path / "B.npy"), "--c", "random"], "--c", capsys)


def test_sim_refuses_options_of_the_other_workload(capsys, no_build):
    _bad(["sim", "--preset", "tiny", "--vectors", "10"], "--vectors", capsys, "numeric workload only")
    _bad(["sim", "--preset", "tiny", "--workload", "numeric", "--size", "8"], "--size", capsys, "gemm")
    _bad(["sim", "--preset", "tiny", "--en-prob", "2"], "--en-prob", capsys)


def test_over_budget_run_is_refused_without_a_terminal(capsys, monkeypatch):
    """Above ten minutes: refused with the estimate when stdin is no terminal (unless --yes); on a
    terminal the question decides."""
    est = {"seconds": 4000.0, "sim_seconds": 3900.0, "sim_cycles_per_second": 42_000.0,
           "build": {"steps": [("native build", 100.0)], "seconds": 100.0},
           "cycles": [{"total": 163_800_000}]}
    with pytest.raises(ValueError) as e:
        cmd_gemm.confirm(est, yes=False, stdin=io.StringIO(""))
    msg = str(e.value)
    assert msg.startswith("--yes:") and "67 min" in msg and "163,800,000 cycles" in msg, msg
    cmd_gemm.confirm(est, yes=True, stdin=io.StringIO(""))

    class Tty(io.StringIO):
        def isatty(self):
            return True

    cmd_gemm.confirm(est, yes=False, stdin=Tty("y\n"), stderr=Tty())
    with pytest.raises(ValueError, match="not confirmed"):
        cmd_gemm.confirm(est, yes=False, stdin=Tty("n\n"), stderr=Tty())
    with pytest.raises(ValueError, match="no terminal"):          # output redirected: no question
        cmd_gemm.confirm(est, yes=False, stdin=Tty("y\n"), stderr=io.StringIO())
    cmd_gemm.confirm({**est, "seconds": 30.0}, yes=False, stdin=io.StringIO(""))


def test_big_gemm_is_refused_from_a_script(tmp_path):
    """The issue's own case, as a script runs it (stdin not a terminal): refused at once with the
    estimate, nothing built."""
    cmd = [str(Path(sys.executable).with_name("tessera")), "gemm", "--preset", "tiny", "--m", "4096", "--n",
           "4096", "--k", "64"]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                          cwd=tmp_path, env={**os.environ, "TESSERA_BUILD": str(tmp_path / "b")})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: --yes: the run is estimated at" in proc.stderr and "give --yes" in proc.stderr, proc.stderr
    assert "building" not in proc.stdout + proc.stderr and not (tmp_path / "b" / "native").exists()


def test_progress_writes_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    p = Progress("simulating x", 1000, every=0.0, stream=out)
    p.update(250)
    p.update(1500)                         # past the estimate: the total follows
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[tessera] simulating x: 250 of ~1,000 cycles (25%)"), lines
    assert "1,500 of ~1,500 cycles (100%)" in lines[1] and "\r" not in out.getvalue(), lines


def test_estimate_gemm_without_running():
    est = tessera.estimate_gemm(4096, 4096, 64, preset="tiny")
    assert est["cycles"]["total"] > 4096 * 4096 * 64 / 64 and est["seconds"] > 600
    assert set(est["build"]) == {"steps", "seconds"}
    with pytest.raises(ValueError, match="^m:"):
        tessera.estimate_gemm(0, 1, 1)
    with pytest.raises(ValueError, match="^preset:"):
        tessera.estimate_gemm(1, 1, 1, preset="huge")


def test_api_rejects_bad_arguments_before_building(no_build):
    a = np.zeros((4, 4), np.float32)
    for kwargs, name in (({"preset": "huge"}, "preset"), ({"mem_latency": 0}, "mem_latency"),
                         ({"seed": -1}, "seed"), ({"engine": "fpga"}, "engine"),
                         ({"mem_bytes_per_cycle": 0}, "mem_bytes_per_cycle"), ({"dtype": "int8"}, "dtype")):
        with pytest.raises(ValueError) as e:
            tessera.run_gemm(a, a, **kwargs)
        assert str(e.value).startswith(name + ":"), e.value
    with pytest.raises(ValueError, match="^max_seconds:"):
        tessera.run_gemm(np.zeros((4096, 64), np.float32), np.zeros((64, 4096), np.float32), max_seconds=60)


def test_epilogue_errors_before_building(no_build):
    a = np.zeros((4, 4), np.float32)
    cases = [({"act": "gelu"}, "^act: 'gelu' needs the vector engine's special functions, and fabric 'tiny'"
                               " is built without them"),
             ({"act": "tanh"}, "^act: 'tanh' is not allowed"),
             ({"bias": np.zeros(3, np.float32)}, r"^bias: shape \(3,\); .*\(4,\)"),
             ({"bias": np.zeros(4)}, "^bias: float64 is not accepted.*astype"),
             ({"bias": np.zeros(4, np.float32), "dtype": "int8"}, None)]
    for kwargs, pattern in cases:
        x = a.astype(np.int8) if kwargs.get("dtype") == "int8" else a
        kwargs.pop("dtype", None)
        with pytest.raises(ValueError, match=pattern or "^bias: the epilogue .* needs a BF16 GEMM"):
            tessera.run_gemm(x, x, **kwargs)


# ------------------------------------------------------------------ on the fabric (tiny, native)

@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny")
def test_run_gemm_from_float32_is_bit_exact(tmp_path):
    """``tessera.run_gemm`` on float32 A, B and C: D equals the golden model on the RNE-rounded
    inputs, the report says so, carries the seed, configuration, commit and conversion, and the
    cost model's estimate of the cycles is within a factor 1.5 of the measured ones."""
    seed = resolve_seed(None)
    r = random.Random(seed)
    rng = np.random.default_rng(seed)
    m, n, k = r.randint(5, 40), r.randint(5, 40), r.randint(5, 60)
    a = rng.standard_normal((m, k), dtype=np.float32) * np.float32(r.choice([1, 1e-30, 1e30]))
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = rng.standard_normal((m, n), dtype=np.float32)
    print(f"run_gemm {m}x{n}x{k} float32, seed {seed}")
    res = tessera.run_gemm(a, b, c, seed=seed)
    golden = gemm(f32_to_bf16_bits(a), f32_to_bf16_bits(b), c.view(np.uint32), "bf16")
    assert res.d.dtype == np.float32 and res.d.shape == (m, n)
    assert np.array_equal(res.bits, golden) and res.bit_exact and res.ok
    assert np.array_equal(res.d.view(np.uint32), golden)
    assert np.array_equal(tessera.reference_gemm(a, b, c).view(np.uint32), golden)
    rep = res.report
    got = (rep["m"], rep["n"], rep["k"], rep["dtype"], rep["preset"], rep["seed"])
    assert got == (m, n, k, "bf16", "tiny", seed), got
    assert rep["config"]["name"] == "tiny" and rep["commit"] and rep["wall_seconds"] > 0
    assert [s.split(":")[0] for s in rep["input_conversion"]] == ["a", "b"]
    assert rep["l2_hits"] + rep["l2_misses"] + rep["l2_secondary_misses"] == rep["l2_requests"]
    assert 1 / 1.5 <= rep["estimate"]["sim_cycles"] / rep["sim_cycles"] <= 1.5, rep["estimate"]
    assert "run_dir" not in rep


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny")
@pytest.mark.parametrize("shape, c, act", [((20, 28, 24), False, "relu"), ((37, 97, 41), True, "relu"),
                                           ((30, 50, 20), False, "none")])
def test_run_gemm_with_epilogue_is_bit_exact(shape, c, act):
    """D = act(A x B [+ C] + bias) with the epilogue on the tiles' vector engines: bit-exact
    against the golden GEMM followed by the vector model's add and relu. 37 x 97 x 41 with C runs
    several rounds with two accumulator buffers (each with its bias slice after the output tile),
    multicast and unicast."""
    seed = resolve_seed(None)
    rng = np.random.default_rng(seed)
    m, n, k = shape
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    cc = rng.standard_normal((m, n), dtype=np.float32) if c else None
    bias = rng.standard_normal(n, dtype=np.float32)
    print(f"run_gemm {m}x{n}x{k} bias + {act}, seed {seed}")
    for mc in (True, False):
        res = tessera.run_gemm(a, b, cc, bias=bias, act=act, multicast=mc, seed=seed)
        d = gemm(f32_to_bf16_bits(a), f32_to_bf16_bits(b), None if cc is None else cc.view(np.uint32), "bf16")
        want = vector_model.add(d, bias.view(np.uint32)[None, :])
        want = vector_model.relu(want) if act == "relu" else want
        assert res.bit_exact and np.array_equal(res.bits, want), f"seed {seed}, multicast {mc}"
        assert res.report["epilogue"] == {"bias": True, "act": act}
        if act == "relu":
            assert (res.d >= 0).all()


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny_sfu")
def test_run_gemm_with_gelu_epilogue_is_bit_exact():
    """D = gelu(A x B + C + bias) on ``tiny`` with the vector engines' special functions
    (``with_sfu``: its own build, the special-function unit written once as a module): bit-exact
    against the golden GEMM followed by the vector model's add and gelu, over several rounds with
    multicast. The special values of gelu's range (large |x|, the tail below -3) come from the
    scaled operands."""
    seed = resolve_seed(None)
    rng = np.random.default_rng(seed)
    m, n, k = 26, 45, 19
    a = rng.standard_normal((m, k), dtype=np.float32) * np.float32(2)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = rng.standard_normal((m, n), dtype=np.float32)
    bias = rng.standard_normal(n, dtype=np.float32)
    print(f"run_gemm {m}x{n}x{k} + C + bias, gelu on tiny_sfu, seed {seed}")
    res = tessera.run_gemm(a, b, c, bias=bias, act="gelu", preset=with_sfu(preset("tiny")), seed=seed)
    d = gemm(f32_to_bf16_bits(a), f32_to_bf16_bits(b), c.view(np.uint32), "bf16")
    pre = vector_model.add(d, bias.view(np.uint32)[None, :])
    want = vector_model.gelu(pre)
    assert res.ok and np.array_equal(res.bits, want), f"seed {seed}"
    assert res.report["epilogue"] == {"bias": True, "act": "gelu"} and res.report["preset"] == "tiny_sfu"
    x = pre.view(np.float32)
    assert (x < -3).any() and (x > 3).any(), "the data did not reach gelu's outer ranges"


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny")
def test_two_concurrent_runs_of_the_same_design(tmp_path):
    """Two ``tessera gemm`` processes of the very same GEMM (design, shape, data) at the same time,
    as a sweep runs them: each works in a folder of its own (``--keep`` leaves them to compare),
    both finish bit-exact with their own D, JSON and CSV."""
    seed = resolve_seed(None)
    rng = np.random.default_rng(seed)
    m, n, k = (int(x) for x in rng.integers(8, 40, 3))
    fabric_run.native_library(preset("tiny"))      # built once, before both start
    procs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        cmd = [str(Path(sys.executable).with_name("tessera")), "gemm", "--preset", "tiny", "--m", str(m),
               "--n", str(n), "--k", str(k), "--seed", str(seed), "--keep", "--out", str(out / "D.npy"),
               "--json", str(out / "r.json"), "--csv", str(out / "r.csv")]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, stdin=subprocess.DEVNULL))
    rng = np.random.default_rng(seed)
    golden = gemm(random_bf16(rng, (m, k)), random_bf16(rng, (k, n)), None, "bf16")
    folders = []
    for i, p in enumerate(procs):
        log, _ = p.communicate(timeout=600)
        assert p.returncode == 0, log
        rep = json.loads((tmp_path / f"run{i}" / "r.json").read_text())
        assert rep["bit_exact"] and rep["seed"] == seed, rep
        folders.append(Path(rep["run_dir"]))
        job = folders[-1] / "multicast"
        assert (job / "D.npy").exists() and (job / "A.npy").exists(), job
        rows = (tmp_path / f"run{i}" / "r.csv").read_text().splitlines()
        assert len(rows) == 2 and rows[0].startswith("preset,m,n,k,dtype"), rows
        assert np.array_equal(np.load(tmp_path / f"run{i}" / "D.npy"), golden), f"run {i}"
    assert folders[0] != folders[1], folders
    for f in folders:
        shutil.rmtree(f)


@pytest.mark.xdist_group("fabric_tiny")
def test_gemm_waves_writes_a_vcd_and_keeps_it(tmp_path):
    """``tessera gemm --waves``: a build with tracing, a VCD at the printed path (kept with its
    run folder), the viewers named, and the same cycles as without tracing."""
    cmd = [str(Path(sys.executable).with_name("tessera")), "gemm", "--preset", "tiny", "--m", "8", "--n", "8",
           "--k", "8", "--waves", "--json", str(tmp_path / "r.json")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    vcd = Path(rep["vcd"])
    assert f"waveform: {vcd} -- open it with GTKWave (gtkwave FILE) or Surfer (surfer FILE)" in proc.stdout
    head = vcd.read_text()[:2000]
    assert "$timescale" in head and "$var" in head and vcd.parent.parent == Path(rep["run_dir"]), head
    plain = tessera.run_gemm(*(random_bf16(np.random.default_rng(1), s) for s in ((8, 8), (8, 8))))
    assert rep["cycles"] == plain.report["cycles"] and rep["bit_exact"]
    shutil.rmtree(rep["run_dir"])
