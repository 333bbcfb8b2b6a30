"""N:1 AXI4 arbiter under Verilator with cocotbext-axi masters and RAM (tb/bus/test_axi_arbiter.py)."""

import json

import pytest
from amaranth import Shape

from rtl.bus.axi_arbiter import AxiArbiter
from tb.harness import run

PARAMS = dict(addr_bits=16, data_bits=128, id_bits=2)


@pytest.mark.parametrize("n", [3, 1])
def test_axi_arbiter_random_traffic(n):
    run(AxiArbiter(n, **PARAMS), "tb.bus.test_axi_arbiter", name=f"axi_arbiter_n{n}",
        testcase="test_random_traffic",
        params={"n": n, **PARAMS, "pause": 0.3, "workers": 3, "ops": 120, "max_len": 300})


def test_axi_arbiter_interleaved_responses():
    n = 3
    run(AxiArbiter(n, **PARAMS), "tb.bus.test_axi_arbiter", name=f"axi_arbiter_n{n}",
        testcase="test_random_traffic",
        params={"n": n, **PARAMS, "mem": "interleave", "pause": 0.3, "workers": 3, "ops": 60, "max_len": 300})


def test_axi_arbiter_read_throughput():
    n = 3
    run_dir = run(AxiArbiter(n, **PARAMS), "tb.bus.test_axi_arbiter", name=f"axi_arbiter_n{n}",
                  testcase="test_read_throughput",
                  params={"n": n, **PARAMS, "bursts": 2, "outstanding": 2, "min_r_rate": 0.9})
    result = json.loads((run_dir / "axi_arbiter_throughput.json").read_text())
    print(f"AxiArbiter n={n}: {result['rate']:.3f} R beats/cycle ({result['r_beats']} beats)")
    assert result["rate"] >= 0.9


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_axi_arbiter_ports_and_errors():
    def width(arb, port):
        return Shape.cast(arb.signature.members[port].shape).width

    arb = AxiArbiter(3, **PARAMS)
    assert width(arb, "m_axi_arid") == 4 and width(arb, "s2_axi_rid") == 2
    assert width(AxiArbiter(1, **PARAMS), "m_axi_arid") == 2
    assert width(AxiArbiter(4, **PARAMS), "m_axi_bid") == 4
    assert width(AxiArbiter(5, **PARAMS), "m_axi_awid") == 5
    for bad, name in [(dict(n=0), "n"), (dict(data_bits=96), "data_bits"), (dict(id_bits=0), "id_bits"),
                      (dict(addr_bits=0), "addr_bits"), (dict(w_fifo_depth=0), "w_fifo_depth")]:
        kw = {"n": 3, **PARAMS, **bad}
        with pytest.raises(ValueError, match=name):
            AxiArbiter(kw.pop("n"), **kw)
