"""The regression's own machinery: tests marked with one ``xdist_group`` run on one worker.

`make test` runs ``pytest -n 2 --dist loadgroup``; the fabric and tensor-core tests share their
Verilator build through a group (a 90-second build of the tiny fabric, otherwise done twice).
"""

import json
import re
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
                          if n.split(".")[0] == "amaranth"
                          or n.startswith("tessera") and not n.startswith("tessera.tb.models")]
    assert not offenders, offenders


# The layers of the package (README "Layout"): a module may import its own layer and those below.
LAYERS = {"tessera.rtl": 0, "tessera.runtime": 1, "tessera.tools": 2, "tessera.synth": 2, "tessera.api": 3,
          "tessera.cli": 3}
# tessera.tb (verification) may import layers 0-2; of the command line, only the commands that run
# testbenches or check against the golden models import it.
TB_USERS = {"tessera.api", "tessera.cli.bench_cache", "tessera.cli.bench_noc", "tessera.cli.bench_sim",
            "tessera.cli.bench_faults", "tessera.cli.bench_tensor", "tessera.cli.bench_vector",
            "tessera.cli.cmd_gemm", "tessera.cli.cmd_sim", "tessera.cli.cmd_vector", "tessera.cli.board_gemm"}


def package_modules():
    """{dotted name: path} of every module of the installed package (its package-dir mapping)."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = setup["package-dir"]
    out = {}
    for pkg in setup["packages"]:
        base = max((p for p in dirs if pkg == p or pkg.startswith(p + ".")), key=len)
        folder = root / dirs[base] / Path(*pkg[len(base):].split(".")[1:])
        for f in folder.glob("*.py"):
            out[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return out


def layer_of(name: str):
    if name.startswith("tessera.tb"):
        return "tb"
    return next((v for k, v in LAYERS.items() if name == k or name.startswith(k + ".")), None)


def imports_of(path):
    """Every tessera module ``path`` imports, at any depth of the file, with its line."""
    import ast

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module
            yield from ((node.lineno, f"{node.module}.{a.name}") for a in node.names)


def test_packaging_lists_every_folder():
    """Every folder with Python code under rtl/ sim/ synth/ tb/ is a package of pyproject.toml."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    listed = {p.parent for p in package_modules().values()}
    folders = {p.parent for top in ("rtl", "sim", "synth", "tb") for p in (root / top).rglob("*.py")}
    assert folders == listed, sorted(map(str, folders ^ listed))


def test_layers_import_only_downwards():
    """hardware <- runtime <- tools <- command line; tb imports no command line, and nothing
    imports tb but the tests and the commands that run testbenches (TB_USERS)."""
    modules = package_modules()
    assert len(modules) > 80 and all(layer_of(m) is not None for m in modules if m != "tessera")
    bad = {}
    for name, path in sorted(modules.items()):
        mine = layer_of(name)
        for line, target in imports_of(path):
            if target not in modules and target.rpartition(".")[0] not in modules:
                continue                                    # not Tessera's
            theirs = layer_of(target)
            if theirs is None:
                ok = target == "tessera"
            elif theirs == "tb":
                ok = mine == "tb" or name in TB_USERS
            elif mine == "tb":
                ok = theirs < 3
            elif mine is None:                              # the package itself: re-exports the API
                ok = name == "tessera" and theirs == 3 and target.startswith("tessera.api")
            else:
                ok = theirs <= mine
            if not ok:
                bad.setdefault(f"{path.relative_to(path.parents[2])}:{line}", f"{name} imports {target}")
    assert not bad, "imports against the layers (README 'Layout'):\n" + "\n".join(
        f"{where}: {what}" for where, what in bad.items())


SOAK_PROBE = '''
    import os

    import pytest

    from tessera.tools.harness import resolve_seed

    @pytest.mark.randomized
    @pytest.mark.parametrize("p", ["a"])
    def test_cheap(p):
        assert resolve_seed(None) != 3, "seed 3 is bad"

    @pytest.mark.randomized(cost="heavy")
    def test_heavy():
        resolve_seed(None)

    def test_fixed():
        assert resolve_seed(5) == 5

    def test_unmarked():
        resolve_seed(None)
'''


def _pytest(tmp_path, *args):
    probe = tmp_path / "test_probe.py"
    probe.write_text(textwrap.dedent(SOAK_PROBE))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tessera.tb.soak", "-p", "no:cacheprovider",
                           "-q",
                           "--rootdir", str(tmp_path), *args, str(probe)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_soak_runs_randomized_tests_over_seeds_and_names_failing_ones(tmp_path):
    """`make soak` (tb/soak.py): only randomized tests, N seeds each (heavy ones N // 10), every
    failing seed listed with its replay command; and a test that draws a seed unmarked fails."""
    res = _pytest(tmp_path, "-n", "2", "--soak", "20", "--soak-start", "1", "--soak-log",
                  str(tmp_path / "soak.jsonl"))
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "22 runs from seed 1 on, 1 failed" in out, out
    assert "test_probe.py::test_cheap[a]: 20 seeds, 1 failed ([3])" in out, out
    assert "test_probe.py::test_heavy: 2 seeds, 0 failed" in out, out
    assert "replay: SEED=3 .venv/bin/pytest 'test_probe.py::test_cheap[a]'" in out, out
    assert "test_fixed" not in out and "test_unmarked" not in out, out
    log = [json.loads(line) for line in (tmp_path / "soak.jsonl").read_text().splitlines()]
    assert len(log) == 22 and [r["seed"] for r in log if r["outcome"] == "failed"] == [3], log
    res = _pytest(tmp_path, "--soak", "4", "--soak-cost", "heavy")
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "1 runs from seed 1 on, 0 failed" in out and "test_cheap" not in out, out
    res = _pytest(tmp_path, "--soak", "20", "--collect-only")     # seed by seed, every test in each
    seeds = [int(m) for m in re.findall(r"seed(\d+)", res.stdout)]
    assert len(seeds) == 22 and seeds == sorted(seeds) and seeds[:2] == [1, 1], res.stdout
    res = _pytest(tmp_path, "-k", "fixed or unmarked")
    out = res.stdout + res.stderr
    assert res.returncode == 1 and "1 error" in out, out      # the check runs at teardown
    assert "test_unmarked takes a random seed" in out and "not marked @pytest.mark.randomized" in out, out
