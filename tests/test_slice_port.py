"""SlicePort + CacheSlice + AxiRam under Verilator (tb/fabric/test_slice_port.py)."""

from dataclasses import replace

import pytest

from tessera.rtl.config import preset
from tessera.tb.fabric.slice_port_top import SlicePortTop
from tessera.tools.harness import run


@pytest.mark.randomized
@pytest.mark.parametrize("name,node", [("tiny", 1)])
def test_slice_port_traffic(name, node):
    cfg = preset(name)
    addr_bits = 18          # 256 KiB global, 16 tags per set of a slice: evictions
    cfg = replace(cfg, cache=replace(cfg.cache, addr_bits=addr_bits))
    run(SlicePortTop(cfg, node), "tessera.tb.fabric.test_slice_port", name=f"slice_port_{name}_{node}",
        params={"preset": name, "addr_bits": addr_bits, "node": node, "requests": 600,
                "rx_idle": 0.2, "tx_ready": 0.7})
