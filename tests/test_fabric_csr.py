"""Fabric CSR block under Verilator through its AXI4-Lite host port (tb/fabric/test_csr.py)."""

import pytest

from rtl.config import preset
from rtl.fabric.csr import Csr
from tb.harness import run


@pytest.mark.randomized
@pytest.mark.parametrize("name", ["tiny"])
def test_fabric_csr(name):
    run(Csr(preset(name)), "tb.fabric.test_csr", name=f"fabric_csr_{name}",
        params={"preset": name, "rounds": 3, "words": 24, "clears": 4, "cycle_rounds": 6, "flushes": 24})


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_fabric_csr_rejects_bad_config():
    with pytest.raises(ValueError, match="FabricConfig"):
        Csr("tiny")


def test_fabric_csr_default_elaborates():
    from amaranth.back import rtlil

    rtlil.convert(Csr(preset("default")), name="fabric_csr_default")
