"""Configuration validation: bad values raise ValueError naming the parameter, before elaboration."""

from dataclasses import replace

import pytest

from tessera.rtl.config import (
    PRESETS,
    CacheConfig,
    FabricConfig,
    NocConfig,
    NumericConfig,
    TensorConfig,
    preset,
)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_named(name):
    cfg = preset(name)
    assert cfg.name == name
    assert cfg.tiles == cfg.noc.width * cfg.noc.height


def test_preset_table():
    tiny, default = preset("tiny"), preset("default")
    assert (tiny.noc.width, tiny.noc.height, tiny.tensor.rows, tiny.tensor.cols) == (2, 2, 4, 4)
    assert tiny.cache.size_bytes == 16 * 1024 and tiny.cache.ways == 4
    assert tiny.tile.scratchpad_bytes == 16 * 1024
    assert (default.noc.width, default.noc.height, default.tensor.rows, default.tensor.cols) == (4, 4, 8, 8)
    assert default.cache.size_bytes == 64 * 1024 and default.cache.ways == 8
    assert default.tile.scratchpad_bytes == 64 * 1024


def test_unknown_preset_lists_allowed():
    with pytest.raises(ValueError, match="allowed: default, tiny, ulx3s"):
        preset("huge")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: TensorConfig(rows=0), r"TensorConfig.rows = 0 .*allowed: 1..32"),
        (lambda: TensorConfig(cols=3.5), r"TensorConfig.cols must be an integer"),
        (lambda: NocConfig(width=9), r"NocConfig.width = 9"),
        (lambda: NocConfig(vcs=0), r"NocConfig.vcs"),
        (lambda: CacheConfig(sets=100), r"CacheConfig.sets = 100 must be a power of two"),
        (lambda: CacheConfig(ways=0), r"CacheConfig.ways = 0"),
        (lambda: CacheConfig(line_bytes=48), r"CacheConfig.line_bytes = 48 must be a power of two"),
        (lambda: CacheConfig(line_bytes=8, data_bytes=16), r"line_bytes = 8 is smaller than data_bytes"),
        (lambda: NumericConfig(fadd_latency=0), r"NumericConfig.fadd_latency"),
        (lambda: FabricConfig(mem_ports=0), r"FabricConfig.mem_ports"),
        (lambda: replace(preset("tiny"), mem_ports=5), r"FabricConfig.mem_ports = 5 .*1..4"),
    ],
)
def test_invalid_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_every_parameter_settable_alone():
    cfg = replace(preset("tiny"), tensor=replace(preset("tiny").tensor, rows=8))
    assert cfg.tensor.rows == 8 and cfg.tensor.cols == 4 and cfg.noc.width == 2


def test_cache_address_split():
    c = CacheConfig(sets=64, ways=4, line_bytes=64, addr_bits=32)
    assert (c.offset_bits, c.index_bits, c.tag_bits) == (6, 6, 20)
