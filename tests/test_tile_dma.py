"""Tensor DMA alone under Verilator, the testbench playing network, slices and memories
(tb/fabric/test_dma.py)."""

import pytest

from tessera.rtl.config import preset
from tessera.rtl.tile.dma import TensorDma
from tessera.tools.harness import run

PARAMS = {"loads": 250, "stores": 40, "tx_ready": 0.7, "wr_ready": 0.7, "rx_idle": 0.2, "err_prob": 0.02,
          "max_cycles": 40000}


@pytest.mark.randomized
@pytest.mark.parametrize("name,node", [("tiny", 1), ("ulx3s", 0)])
def test_tensor_dma_random(name, node):
    run(TensorDma(preset(name), node), "tessera.tb.fabric.test_dma", name=f"tile_dma_{name}_{node}",
        params={"preset": name, "node": node, **PARAMS})


# Seeds that failed on main at 5dd0dd7 (issue 14). All but 154 drew a SEND LOAD whose group
# leaves the tile out: its load_done came while its last request beat still waited in the tx
# register (RTL). 154 ended on an error response whose registered fault pulse came after the
# bench had stopped sampling (testbench). The stimulus depends on the bench's draws, so these
# replay the failures only as long as tb/fabric/test_dma.py draws the same; the directed
# cocotb test dma_send_elsewhere_waits_for_tx keeps the RTL case covered whatever the seed.
FAILED_SEEDS = [("ulx3s", 0, 2053194786), ("ulx3s", 0, 103), ("ulx3s", 0, 127), ("ulx3s", 0, 154),
                ("tiny", 1, 129)]


@pytest.mark.parametrize("name,node,seed", FAILED_SEEDS)
def test_tensor_dma_issue14_seeds(name, node, seed):
    run(TensorDma(preset(name), node), "tessera.tb.fabric.test_dma", name=f"tile_dma_{name}_{node}",
        params={"preset": name, "node": node, **PARAMS}, seed=seed, testcase="dma_random")
