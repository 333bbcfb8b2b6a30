"""Tensor DMA alone under Verilator, the testbench playing network, slices and memories
(tb/fabric/test_dma.py)."""

import pytest

from rtl.config import preset
from rtl.tile.dma import TensorDma
from tb.harness import run


@pytest.mark.parametrize("name,node", [("tiny", 1), ("ulx3s", 0)])
def test_tensor_dma_random(name, node):
    run(TensorDma(preset(name), node), "tb.fabric.test_dma", name=f"tile_dma_{name}_{node}",
        params={"preset": name, "node": node, "loads": 250, "stores": 40, "tx_ready": 0.7,
                "wr_ready": 0.7, "rx_idle": 0.2, "err_prob": 0.02, "max_cycles": 40000})
