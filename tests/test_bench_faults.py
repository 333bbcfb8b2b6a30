"""``tessera bench faults`` (the fault campaign, docs/verification.md): a short campaign on ``tiny``
ends without hangs or silent corruption, and the classifier calls each kind of end by its name."""

import json

import numpy as np
import pytest

from tessera.cli import bench_faults as bf
from tessera.cli.main import main
from tessera.tools.harness import resolve_seed


@pytest.mark.randomized(cost="heavy")
@pytest.mark.xdist_group("fabric_tiny")
def test_short_campaign(tmp_path):
    seed = resolve_seed(None)
    out = tmp_path / "faults.json"
    argv = ["bench", "faults", "--preset", "tiny", "--runs", "12", "--seed", str(seed), "--json", str(out)]
    assert main(argv) == 0, f"seed {seed}"
    rep = json.loads(out.read_text())
    counts = rep["counts"]
    assert sum(counts.values()) == 12 and counts["hang"] == counts["silent"] == 0, (seed, counts)
    for r in rep["runs"]:
        assert (r["fault"] is None) == (r["target"] == "none" or (r["target"] == "c" and not r["has_c"]))
        if r["outcome"] == "exact":
            assert not r.get("error_responses")


def _info(states, flush_errors=0):
    return {"statuses": {t: {"state": s, "error": e, "pc": 0} for t, (s, e) in enumerate(states)},
            "flush_errors": flush_errors}


def test_classifier():
    want = np.arange(6, dtype=np.uint32).reshape(2, 3)
    done = _info([("DONE", 0)] * 4)
    assert bf.classify(None, None, want, done, want, 0)[0] == "exact"
    assert bf.classify(None, None, want + 1, done, want, 0)[0] == "silent"           # wrong D, no error
    assert bf.classify(None, None, want, done, want, 3)[0] == "silent"               # errors nobody reported
    faulted = _info([("ERROR", bf.FAULT), ("DONE", 0), ("DONE", 0), ("DONE", 0)])
    assert bf.classify(None, None, want + 1, faulted, want, 2)[0] == "contained"
    assert bf.classify(None, None, want, faulted, want, 0)[0] == "silent"            # FAULT without an error
    assert bf.classify(None, None, want, _info([("DONE", 0)] * 4, 1), want, 1)[0] == "contained"
    other = _info([("ERROR", 4), ("DONE", 0), ("DONE", 0), ("DONE", 0)])              # BAD_SIZE: not a fault
    assert bf.classify(None, None, want, other, want, 1)[0] == "silent"
