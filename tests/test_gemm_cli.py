"""`tessera gemm` refuses bad arguments before building anything, naming the argument."""

import numpy as np
import pytest

from sim.cli import main


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
