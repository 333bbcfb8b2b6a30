"""Regression-wide settings, and the seed soak.

Verilator builds in the regression compile their C++ at -O0 (tb/harness.py ``CXX_OPTS``): the
tests simulate for seconds, and g++ -Os on the larger designs takes minutes (the 4 x 4 mesh about
10 minutes against 83 s). Benchmarks and ``make sim`` keep -Os. ``TESSERA_CXX_OPT=-Os make test``
builds the regression optimised instead.

Randomized tests carry ``@pytest.mark.randomized`` (``cost="fabric"`` for those that simulate the
whole fabric or run for a minute or more per seed). A test that takes a seed from
``tb.harness.resolve_seed`` without the mark fails, so that the soak cannot miss it.

Seed soak (``make soak SEEDS=N``, outside ``make test``): ``pytest --soak N`` runs every randomized
test once per seed, seeds ``--soak-start`` (default 1) onwards: N seeds for a cheap test, N / 10
(at least 1) for a fabric-level one; ``--soak-fabric M`` sets that count instead. Each seed is its
own test item (``[...-seedS]``), so pytest-xdist spreads them over the cores, and a failing seed
is listed at the end with the command that replays it.
"""

from __future__ import annotations

import os
import re

import pytest

from tb import harness

os.environ.setdefault("TESSERA_CXX_OPT", "-O0")

SOAK_FABRIC_SHARE = 10            # a fabric-level test soaks SEEDS // 10 seeds


def pytest_addoption(parser):
    g = parser.getgroup("tessera soak")
    g.addoption("--soak", type=int, default=0, metavar="N",
                help="run only the randomized tests, each over N consecutive seeds (fabric-level: N // 10)")
    g.addoption("--soak-start", type=int, default=1, metavar="S", help="first seed of the soak (default 1)")
    g.addoption("--soak-fabric", type=int, default=None, metavar="M",
                help="seeds for each fabric-level test (default: --soak // 10, at least 1)")


def pytest_configure(config):
    config.addinivalue_line("markers", "randomized(cost='cheap'): draws its stimulus from the printed seed;"
                            " cost='fabric' for fabric-level tests (fewer seeds in the soak)")
    for opt in ("soak", "soak_start"):
        if getattr(config.option, opt) < (1 if opt == "soak_start" else 0):
            raise pytest.UsageError(f"--{opt.replace('_', '-')} = {getattr(config.option, opt)}: must be"
                                    f" {'>= 1' if opt == 'soak_start' else '>= 0'}")
    if config.option.soak_fabric is not None and config.option.soak_fabric < 1:
        raise pytest.UsageError(f"--soak-fabric = {config.option.soak_fabric}: must be >= 1")


def _soak_seeds(config, marker) -> list[int]:
    n = config.option.soak
    cost = marker.kwargs.get("cost", marker.args[0] if marker.args else "cheap")
    if cost == "fabric":
        n = config.option.soak_fabric or max(1, n // SOAK_FABRIC_SHARE)
    start = config.option.soak_start
    return list(range(start, start + n))


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("randomized")
    if metafunc.config.option.soak and marker is not None:
        metafunc.parametrize("soak_seed", _soak_seeds(metafunc.config, marker), ids=lambda s: f"seed{s}",
                             scope="function")


def pytest_collection_modifyitems(config, items):
    if not config.option.soak:
        return
    keep = [it for it in items if it.get_closest_marker("randomized") is not None]
    drop = [it for it in items if it.get_closest_marker("randomized") is None]
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.fixture
def soak_seed():
    """Only reached outside a soak (a soak parametrizes it): no seed is imposed."""
    return None


@pytest.fixture(autouse=True)
def _seed_discipline(request, monkeypatch, soak_seed):
    """In a soak, impose the item's seed through ``$SEED``; in every run, refuse a test that takes a
    seed without the ``randomized`` mark."""
    seed = soak_seed
    if seed is not None:
        monkeypatch.setenv("SEED", str(seed))
        request.node.user_properties.append(("soak_seed", seed))
    before = len(harness.SEEDS_TAKEN)
    yield
    taken = harness.SEEDS_TAKEN[before:]
    if taken and request.node.get_closest_marker("randomized") is None:
        pytest.fail(f"{request.node.nodeid} takes a random seed ({taken[0]}) but is not marked"
                    " @pytest.mark.randomized: the seed soak would skip it", pytrace=False)


def replay_command(nodeid: str, seed: int) -> str:
    """``SEED=S .venv/bin/pytest 'id'`` for a soak item ``id[...-seedS]`` (the seed part removed)."""
    base = re.sub(r"\[seed\d+\]$", "", nodeid)
    base = re.sub(r"-seed\d+(?=\]$)", "", base)
    base = re.sub(r"\[seed\d+-", "[", base)
    return f"SEED={seed} .venv/bin/pytest '{base}'"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not config.option.soak:
        return
    runs: dict[str, list[tuple[int, bool]]] = {}      # test (without the seed) -> (seed, passed)
    for outcome in ("passed", "failed", "error"):
        for r in terminalreporter.stats.get(outcome, []):
            seed = dict(getattr(r, "user_properties", ())).get("soak_seed")
            if seed is None or (outcome == "passed" and r.when != "call"):
                continue
            runs.setdefault(replay_command(r.nodeid, seed), []).append((seed, outcome == "passed"))
    tr = terminalreporter
    tr.section("seed soak")
    total = sum(len(v) for v in runs.values())
    bad = sorted((cmd, s) for cmd, v in runs.items() for s, ok in v if not ok)
    tr.write_line(f"{total} runs from seed {config.option.soak_start} on, {len(bad)} failed")
    by_test: dict[str, list] = {}
    for cmd, v in runs.items():
        by_test.setdefault(cmd.split("'")[1], []).extend(v)
    for test, v in sorted(by_test.items()):
        fails = sorted(s for s, ok in v if not ok)
        tr.write_line(f"  {test}: {len(v)} seeds, {len(fails)} failed" + (f" ({fails})" if fails else ""))
    for cmd, _ in bad:
        tr.write_line(f"replay: {cmd}")
