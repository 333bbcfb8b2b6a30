"""The cache reference model against pycachesim, and the slice's parameter validation."""

import random

import cachesim
import pytest

from tessera.rtl.config import CacheConfig
from tessera.tb.models.cache import LruCacheModel


@pytest.mark.parametrize("sets,ways,line", [(4, 2, 16), (8, 4, 64), (1, 8, 32), (16, 1, 16)])
def test_model_matches_pycachesim_on_loads(sets, ways, line):
    rng = random.Random(f"{sets}-{ways}-{line}")
    model = LruCacheModel(sets, ways, line)
    mem = cachesim.MainMemory()
    l2 = cachesim.Cache("L2", sets, ways, line, "LRU", write_back=True, write_allocate=True)
    mem.load_to(l2)
    mem.store_from(l2)
    sim = cachesim.CacheSimulator(l2, mem)
    footprint = sets * ways * line * 3
    disagreements = 0
    for _ in range(3000):
        addr = rng.randrange(footprint) & ~3
        before = l2.HIT_count
        sim.load(addr, length=1)
        hit_ref = l2.HIT_count > before
        hit = model.access(addr).hit
        disagreements += hit != hit_ref
    assert disagreements == 0
    assert model.stats["hits"] == l2.HIT_count
    assert model.stats["misses"] == l2.MISS_count


def test_model_counts_evictions_and_writebacks():
    model = LruCacheModel(1, 2, 16)
    assert not model.access(0x00, write=True).hit
    assert not model.access(0x10).hit
    assert model.access(0x00).hit  # 0x00 becomes MRU, 0x10 LRU
    a = model.access(0x20)  # evicts clean 0x10
    assert (a.hit, a.evict, a.writeback) == (False, True, False)
    a = model.access(0x30)  # evicts dirty 0x00
    assert (a.hit, a.evict, a.writeback) == (False, True, True)
    assert model.flush() == 0


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(sets=12), "sets"),
        (dict(sets=0), "sets"),
        (dict(line_bytes=48), "line_bytes"),
        (dict(ways=0), "ways"),
        (dict(line_bytes=8, data_bytes=16), "line_bytes"),
        (dict(mshrs=0), "mshrs"),
        (dict(queue_depth=1), "queue_depth"),
        (dict(data_bytes=3), "data_bytes"),
    ],
)
def test_bad_cache_parameters_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CacheConfig(**kwargs)
