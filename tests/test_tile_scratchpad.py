"""Tile scratchpad under Verilator against a shadow memory (tb/tile/test_scratchpad.py)."""

import json

import pytest

from tessera.rtl.config import preset
from tessera.rtl.tile import Scratchpad
from tessera.tools.harness import run


@pytest.mark.randomized
@pytest.mark.parametrize("name", ["tiny"])
def test_scratchpad_random_traffic(name):
    cfg = preset(name)
    run_dir = run(Scratchpad(cfg), "tessera.tb.tile.test_scratchpad", name=f"tile_scratchpad_{name}",
                  params={"preset": name, "phases": 6, "cycles": 1500, "stream_words": 200})
    result = json.loads((run_dir / "scratchpad_throughput.json").read_text())
    ports = cfg.tile.scratchpad_read_ports
    assert result["separate_banks"]["cycles"] <= 200 + 3
    assert result["same_bank"]["cycles"] >= ports * 200      # one word per bank per cycle, no more
