"""The harness and stream VIP themselves: a FIFO under random valid gaps and back-pressure."""

import hashlib
import random

import pytest
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from tessera.tools.harness import run


class _StreamFifo(wiring.Component):
    def __init__(self, width, depth):
        self.width, self.depth = width, depth
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        from amaranth import Module

        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.width, depth=self.depth)
        m.d.comb += [
            fifo.w_data.eq(self.i.payload), fifo.w_en.eq(self.i.valid), self.i.ready.eq(fifo.w_rdy),
            self.o.payload.eq(fifo.r_data), self.o.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.o.ready),
        ]
        return m


@pytest.mark.randomized
def test_stream_vip_through_fifo():
    run(_StreamFifo(37, 4), "tessera.tb.common.test_stream_fifo", name="stream_fifo",
        params={"width": 37, "count": 2000})


def test_stream_vip_through_fifo_at_os():
    """The same FIFO built with g++ -Os (a separate build directory: the option is in its key)."""
    from tessera.tools.harness import build

    d_os = build(_StreamFifo(37, 4), "stream_fifo", cxx_opt="-Os")
    assert d_os != build(_StreamFifo(37, 4), "stream_fifo", cxx_opt="-O0")
    assert " -Os " in (d_os / "build.log").read_text()
    run(_StreamFifo(37, 4), "tessera.tb.common.test_stream_fifo", name="stream_fifo", cxx_opt="-Os", seed=11,
        params={"width": 37, "count": 500})


def test_bad_cxx_opt_raises():
    import pytest

    from tessera.tools.harness import build

    with pytest.raises(ValueError, match="cxx_opt"):
        build(lambda: _StreamFifo(8, 2), "stream_fifo", cxx_opt="-O9")


def test_build_time_recorded(tmp_path, monkeypatch):
    """A build that is not reused appends its record to build_times.jsonl; a reused one does not."""
    import json
    import shutil
    import uuid

    import tessera.tools.harness as h

    log = tmp_path / "build_times.jsonl"
    monkeypatch.setattr(h, "BUILD_TIMES", log)
    name = "stream_fifo_timed"
    # a comment no other build has, so that the first build cannot be reused from an earlier run
    text = h.export_verilog(_StreamFifo(9, 2), name) + f"// {uuid.uuid4()}\n"
    first = h.build(None, name, verilog_text=text, cxx_opt="-O0")
    try:
        assert h.build(None, name, verilog_text=text, cxx_opt="-O0") == first
    finally:
        shutil.rmtree(first.parent)      # a one-off build: do not let them pile up in build/sim
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 1, records
    r = records[0]
    assert r["name"] == name and r["build_s"] > 0 and r["cxx_opt"] == "-O0" and r["export_s"] is None
    assert r["verilog_lines"] == text.count("\n")
    assert f"| {name} |" in h.build_times_table(log)


def test_failing_testbench_makes_run_raise_with_its_seed():
    """Negative control: one wrong expectation must fail the run, and the error names the seed."""
    import pytest

    with pytest.raises(AssertionError, match=r"1 of 1 cocotb tests failed \(seed=4242\)") as e:
        run(_StreamFifo(37, 4), "tessera.tb.common.test_stream_fifo", name="stream_fifo", seed=4242,
            params={"width": 37, "count": 50, "corrupt": 17})
    assert "scoreboard fifo: 1 mismatches, 49 matched" in str(e.value)


def test_seed_replays_the_same_stimulus():
    first = run(_StreamFifo(37, 4), "tessera.tb.common.test_stream_fifo", name="stream_fifo", seed=99,
                params={"width": 37, "count": 100})
    words = (first / "words.txt").read_text()
    again = run(_StreamFifo(37, 4), "tessera.tb.common.test_stream_fifo", name="stream_fifo", seed=99,
                params={"width": 37, "count": 100})
    assert (again / "words.txt").read_text() == words
    other = run(_StreamFifo(37, 4), "tessera.tb.common.test_stream_fifo", name="stream_fifo", seed=100,
                params={"width": 37, "count": 100})
    assert (other / "words.txt").read_text() != words
    # The stream is the one the seed gave before the testbenches became tessera.tb (tb/stream.py,
    # test_seed): cocotb's per-test seed, computed from the test's name without the package prefix.
    legacy = 99 + int(hashlib.sha1(b"tb.common.test_stream_fifo.fifo_random_traffic").hexdigest(), 16)
    rng = random.Random(f"{legacy}:fifo")
    assert words == "".join(f"{rng.randrange(1 << 37):x}\n" for _ in range(100))


def test_waves_writes_a_vcd(monkeypatch):
    """WAVES=1: a separate traced build (the option is in the build key) and dump.vcd in the run
    directory, with the top-level ports in it."""
    monkeypatch.setenv("WAVES", "1")
    run_dir = run(_StreamFifo(37, 4), "tessera.tb.common.test_stream_fifo", name="stream_fifo", seed=12,
                  params={"width": 37, "count": 50})
    vcd = run_dir / "dump.vcd"
    assert vcd.exists(), sorted(p.name for p in run_dir.iterdir())
    head = vcd.read_text(errors="replace")[:20000]
    assert "$var" in head and "i__valid" in head and "o__ready" in head
