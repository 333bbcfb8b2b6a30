"""``tessera vector`` and the cocotb bench of the vector engine (``tb/vector/bench.py``) under
Verilator: bad arguments refused before anything is built, naming the flag; a few operations end to
end (output file and report checked against the numerics model); random VECTORs with random
competing traffic on the memories, bit-exact against ``tb/models/vector_exec.py``.

Every Verilator run here uses the one build of ``VectorTop`` for ``tiny`` with special functions
(``vector_top_tiny_sfu``), so they share an xdist group."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tessera.cli.main import main
from tessera.rtl.config import preset
from tessera.runtime.vector_programs import with_sfu
from tessera.tb.models import vector as v
from tessera.tb.vector import jobs as vjobs
from tessera.tools import harness
from tessera.tools.harness import resolve_seed

GROUP = "vector_top_tiny_sfu"


def _tessera() -> list[str]:
    script = Path(sys.executable).with_name("tessera")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tessera.cli.main"]


@pytest.fixture
def nothing_built(monkeypatch):
    """Fails the test if anything is exported, built or simulated."""
    def refuse(*a, **k):
        raise AssertionError("built or simulated before the arguments were checked")
    monkeypatch.setattr(harness, "build", refuse)
    monkeypatch.setattr(harness, "export_verilog", refuse)
    monkeypatch.setattr(vjobs, "run_jobs", refuse)


@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(0)
    def save(name, a):
        path = tmp_path / name
        np.save(path, a)
        return str(path)
    return {
        "x": save("x.npy", np.float32(rng.normal(0, 1, (4, 8)))),
        "y": save("y.npy", np.float32(rng.normal(0, 1, (4, 8)))),
        "row": save("row.npy", np.float32(rng.normal(0, 1, 8))),
        "i32": save("i32.npy", rng.integers(-1000, 1000, (4, 8), dtype=np.int32)),
        "f64": save("f64.npy", rng.normal(0, 1, (4, 8))),
        "one_d": save("one_d.npy", np.float32(rng.normal(0, 1, 8))),
        "big": save("big.npy", np.zeros((32, 32), np.float32)),       # 4 KiB: x fills tiny's accumulator
        "out": str(tmp_path / "o.npy"),
    }


@pytest.mark.parametrize("argv,flag,words", [
    (["--op", "frobnicate"], "--op", "unknown operation"),
    (["--op", "softmax", "--x", "{x}", "--y", "{y}"], "--y", "softmax takes no second operand"),
    (["--op", "softmax", "--x", "{x}", "--eps", "0.1"], "--eps", "only for layernorm"),
    (["--op", "layernorm", "--x", "{x}", "--gamma", "{y}"], "--gamma", "needs (8,)"),
    (["--op", "layernorm", "--x", "{x}", "--eps", "-1"], "--eps", "finite value >= 0"),
    (["--op", "layernorm", "--x", "{x}", "--relu"], "--relu", "not for layernorm"),
    (["--op", "softmax", "--x", "{big}"], "--x", "need 4352 bytes"),
    (["--op", "exp", "--x", "{x}", "--scalar", "1"], "--scalar", "no second operand"),
    (["--op", "gelu", "--x", "{x}", "--accumulator-kib", "3"], "--accumulator-kib", "power of two"),
    (["--op", "add", "--x", "{x}"], "--y", "needs one second operand"),
    (["--op", "add", "--x", "{x}", "--y", "{y}", "--scalar", "1"], "--scalar", "not both"),
    (["--op", "add_row", "--x", "{x}"], "--y", "(cols,)"),
    (["--op", "add_row", "--x", "{x}", "--y", "{y}"], "--y", "needs (8,)"),
    (["--op", "add", "--x", "{x}", "--y", "{row}"], "--y", "needs (4, 8)"),
    (["--op", "add", "--x", "{one_d}", "--scalar", "1"], "--x", "2-D"),
    (["--op", "add", "--x", "{f64}", "--scalar", "1"], "--x", "float64"),
    (["--op", "iadd", "--x", "{x}", "--scalar", "1"], "--x", "float32"),
    (["--op", "mul", "--x", "{x}", "--scalar", "one"], "--scalar", "not a decimal"),
    (["--op", "relu", "--x", "{x}", "--y", "{y}"], "--y", "no second operand"),
    (["--op", "requant", "--x", "{i32}"], "--scale", "needs one scale"),
    (["--op", "add", "--x", "{x}", "--scalar", "1", "--transpose"], "--transpose", "only for"),
    (["--op", "add", "--x", "{big}", "--scalar", "1"], "--x",
     "4096 bytes) + the output (4096 bytes) = 8192 bytes"),
    (["--op", "add", "--x", "{x}", "--scalar", "1", "--preset", "huge"], "--preset", "unknown preset"),
    (["--op", "add", "--x", "/nonexistent/x.npy", "--scalar", "1"], "--x", "cannot read"),
    (["--op", "add", "--x", "{x}", "--scalar", "1", "--seed", "-1"], "--seed", "out of range"),
])
def test_vector_rejects_bad_arguments(argv, flag, words, arrays, nothing_built, capsys):
    argv = [a.format(**arrays) for a in argv]
    if "--x" not in argv:
        argv += ["--x", arrays["x"]]
    with pytest.raises(SystemExit) as exc:
        main(["vector", *argv, "--out", arrays["out"]])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {flag}" in err and words in err, err
    assert not Path(arrays["out"]).exists()


@pytest.mark.xdist_group(GROUP)
def test_vector_cli_end_to_end(tmp_path):
    """``tessera vector --op add --y --report`` as a user runs it (a subprocess), then requant per
    column with relu, transposed, and rowsum in process: outputs against tb/models/vector.py."""
    rng = np.random.default_rng(7)
    x, y = np.float32(rng.normal(0, 3, (5, 12))), np.float32(rng.normal(0, 3, (5, 12)))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    cmd = _tessera() + ["vector", "--op", "add", "--x", str(tmp_path / "x.npy"),
                        "--y", str(tmp_path / "y.npy"), "--out", str(tmp_path / "d.npy"),
                        "--report", str(tmp_path / "r.json"), "--seed", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bit-exact" in proc.stdout
    d = np.load(tmp_path / "d.npy")
    assert d.dtype == np.uint32 and d.shape == (5, 12)
    assert np.array_equal(d, v.add(x.view(np.uint32), y.view(np.uint32)))
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["op"] == "add" and rep["shape"] == [5, 12] and rep["preset"] == "tiny_sfu" and rep["seed"] == 3
    assert rep["bit_exact"] is True and rep["cycles"] > 60 // 4
    assert rep["elements_per_cycle"] == pytest.approx(60 / rep["cycles"], rel=1e-3)
    assert rep["elements_per_lane_per_cycle"] == pytest.approx(60 / rep["cycles"] / 4, rel=1e-3)

    acc = rng.integers(-5000, 5000, (6, 9), dtype=np.int32)
    scale = np.float32(rng.uniform(0.001, 0.05, 9))
    np.save(tmp_path / "acc.npy", acc)
    np.save(tmp_path / "s.npy", scale)
    assert main(["vector", "--op", "requant", "--x", str(tmp_path / "acc.npy"),
                 "--scale", str(tmp_path / "s.npy"), "--relu", "--transpose",
                 "--out", str(tmp_path / "q.npy"), "--seed", "4"]) == 0
    q = np.load(tmp_path / "q.npy")
    assert q.dtype == np.int8 and q.shape == (9, 6)
    assert np.array_equal(q, v.requant(acc, scale.view(np.uint32)[None, :], relu_out=True).T)

    assert main(["vector", "--op", "rowsum", "--x", str(tmp_path / "x.npy"), "--out", str(tmp_path / "s.npy"),
                 "--seed", "5"]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.dtype == np.uint32 and s.shape == (5,)
    assert np.array_equal(s, v.rowsum(x.view(np.uint32)))

    assert main(["vector", "--op", "gelu", "--x", str(tmp_path / "x.npy"), "--out", str(tmp_path / "g.npy"),
                 "--seed", "6"]) == 0
    assert np.array_equal(np.load(tmp_path / "g.npy"), v.gelu(x.view(np.uint32)))


def _program_ref(op: str, x: np.ndarray, gamma=None, beta=None, eps: float = 1e-5) -> np.ndarray:
    """softmax / layernorm step by step with tb/models/vector.py, written here from docs/vector.md
    ("Composite operations"), independently of the runtime's VECTOR programs."""
    def f32(value):
        return np.array(np.float32(value).view(np.uint32))
    rows, cols = x.shape
    if op == "softmax":
        e = v.exp(v.sub(x, v.rowmax(x)[:, None]))
        return v.mul(e, v.recip(v.rowsum(e))[:, None])
    mean = v.mul(v.rowsum(x), f32(1.0 / cols))
    d = v.sub(x, mean[:, None])
    r = v.rsqrt(v.add(v.mul(v.rowsum(v.mul(d, d)), f32(1.0 / cols)), f32(eps)))
    return v.add(v.mul(v.mul(d, r[:, None]), gamma[None, :]), beta[None, :])


