"""Seed soak and seed discipline: a pytest plugin (tests/conftest.py loads it; ``-p tessera.tb.soak``
elsewhere).

Randomized tests carry ``@pytest.mark.randomized`` (``cost="heavy"`` for the fabric-level ones
and those that simulate for 15 s or more per seed). A test that takes a seed from
``tessera.tools.harness.resolve_seed`` without the mark fails, so that the soak cannot miss it.

Seed soak (``make soak SEEDS=N``, outside ``make test``): ``pytest --soak N`` runs every randomized
test once per seed, seeds ``--soak-start`` (default 1) onwards: N seeds for a cheap test, N / 10
(at least 1) for a heavy one; ``--soak-heavy M`` sets that count instead, ``--soak-cost heavy``
(or ``cheap``) soaks only those. Each seed is its own
test item (``[seedS-...]``) with ``$SEED`` set, so pytest-xdist spreads them over the cores, and
each failing seed is listed at the end with the command that replays it. Every finished item is
also appended, as it ends, to ``--soak-log`` (default ``build/soak/soak.jsonl``, emptied when a
soak starts): ``{"test", "seed", "outcome", "when", "seconds"}``, so that an interrupted soak
still says what it ran.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tessera.tools import harness

SOAK_HEAVY_SHARE = 10             # a heavy test soaks SEEDS // 10 seeds
COSTS = ("cheap", "heavy")


def pytest_addoption(parser):
    g = parser.getgroup("tessera soak")
    g.addoption("--soak", type=int, default=0, metavar="N",
                help="run only the randomized tests, each over N consecutive seeds (heavy ones: N // 10)")
    g.addoption("--soak-start", type=int, default=1, metavar="S", help="first seed of the soak (default 1)")
    g.addoption("--soak-heavy", type=int, default=None, metavar="M",
                help="seeds for each heavy test (default: --soak // 10, at least 1)")
    g.addoption("--soak-cost", choices=COSTS, default=None,
                help="soak only the cheap or only the heavy randomized tests")
    g.addoption("--soak-log", default="build/soak/soak.jsonl", metavar="PATH",
                help="one JSON line per finished soak item (default build/soak/soak.jsonl)")


def pytest_configure(config):
    config.addinivalue_line("markers", "randomized(cost='cheap'): draws its stimulus from the printed seed;"
                            " cost='heavy' for fabric-level tests and those of 15 s or more per seed"
                            " (fewer seeds in the soak)")
    o = config.option
    for flag, value, least in (("--soak", o.soak, 0), ("--soak-start", o.soak_start, 1),
                               ("--soak-heavy", o.soak_heavy, 1)):
        if value is not None and value < least:
            raise pytest.UsageError(f"{flag} = {value}: must be >= {least}")


_LOG: Path | None = None          # the soak log, written by the controller only


def pytest_sessionstart(session):
    global _LOG
    config = session.config
    if config.option.soak and not hasattr(config, "workerinput"):
        _LOG = Path(config.option.soak_log)
        _LOG.parent.mkdir(parents=True, exist_ok=True)
        _LOG.write_text("")


def pytest_runtest_logreport(report):
    seed = dict(getattr(report, "user_properties", ())).get("soak_seed")
    if _LOG is None or seed is None or not (report.when == "call" or report.outcome != "passed"):
        return
    record = {"test": base_nodeid(report.nodeid), "seed": seed,
              "outcome": report.outcome, "when": report.when, "seconds": round(report.duration, 2)}
    with _LOG.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _cost(marker) -> str:
    cost = marker.kwargs.get("cost", marker.args[0] if marker.args else "cheap")
    if cost not in COSTS:
        raise pytest.UsageError(f"randomized(cost={cost!r}): allowed: {', '.join(COSTS)}")
    return cost


def _soak_seeds(config, marker) -> list[int]:
    n = config.option.soak
    if _cost(marker) == "heavy":
        n = config.option.soak_heavy or max(1, n // SOAK_HEAVY_SHARE)
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

    def soaked(item):
        marker = item.get_closest_marker("randomized")
        return marker is not None and config.option.soak_cost in (None, _cost(marker))

    keep = [it for it in items if soaked(it)]
    drop = [it for it in items if not soaked(it)]
    if drop:
        config.hook.pytest_deselected(items=drop)
    # Seed by seed (every test's first seed, then every test's second, ...): a soak stopped early
    # has still run every test on the same leading seeds.
    keep.sort(key=lambda it: getattr(it, "callspec", None) and it.callspec.params.get("soak_seed") or 0)
    items[:] = keep


@pytest.fixture
def soak_seed():
    """Only reached outside a soak (a soak parametrizes it): no seed is imposed."""
    return None


@pytest.fixture(autouse=True)
def _seed_discipline(request, monkeypatch, soak_seed):
    """In a soak, impose the item's seed through ``$SEED``; in every run, refuse a test that takes a
    seed without the ``randomized`` mark."""
    if soak_seed is not None:
        monkeypatch.setenv("SEED", str(soak_seed))
        request.node.user_properties.append(("soak_seed", soak_seed))
    before = len(harness.SEEDS_TAKEN)
    yield
    taken = harness.SEEDS_TAKEN[before:]
    if taken and request.node.get_closest_marker("randomized") is None:
        pytest.fail(f"{request.node.nodeid} takes a random seed ({taken[0]}) but is not marked"
                    " @pytest.mark.randomized: the seed soak would skip it", pytrace=False)


def base_nodeid(nodeid: str) -> str:
    """The test id of a soak item ``id[...-seedS]`` without its seed part."""
    base = re.sub(r"\[seed\d+\]$", "", nodeid)
    base = re.sub(r"-seed\d+(?=\]$)", "", base)
    return re.sub(r"\[seed\d+-", "[", base)


def replay_command(nodeid: str, seed: int) -> str:
    """``SEED=S .venv/bin/pytest 'id'``: what replays soak item ``nodeid`` outside the soak."""
    return f"SEED={seed} .venv/bin/pytest '{base_nodeid(nodeid)}'"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not config.option.soak:
        return
    passed: dict[tuple[str, int], bool] = {}    # (test, seed) -> every phase passed
    for kind in ("passed", "failed", "error"):
        for r in terminalreporter.stats.get(kind, []):
            seed = dict(getattr(r, "user_properties", ())).get("soak_seed")
            if seed is not None:
                key = (r.nodeid, seed)
                passed[key] = passed.get(key, True) and kind == "passed"
    tr = terminalreporter
    tr.section("seed soak")
    bad = sorted(key for key, ok in passed.items() if not ok)
    tr.write_line(f"{len(passed)} runs from seed {config.option.soak_start} on, {len(bad)} failed")
    by_test: dict[str, list[tuple[int, bool]]] = {}
    for (nodeid, seed), ok in passed.items():
        by_test.setdefault(base_nodeid(nodeid), []).append((seed, ok))
    for test, runs in sorted(by_test.items()):
        fails = sorted(seed for seed, ok in runs if not ok)
        tr.write_line(f"  {test}: {len(runs)} seeds, {len(fails)} failed" + (f" ({fails})" if fails else ""))
    for nodeid, seed in bad:
        tr.write_line(f"replay: {replay_command(nodeid, seed)}")
