"""`tessera bench tensor`: a short 8 x 8 run (random data and given matrices) and bad arguments."""

import json

import numpy as np
import pytest

from tessera.cli.main import main
from tessera.tb.models.gemm import gemm, scalesim_os_cycles


# Same Verilator build (name, text, g++ options) as tests/test_tensor_core.py::test_core_8x8_default_one_run:
# one group, so one worker builds it once.
@pytest.mark.xdist_group(name="tensor_8x8")
def test_bench_8x8_random_and_files(tmp_path):
    out = tmp_path / "r.json"
    assert main(["bench", "tensor", "--preset", "default", "--m", "20", "--n", "19", "--k", "24",
                 "--dtype", "bf16", "--seed", "3", "--special-prob", "0.05", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["bit_exact"] and (r["rows"], r["cols"]) == (8, 8)
    assert r["macs"] == 20 * 19 * 24
    assert r["utilization"] == pytest.approx(r["macs"] / (64 * r["cycles"]))
    assert r["scalesim_os_cycles"] == scalesim_os_cycles(20, 19, 24, 8, 8)
    assert r["ratio_to_scalesim"] == pytest.approx(r["cycles"] / r["scalesim_os_cycles"])
    # 9 blocks = 3 groups of 3 blocks x 24 steps, plus fill and drain: a cycle bound the core meets
    assert 3 * 3 * 24 <= r["cycles"] <= 3 * 3 * 24 + 80

    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (9, 17)).astype(np.int8)
    b = rng.integers(-128, 128, (17, 10)).astype(np.int8)
    c = rng.integers(-2**31, 2**31, (9, 10)).astype(np.int32)
    for name, arr in (("A", a), ("B", b), ("C", c)):
        np.save(tmp_path / f"{name}.npy", arr)
    assert main(["bench", "tensor", "--preset", "default", "--dtype", "int8", "--a", str(tmp_path / "A.npy"),
                 "--b", str(tmp_path / "B.npy"), "--c", str(tmp_path / "C.npy"),
                 "--out", str(tmp_path / "D.npy")]) == 0
    d = np.load(tmp_path / "D.npy")
    assert d.dtype == np.int32 and (d == gemm(a, b, c, "int8")).all()


@pytest.mark.parametrize("argv,flag", [
    (["--m", "0", "--n", "4", "--k", "4"], "--m"),
    (["--m", "4", "--n", "4", "--k", "5000"], "--k"),
    (["--m", "4", "--n", "4"], "--k"),
    (["--m", "4", "--n", "4", "--k", "4", "--rows", "0"], "--rows"),
    (["--m", "4", "--n", "4", "--k", "4", "--preset", "huge"], "--preset"),
])
def test_bench_bad_arguments(argv, flag, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "tensor", *argv])
    assert e.value.code == 2
    assert flag in capsys.readouterr().err
