"""Smoke synthesis: the ECP5 flow on a small design, with figures read back from nextpnr's report."""

import json

import pytest

from tessera.cli.main import main
from tessera.rtl.board.boundary import BoundaryRegisters
from tessera.rtl.board.probe import SynthProbe
from tessera.synth.flow import hit_abc9_assertion, synthesize


def test_probe_synthesises_for_ecp5_85f(tmp_path):
    # SynthProbe(depth=512, acc_bits=40): 512 x 40 bits need two DP16KD (36 bits wide at depth 512),
    # one 16x16 product needs one MULT18X18D, and it has >= 3*16 + 40 + 9 + 3 + 40 flip-flops.
    r = synthesize(BoundaryRegisters(SynthProbe()), "synth_probe", tmp_path, freq_mhz=50)
    assert r["status"] == "ok", r["status"]
    assert r["lut4_available"] == 83640 and r["ff_available"] == 83640
    assert r["bram_available"] == 208 and r["dsp_available"] == 156
    assert r["bram"] == 2 and r["dsp"] == 1
    assert 140 <= r["ff"] <= 600
    assert 40 <= r["lut4"] <= 1000
    assert 50 <= r["fmax_mhz"] <= 500
    cp = r["critical_path"]
    assert cp["total_ns"] == pytest.approx(1000 / r["fmax_mhz"], rel=0.05)
    assert r["yosys_cells"]["DP16KD"] == 2
    assert (r["lut_mapper"], r["router"]) == ("abc9", "router2")


def test_abc_fallback_maps_the_probe(tmp_path):
    # The `abc -lut 4` mapping that replaces abc9 when YoWASP's Yosys hits its abc9 assertion.
    r = synthesize(BoundaryRegisters(SynthProbe()), "synth_probe", tmp_path, freq_mhz=50, lut_mapper="abc")
    assert r["status"] == "ok", r["status"]
    assert r["lut_mapper"] == "abc"
    assert r["bram"] == 2 and r["dsp"] == 1 and 40 <= r["lut4"] <= 1000
    with pytest.raises(ValueError, match="lut_mapper"):
        synthesize(None, "synth_probe", tmp_path, lut_mapper="abc7")  # checked before export


def test_abc9_assertion_is_recognised(tmp_path):
    log = tmp_path / "yosys.log"
    log.write_text("2.46.16.7. Executing ABC_OPS_REINTEGRATE pass (reintegrate ABC mapped design).\n"
                   "ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed in rtlil.cc:3091.\n")
    assert hit_abc9_assertion(log)
    log.write_text("ERROR: Module `top' not found!\n")
    assert not hit_abc9_assertion(log)
    assert not hit_abc9_assertion(tmp_path / "missing.log")


def test_cli_records_row_and_flags_missed_timing(tmp_path, capsys):
    # 400 MHz is out of reach for an ECP5: the row must say so, and the command must still succeed.
    assert main(["synth", "--design", "synth_probe", "--preset", "tiny", "--freq", "400",
                 "-o", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert len(rows) == 1
    row = rows[0]
    assert (row["design"], row["preset"], row["target_mhz"]) == ("synth_probe", "tiny", 400)
    for key in ("lut4", "lut4_available", "ff", "bram", "dsp", "fmax_mhz"):
        assert isinstance(row[key], (int, float)), key
    assert row["fmax_mhz"] < 400 and row["status"] == "timing failed"
    assert row["boundary_ff"] == 32 + 1 + 1 + 40 + 1 + 1
    assert "synth_probe@tiny" in capsys.readouterr().out


def test_cli_rejects_unknown_names(tmp_path):
    with pytest.raises(SystemExit):
        main(["synth", "--design", "no_such_block", "-o", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["synth", "--design", "synth_probe", "--preset", "huge", "-o", str(tmp_path)])


def test_cli_time_limit_defaults():
    """A board build gets the longer default limit (the ulx3s fabric takes about 35 minutes)."""
    from tessera.cli.cmd_synth import BLOCK_TIMEOUT, BOARD_TIMEOUT, _check
    from tessera.cli.main import build_parser

    parser = build_parser()
    for argv, want in ((["synth", "--design", "synth_probe"], BLOCK_TIMEOUT),
                       (["synth", "--board", "fabric"], BOARD_TIMEOUT),
                       (["synth", "--board", "fabric", "--timeout", "60"], 60.0)):
        args = parser.parse_args(argv)
        _check(args)
        assert args.timeout == want, argv
    assert BOARD_TIMEOUT > 2015          # the measured ulx3s fabric build
