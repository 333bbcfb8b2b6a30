"""``tessera bench cache``: cycle-level benchmark of one L2 slice under Verilator.

    tessera bench cache (--trace FILE | --pattern {stream,random,strided,reuse,store})
        --sets S --ways W --line B --mshrs N [--mem-latency L] [--serial] [--waves] --json FILE

Trace format (``--trace``): one access per line, ``R|W|A hexaddr size`` (size in bytes, decimal;
``#`` starts a comment). Each read or write is split at data-word boundaries into word requests (a
whole word is read; a write's byte mask covers the accessed bytes); ``A`` (ALLOC: claim a line
without fetching it, zeroed and dirty) becomes one ALLOC per line the range touches. Every request
is one of the ``accesses`` counted. ``--serial`` issues each request after the previous response: then the
hit/miss/eviction/write-back counts must equal the independent LRU model's (``model`` in the
JSON, ``model_match``). Memory: a pipelined AXI4 model with a fixed latency (``--mem-latency``).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

PATTERNS = ("stream", "random", "strided", "reuse", "store")
ACCESSES = 4096  # accesses of a generated pattern, by default
READ, WRITE, ALLOC = 0, 1, 4  # request ops (tessera.rtl.cache.layouts.CacheOp values)
FLAG = {
    "sets": "--sets",
    "ways": "--ways",
    "line_bytes": "--line",
    "mshrs": "--mshrs",
    "data_bytes": "--data-bytes",
    "queue_depth": "--queue-depth",
}


def register(sub):
    p = sub.add_parser(
        "cache",
        help="L2 slice: hits, misses, latency and memory bandwidth",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=_raw(),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--trace", help="trace file: one 'R|W|A hexaddr size' per line")
    src.add_argument("--pattern", choices=PATTERNS, help="generated access pattern")
    p.add_argument("--sets", type=int, default=128, help="sets (a power of two)")
    p.add_argument("--ways", type=int, default=8, help="ways per set")
    p.add_argument("--line", type=int, default=64, help="line size in bytes (a power of two)")
    p.add_argument("--mshrs", type=int, default=8, help="miss status holding registers")
    p.add_argument("--data-bytes", type=int, default=16, help="AXI and request data width in bytes")
    p.add_argument(
        "--queue-depth",
        type=int,
        default=None,
        help="requests parked on MSHRs (default: mshrs * beats per line, at least 8)",
    )
    p.add_argument("--mem-latency", type=int, default=20, help="memory latency in cycles (AR to first R)")
    p.add_argument("--serial", action="store_true", help="issue each request after the previous response")
    p.add_argument("--accesses", type=int, default=ACCESSES,
                   help="accesses of a generated pattern (not with --trace: the trace holds them)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the random pattern, of the written data and of the simulation")
    p.add_argument("--json", required=True, help="write the results here")
    p.add_argument("--waves", action="store_true",
                   help="build with tracing and write a waveform (dump.vcd in the printed run directory; "
                        "as WAVES=1)")
    p.set_defaults(func=run)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def check_args(args):
    """Every number and option of ``args``, before anything is built (the cache geometry is
    checked by :func:`make_config`)."""
    from tessera.cli.common import check_range, check_seed, refuse_inapplicable

    check_range(args.mem_latency, "--mem-latency", 1, 100000)
    check_range(args.accesses, "--accesses", 1)
    check_seed(args.seed)
    if args.trace:
        refuse_inapplicable(args, {"accesses": ACCESSES}, "only for a generated --pattern (a --trace "
                                                          "holds its own accesses)")


def make_config(args):
    from tessera.rtl.config import CacheConfig

    d = args.data_bytes
    beats = args.line // d if d > 0 and args.line >= d else 1
    q = args.queue_depth if args.queue_depth is not None else min(1024, max(8, args.mshrs * beats))
    try:
        return CacheConfig(
            sets=args.sets,
            ways=args.ways,
            line_bytes=args.line,
            mshrs=args.mshrs,
            data_bytes=d,
            queue_depth=q,
            id_bits=16,
        )
    except ValueError as e:
        msg = str(e)
        for field, flag in FLAG.items():
            if msg.startswith(f"CacheConfig.{field} "):
                raise ValueError(f"{flag}: {msg}") from None
        raise ValueError(f"--sets/--ways/--line/--mshrs: {msg}") from None


def parse_trace(path: str) -> list[tuple[int, int, int]]:
    """Accesses ``(op, addr, size)``, op READ (0), WRITE (1) or ALLOC (4)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ValueError(f"--trace: cannot read {path}: {e.strerror}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) != 3 or parts[0].upper() not in ("R", "W", "A"):
                raise ValueError
            addr, size = int(parts[1], 16), int(parts[2], 10)
            if size < 1 or addr < 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"--trace: {path}:{n}: expected 'R|W|A hexaddr size', got {line!r}") from None
        out.append(({"R": READ, "W": WRITE, "A": ALLOC}[parts[0].upper()], addr, size))
    if not out:
        raise ValueError(f"--trace: {path} holds no accesses")
    return out


