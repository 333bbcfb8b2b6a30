"""L2 slice under Verilator: random traffic, AXI errors (fills, evictions, flush/invalidate), LRU model
(serial, with malformed requests mixed in), hit timing, hits under a miss, ALLOC (tb/cache/test_slice.py)."""

import pytest

from tessera.rtl.cache.slice import CacheSlice
from tessera.rtl.config import CacheConfig
from tessera.tools.harness import run

CONFIGS = {
    # 4 sets x 2 ways, 16-byte lines of 4-byte words, 2 MSHRs, a 4-entry queue: every resource runs out.
    "small": dict(sets=4, ways=2, line_bytes=16, data_bytes=4, mshrs=2, queue_depth=4, addr_bits=20),
    # 8 sets x 4 ways, 32-byte lines of 8-byte words, 4 MSHRs.
    "medium": dict(sets=8, ways=4, line_bytes=32, data_bytes=8, mshrs=4, queue_depth=8, addr_bits=24),
}


@pytest.mark.randomized
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cache_slice(name):
    cfg = CONFIGS[name]
    run(
        CacheSlice(CacheConfig(**cfg)),
        "tessera.tb.cache.test_slice",
        name=f"l2_{name}",
        params={"cache": cfg, "count": 2000, "serial": 600},
    )