@pytest.mark.xdist_group(GROUP)
@pytest.mark.parametrize("op,shape", [("softmax", (3, 1)), ("softmax", (7, 45)), ("softmax", (1, 1016)),
                                      ("layernorm", (1, 1)), ("layernorm", (6, 37)), ("layernorm", (1, 336))])
def test_vector_cli_programs(op, shape, tmp_path):
    """``tessera vector --op softmax | layernorm``: the engine's output equals the contract's steps
    (tb/models/vector.py) bit for bit and is close to float64 (report); rows from 1 element up to the
    longest that fit `tiny`'s 4 KiB of accumulators with their statistics (1016, 336)."""
    rng = np.random.default_rng(sum(shape))
    x = np.float32(rng.normal(0, 4, shape))
    np.save(tmp_path / "x.npy", x)
    argv = ["vector", "--op", op, "--x", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.npy"),
            "--report", str(tmp_path / "r.json"), "--seed", "2"]
    gamma, beta = np.float32(rng.normal(1, 0.3, shape[1])), np.float32(rng.normal(0, 0.3, shape[1]))
    if op == "layernorm":
        np.save(tmp_path / "g.npy", gamma)
        np.save(tmp_path / "b.npy", beta)
        argv += ["--gamma", str(tmp_path / "g.npy"), "--beta", str(tmp_path / "b.npy"), "--eps", "0.001"]
    assert main(argv) == 0
    out = np.load(tmp_path / "o.npy")
    want = _program_ref(op, x.view(np.uint32), gamma.view(np.uint32), beta.view(np.uint32), 0.001)
    assert out.dtype == np.uint32 and np.array_equal(out, want)
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["bit_exact"] is True and rep["vectors"] == (5 if op == "softmax" else 9)
    assert rep["max_abs_error_vs_float64"] < (1e-6 if op == "softmax" else 2e-3)


@pytest.mark.randomized
@pytest.mark.xdist_group(GROUP)
def test_vector_bench_random_jobs():
    """20 random VECTORs (shapes, operations, operand modes, special functions, formats, in place or
    not) back to back with random competing DMA traffic on both memories (per job 0, 20, 50 or
    80 %), whole memories compared with the instruction model."""
    cfg = with_sfu(preset("tiny"))
    seed = resolve_seed(None)
    jobs = vjobs.random_jobs(cfg, 20, seed)
    results = vjobs.run_jobs(cfg, jobs, seed=seed)
    bad = [r["mismatch"] for r in results if not r["bit_exact"]]
    assert not bad, f"seed {seed}: " + "\n".join(bad)
