# amaranth: UnusedElaboratable=no
# (the parameter checks build components that are never elaborated)
"""The numeric units under Verilator, bit-exact against the SoftFloat model (tb/models/numerics.py).

One build holds every unit at every supported latency (tessera.tb.numeric.units.NumericUnits); the copies
of a unit share operands and a randomly toggled clock enable, so each latency sees all vectors:
every pair of special classes plus 100,000 biased random operand sets per unit.
"""

import json

import pytest

from tessera.rtl.config import NumericConfig, preset
from tessera.rtl.numeric import BLOCKS, BF16Multiplier, FP32Adder, Int8Mac
from tessera.tb.numeric import vectors
from tessera.tb.numeric.units import NumericUnits
from tessera.tools.harness import run

LATENCIES = {"bf16_mul": [1, 2, 3, 4], "fp32_add": [1, 2, 3, 4], "int8_mac": [1, 2, 3]}
RANDOM_VECTORS = 100_000

# Units built here only to check their parameters are never elaborated.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.mark.randomized(cost="heavy")
def test_numeric_units_bit_exact():
    run_dir = run(NumericUnits(LATENCIES), "tessera.tb.numeric.test_units", name="numeric_units",
                  params={"latency": LATENCIES, "count": RANDOM_VECTORS, "en_prob": 0.85})
    result = json.loads((run_dir / "numeric.json").read_text())
    by_unit = {u["unit"]: u for u in result["units"]}
    assert set(by_unit) == set(LATENCIES)
    specials = {"bf16_mul": len(vectors.BF16_SPECIALS) ** 2, "fp32_add": len(vectors.F32_SPECIALS) ** 2,
                "int8_mac": 0}
    for name, u in by_unit.items():
        assert u["latencies"] == LATENCIES[name]
        assert u["vectors"] == RANDOM_VECTORS + specials[name]
        assert u["checked"] == u["vectors"], u
        assert u["mismatches"] == 0, u
        # en was really toggled: some cycles had it low
        assert u["enabled_cycles"] < result["cycles"]


@pytest.mark.parametrize("cls,good", [(BF16Multiplier, [1, 2, 3, 4]), (FP32Adder, [1, 2, 3, 4]),
                                      (Int8Mac, [1, 2, 3])])
def test_latency_validation(cls, good):
    for lat in good:
        assert cls(latency=lat).latency == lat
    for bad in (0, -1, max(good) + 1, "2", 2.0, True, None):
        with pytest.raises(ValueError, match="latency"):
            cls(latency=bad)


def test_default_latencies_follow_config():
    cfg = NumericConfig()
    assert BF16Multiplier().latency == cfg.fmul_latency
    assert FP32Adder().latency == cfg.fadd_latency
    assert Int8Mac().latency == cfg.mac8_latency


@pytest.mark.parametrize("name", ["tiny", "default", "ulx3s"])
def test_blocks_registered(name):
    cfg = preset(name)
    numeric = cfg.tensor.numeric
    assert BLOCKS["bf16_mul"](cfg).latency == numeric.fmul_latency
    assert BLOCKS["fp32_add"](cfg).latency == numeric.fadd_latency
    assert BLOCKS["int8_mac"](cfg).latency == numeric.mac8_latency


@pytest.mark.parametrize("argv,flag", [(["--vectors", "0"], "--vectors"), (["--preset", "huge"], "--preset"),
                                       (["--seed", "-1"], "--seed"), (["--en-prob", "0"], "--en-prob"),
                                       (["--workload", "gemm9"], "--workload")])
def test_sim_cli_rejects_bad_arguments(argv, flag, capsys):
    from tessera.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["sim", *argv])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err
