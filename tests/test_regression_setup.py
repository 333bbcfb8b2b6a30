"""The regression's own machinery: tests marked with one ``xdist_group`` run on one worker.

`make test` runs ``pytest -n 2 --dist loadgroup``; the fabric and tensor-core tests share their
Verilator build through a group (a 90-second build of the tiny fabric, otherwise done twice).
"""

import subprocess
import sys
import textwrap


def test_xdist_group_keeps_a_group_on_one_worker(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text(textwrap.dedent('''
        import os
        import time

        import pytest

        def _log(name):
            with open(os.path.join(os.path.dirname(__file__), name + ".worker"), "w") as f:
                f.write(os.environ["PYTEST_XDIST_WORKER"])
            time.sleep(0.3)

        @pytest.mark.xdist_group("g")
        @pytest.mark.parametrize("i", range(4))
        def test_grouped(i):
            _log(f"grouped{i}")

        @pytest.mark.parametrize("i", range(4))
        def test_free(i):
            _log(f"free{i}")
    '''))
    res = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
                          "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(probe)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    workers = {p.stem: p.read_text() for p in tmp_path.glob("*.worker")}
    assert len(workers) == 8, workers
    grouped = {w for name, w in workers.items() if name.startswith("grouped")}
    assert len(grouped) == 1, f"one xdist_group ran on several workers: {workers}"


def test_golden_models_do_not_import_the_design():
    """tb/models/ is independent of rtl/ (and of sim/, which imports rtl/): a model derived from
    the design would check nothing. Every import, at any depth of the file, is looked at."""
    import ast
    from pathlib import Path

    models = Path(__file__).resolve().parent.parent / "tb" / "models"
    files = sorted(models.glob("*.py"))
    assert len(files) >= 5, files
    offenders = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}:{node.lineno} imports {n}" for n in names
                          if n.split(".")[0] in ("rtl", "sim", "synth", "amaranth")]
    assert not offenders, offenders
