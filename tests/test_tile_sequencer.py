"""Tile command sequencer under Verilator against the golden model (tb/tile/test_sequencer.py)."""

import json

import pytest

from tessera.rtl.config import preset
from tessera.rtl.tile import Sequencer
from tessera.tools.harness import run


@pytest.mark.randomized
@pytest.mark.parametrize("name", ["tiny"])
def test_sequencer_random_programs(name):
    run_dir = run(Sequencer(preset(name)), "tessera.tb.tile.test_sequencer", name=f"tile_sequencer_{name}",
                  params={"preset": name, "episodes": 60, "max_length": 40, "throughput_length": 200,
                          "sync_length": 320})
    result = json.loads((run_dir / "sequencer_throughput.json").read_text())
    assert result["cycles_per_instruction"] <= 3.1


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_sequencer_rejects_wide_addresses():
    from dataclasses import replace

    cfg = preset("tiny")
    with pytest.raises(ValueError, match="addr_bits"):
        Sequencer(replace(cfg, cache=replace(cfg.cache, addr_bits=40)))
