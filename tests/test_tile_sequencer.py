"""Tile command sequencer under Verilator against the golden model (tb/tile/test_sequencer.py)."""

import json

import pytest

from tessera.rtl.config import preset
from tessera.rtl.tile import Sequencer
from tessera.tools.harness import run

PARAMS = {"episodes": 60, "max_length": 40, "throughput_length": 200, "sync_length": 320,
          "vector_case_runs": 3}


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


def test_sequencer_model_vector_class():
    """The sequencer model's VECTOR class: its descriptor (the fields of vector_desc_layout), BARRIER
    vectors, END's drain; the RTL is held to it by the Verilator bench above."""
    from amaranth.hdl import Shape

    from tessera.rtl.tile.isa import vector_desc_layout
    from tessera.runtime.asm import assemble
    from tessera.tb.models import tile_seq
    from tessera.tb.models.tile_isa import STATES

    cfg = preset("tiny")
    words = assemble("vector add, x=0x100, d=0x2000, rows=3, cols=5, yrow=0x200, act=relu, fmt=bf16t\n"
                     "vector max, x=0, d=0x300, rows=4, cols=9, imm=0.5, red=max\n"
                     "barrier vectors\n"
                     "matmul bf16 m=3 n=4 k=5 a=0x2000 b=0x3000 acc=0x400\n"
                     "vector pass, x=0x400, d=0x3000, rows=3, cols=4, fmt=int8\n"
                     "end", cfg)
    res = tile_seq.run(words, cfg)
    assert res.state == STATES["DONE"] and [i.stream for i in res.issues] == ["vector", "vector", "matmul",
                                                                               "vector"]
    first, second, mm, last = res.issues
    assert first.desc == {"op": 1, "ymode": 1, "act": 1, "red": 0, "fmt": 2, "itof": 0, "x_addr": 0x100,
                          "d_addr": 0x2000, "y": 0x200, "rows": 3, "cols": 5, "x_pitch": 32, "d_pitch": 16}
    assert (second.desc["ymode"], second.desc["y"], second.desc["d_pitch"]) == (3, 0x3F000000, 48)
    assert last.desc["d_pitch"] == 16 and last.desc["x_pitch"] == 16
    assert set(first.desc) == {name for name, _ in vector_desc_layout(cfg)}
    widths = {name: Shape.cast(f.shape).width for name, f in vector_desc_layout(cfg)}
    assert all(v < (1 << widths[k]) for k, v in first.desc.items())
    assert mm.after["vector"] == 2 and first.after["vector"] == 0 and last.after["vector"] == 2
    assert res.drain == {"load": 0, "store": 0, "matmul": 1, "vector": 3}