def pattern(name: str, cfg, n: int, seed: int) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    D, L, size = cfg.data_bytes, cfg.line_bytes, cfg.size_bytes
    base = 0x100000
    if name == "stream":  # sequential word reads through 4x the capacity: every line missed once
        return [(False, base + i * D, D) for i in range(n)]
    if name == "strided":  # one word per line, consecutive lines: all primary misses
        return [(False, base + i * L, D) for i in range(n)]
    if name == "reuse":  # reads looping over half the capacity, warmed first: all hits after warm-up
        words = max(1, size // 2 // D)
        return [(False, base + (i % words) * D, D) for i in range(n)]
    if name == "store":  # a result written out: ALLOC each line, then write its every word
        per = 1 + L // D
        return [
            (ALLOC, base + (i // per) * L, L)
            if i % per == 0
            else (WRITE, base + (i // per) * L + (i % per - 1) * D, D)
            for i in range(n)
        ]
    # random: reads and writes (30%) over twice the capacity
    return [(rng.random() < 0.3, base + rng.randrange(2 * size // D) * D, D) for i in range(n)]


def to_requests(accesses, cfg, seed: int) -> list[list[int]]:
    """Split accesses into word requests ``[op, word_addr, mask, data]`` (ALLOC: one per line)."""
    D = cfg.data_bytes
    rng = random.Random(seed + 1)
    limit = 1 << cfg.addr_bits
    out = []
    for write, addr, size in accesses:
        if addr + size > limit:
            raise ValueError(
                f"--trace: address {addr:#x}+{size} beyond the {cfg.addr_bits}-bit address space"
            )
        if write == ALLOC:
            L = cfg.line_bytes
            out.extend([ALLOC, la, 0, 0] for la in range(addr - addr % L, addr + size, L))
            continue
        a, end = addr, addr + size
        while a < end:
            wa = a - a % D
            hi = min(end, wa + D)
            mask = ((1 << (hi - a)) - 1) << (a - wa)
            out.append(
                [int(write), wa, mask if write else (1 << D) - 1, rng.randrange(1 << (8 * D)) if write else 0]
            )
            a = hi
    return out


def model_counts(warm, reqs, cfg) -> dict:
    from tessera.tb.models.cache import LruCacheModel

    model = LruCacheModel(cfg.sets, cfg.ways, cfg.line_bytes)
    for op, addr, _, _ in warm:
        model.access(addr, bool(op))
    model.stats = dict.fromkeys(model.stats, 0)
    for op, addr, _, _ in reqs:
        if op == ALLOC:  # a write for hit, miss and eviction
            model.alloc(addr)
        else:
            model.access(addr, bool(op))
    s = model.stats
    return {
        "accesses": s["accesses"],
        "hits": s["hits"],
        "misses": s["misses"],
        "evictions": s["evictions"],
        "writebacks": s["writebacks"],
    }


def run(args) -> int:
    from tessera.cli.common import check_output, write_output
    from tessera.rtl.cache.slice import CacheSlice
    from tessera.tools.harness import run as hrun
    from tessera.tools.toolchain import BUILD

    check_args(args)
    cfg = make_config(args)
    out_json = check_output(args.json, "--json")
    if args.trace:
        accesses = parse_trace(args.trace)
    else:
        accesses = pattern(args.pattern, cfg, args.accesses, args.seed)
    reqs = to_requests(accesses, cfg, args.seed)
    if args.pattern == "reuse":  # warm the working set, then measure the loop
        warm = to_requests(pattern("reuse", cfg, max(1, cfg.size_bytes // 2 // cfg.data_bytes), 0), cfg, 0)
    else:
        warm = []
    key = hashlib.sha256(json.dumps([reqs, warm]).encode()).hexdigest()[:12]
    work = BUILD / "bench" / "cache"
    work.mkdir(parents=True, exist_ok=True)
    req_file = work / f"requests-{key}.json"
    req_file.write_text(json.dumps(reqs))
    warm_file = work / f"warm-{key}.json"
    warm_file.write_text(json.dumps(warm))
    tag = hashlib.sha256(repr(cfg).encode()).hexdigest()[:8]
    params = {
        "cache": {f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
        "requests": str(req_file),
        "warm": str(warm_file),
        "serial": bool(args.serial),
        "latency": args.mem_latency,
        "out": f"bench-{key}.json",
    }
    run_dir = hrun(
        CacheSlice(cfg), "tessera.tb.cache.bench_slice", name=f"l2_bench_{tag}", params=params,
        seed=args.seed, waves=True if args.waves else None, replay="--seed {seed}",
    )
    result = json.loads((run_dir / params["out"]).read_text())
    model = model_counts(warm, reqs, cfg)
    result = {
        "source": args.trace or f"pattern:{args.pattern}",
        "config": {
            "sets": cfg.sets,
            "ways": cfg.ways,
            "line": cfg.line_bytes,
            "mshrs": cfg.mshrs,
            "data_bytes": cfg.data_bytes,
            "queue_depth": cfg.queue_depth,
            "mem_latency": args.mem_latency,
            "serial": bool(args.serial),
        },
        **result,
    }
    result["model"] = model
    # Only a serial run must match: concurrent requests turn model hits into secondary misses.
    result["model_match"] = all(result[k] == v for k, v in model.items()) if args.serial else None
    write_output(out_json, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if args.serial and not result["model_match"]:
        print("tessera bench cache: serial counts differ from the LRU model")
        return 1
    return 0
