"""`tessera bench cache` front end: trace parsing, request splitting, argument errors (no simulation)."""

import argparse

import pytest

from rtl.config import CacheConfig
from sim import bench_cache
from sim.cli import main


def test_trace_parsing_and_word_split(tmp_path):
    t = tmp_path / "t.trace"
    t.write_text("# comment\nR 100 4\n\nW 10e 4  # crosses a 16-byte word\nr 0 16\n")
    acc = bench_cache.parse_trace(str(t))
    assert acc == [(False, 0x100, 4), (True, 0x10E, 4), (False, 0, 16)]
    cfg = CacheConfig(sets=4, ways=2, line_bytes=32, data_bytes=16)
    reqs = bench_cache.to_requests(acc, cfg, 0)
    assert [(w, a, m) for w, a, m, _ in reqs] == [
        (0, 0x100, 0xFFFF),
        (1, 0x100, 0xC000),
        (1, 0x110, 0x0003),
        (0, 0, 0xFFFF),
    ]


@pytest.mark.parametrize("text", ["X 100 4\n", "R zz 4\n", "R 100\n", "W 100 0\n", "# nothing\n"])
def test_bad_trace_lines_raise(tmp_path, text):
    t = tmp_path / "bad.trace"
    t.write_text(text)
    with pytest.raises(ValueError, match="--trace"):
        bench_cache.parse_trace(str(t))


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["--sets", "12"], "--sets"),
        (["--line", "48"], "--line"),
        (["--ways", "0"], "--ways"),
        (["--line", "8", "--data-bytes", "16"], "--line"),
        (["--mshrs", "0"], "--mshrs"),
        (["--mem-latency", "0"], "--mem-latency"),
    ],
)
def test_bad_arguments_name_the_flag(tmp_path, capsys, argv, flag):
    with pytest.raises(SystemExit) as e:
        main(["bench", "cache", "--pattern", "stream", "--json", str(tmp_path / "o.json"), *argv])
    assert e.value.code == 2
    assert flag in capsys.readouterr().err


def test_patterns_and_model_counts():
    cfg = CacheConfig(sets=4, ways=2, line_bytes=32, data_bytes=16)
    for name in bench_cache.PATTERNS:
        acc = bench_cache.pattern(name, cfg, 64, 1)
        assert len(acc) == 64
    reqs = bench_cache.to_requests(bench_cache.pattern("strided", cfg, 64, 1), cfg, 1)
    counts = bench_cache.model_counts([], reqs, cfg)
    assert counts["misses"] == 64 and counts["hits"] == 0 and counts["evictions"] == 64 - 8
    args = argparse.Namespace(sets=4, ways=2, line=32, mshrs=4, data_bytes=16, queue_depth=None)
    assert bench_cache.make_config(args).queue_depth == 8
