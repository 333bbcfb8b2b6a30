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


def test_alloc_trace_and_store_pattern(tmp_path):
    t = tmp_path / "a.trace"
    t.write_text("A 104 40\nW 100 4\n")  # 0x104..0x12b touches the lines at 0x100 and 0x120
    acc = bench_cache.parse_trace(str(t))
    assert acc == [(bench_cache.ALLOC, 0x104, 40), (bench_cache.WRITE, 0x100, 4)]
    cfg = CacheConfig(sets=4, ways=2, line_bytes=32, data_bytes=16)
    reqs = bench_cache.to_requests(acc, cfg, 0)
    assert [(op, a, m) for op, a, m, _ in reqs] == [(4, 0x100, 0), (4, 0x120, 0), (1, 0x100, 0xF)]
    # store: ALLOC, then every word of the line; the model counts an ALLOC like a write
    reqs = bench_cache.to_requests(bench_cache.pattern("store", cfg, 30, 1), cfg, 1)
    assert [op for op, *_ in reqs[:6]] == [4, 1, 1, 4, 1, 1]
    assert [a for _, a, *_ in reqs[:6]] == [0x100000, 0x100000, 0x100010, 0x100020, 0x100020, 0x100030]
    counts = bench_cache.model_counts([], reqs, cfg)
    assert counts["misses"] == 10 and counts["hits"] == 20 and counts["writebacks"] == 10 - 8
