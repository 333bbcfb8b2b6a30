"""Tile command sequencer under Verilator against the golden model (tb/tile/test_sequencer.py)."""

import json

import pytest

from tessera.rtl.config import preset
from tessera.rtl.tile import Sequencer
from tessera.tools.harness import run

PARAMS = {"episodes": 60, "max_length": 40, "throughput_length": 200, "sync_length": 320}


@pytest.mark.randomized
@pytest.mark.parametrize("name", ["tiny"])
def test_sequencer_random_programs(name):
    run_dir = run(Sequencer(preset(name)), "tessera.tb.tile.test_sequencer", name=f"tile_sequencer_{name}",
                  params={"preset": name, **PARAMS})
    result = json.loads((run_dir / "sequencer_throughput.json").read_text())
    assert result["cycles_per_instruction"] <= 3.1


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_sequencer_rejects_wide_addresses():
    from dataclasses import replace

    cfg = preset("tiny")
    with pytest.raises(ValueError, match="addr_bits"):
        Sequencer(replace(cfg, cache=replace(cfg.cache, addr_bits=40)))


def test_sequencer_sync_wraparound_seed84():
    """The seed soak's failure (seed 84): 320 words at 85 % SYNCs drew only 254 SYNCs, so the
    bench's own premise (more than 256, both counts wrap) failed; the bench now draws until it
    has 257. Replays the seed on the wrap-around test."""
    run(Sequencer(preset("tiny")), "tessera.tb.tile.test_sequencer", name="tile_sequencer_tiny",
        params={"preset": "tiny", **PARAMS}, seed=84, testcase="sync_wraparound")
