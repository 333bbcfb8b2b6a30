# amaranth: UnusedElaboratable=no
# (the parameter checks build components that are never elaborated)
"""N:1 AXI4 arbiter under Verilator with cocotbext-axi masters and RAM (tb/bus/test_axi_arbiter.py)."""

import gc
import json
import warnings

import pytest
from amaranth import Shape
from amaranth.hdl import UnusedElaboratable

from tessera.rtl.bus.axi import AXI4Signature
from tessera.rtl.bus.axi_arbiter import AxiArbiter
from tessera.tools.harness import run

PARAMS = dict(addr_bits=16, data_bits=128, id_bits=2)


@pytest.mark.randomized
@pytest.mark.parametrize("n", [3, 1])
def test_axi_arbiter_random_traffic(n):
    run(AxiArbiter(n, **PARAMS), "tessera.tb.bus.test_axi_arbiter", name=f"axi_arbiter_n{n}",
        testcase="test_random_traffic",
        params={"n": n, **PARAMS, "pause": 0.3, "workers": 3, "ops": 120, "max_len": 300})


@pytest.mark.randomized
def test_axi_arbiter_interleaved_responses():
    n = 3
    run(AxiArbiter(n, **PARAMS), "tessera.tb.bus.test_axi_arbiter", name=f"axi_arbiter_n{n}",
        testcase="test_random_traffic",
        params={"n": n, **PARAMS, "mem": "interleave", "pause": 0.3, "workers": 3, "ops": 60, "max_len": 300})


@pytest.mark.randomized
def test_axi_arbiter_throughput():
    n = 3
    run_dir = run(AxiArbiter(n, **PARAMS), "tessera.tb.bus.test_axi_arbiter", name=f"axi_arbiter_n{n}",
                  testcase="test_throughput",
                  params={"n": n, **PARAMS, "bursts": 2, "outstanding": 2, "min_rate": 0.9})
    result = json.loads((run_dir / "axi_arbiter_throughput.json").read_text())
    print(f"AxiArbiter n={n}: R {result['r']['rate']:.3f} beats/cycle ({result['r']['beats']} beats), "
          f"W {result['w']['rate']:.3f} beats/cycle ({result['w']['beats']} beats)")
    assert result["r"]["rate"] >= 0.9 and result["w"]["rate"] >= 0.9


def test_axi_arbiter_ports_and_errors():
    def width(arb, port, name):
        return Shape.cast(arb.signature.members[port].signature.members[name].shape).width

    with warnings.catch_warnings():     # these components are never elaborated
        warnings.simplefilter("ignore", UnusedElaboratable)
        arb = AxiArbiter(3, **PARAMS)
        assert width(arb, "m_axi", "arid") == 4 and width(arb, "s_axi", "rid") == 2
        assert arb.signature.members["s_axi"].dimensions == (3,)
        assert arb.signature.members["m_axi"].signature == AXI4Signature(**{**PARAMS, "id_bits": 4})
        assert width(AxiArbiter(1, **PARAMS), "m_axi", "arid") == 2
        assert width(AxiArbiter(4, **PARAMS), "m_axi", "bid") == 4
        assert width(AxiArbiter(5, **PARAMS), "m_axi", "awid") == 5
        for bad, name in [(dict(n=0), "n"), (dict(data_bits=96), "data_bits"), (dict(id_bits=0), "id_bits"),
                          (dict(addr_bits=0), "addr_bits"), (dict(w_fifo_depth=0), "w_fifo_depth")]:
            kw = {"n": 3, **PARAMS, **bad}
            with pytest.raises(ValueError, match=name):
                AxiArbiter(kw.pop("n"), **kw)
        del arb
        gc.collect()
