"""``tessera gemm``: a GEMM on the whole Verilated fabric, checked bit-exactly, with a report.

Inputs are ``--a A.npy --b B.npy [--c C.npy]`` (formats in docs/usage.md, "Input formats":
float32 is rounded to BF16, int8 means an INT8 GEMM) or random (``--m --n --k [--c random]
[--seed]``). Before anything is built every argument and output path is checked, and the command
prints what it will build and how long the build and the simulation should take (the cost model
of docs/usage.md); above ten minutes it asks on a terminal and refuses without one, unless
``--yes``. The runtime (``sim/runtime/gemm_map.py``) maps the GEMM onto the preset's mesh; the
fabric runs it under Verilator with the host on the AXI4-Lite port and a memory of
``--mem-latency`` cycles and ``--mem-bytes-per-cycle`` behind the AXI4 ports, both in C++
(``--engine native``, the default) or as cocotb models (``--engine cocotb``; the same cycle
counts, much slower). D is compared with the golden model (``tb/models/gemm.py``).
``--compare-multicast`` runs the same GEMM a second time with ``--no-multicast`` in the same
simulation and prints both side by side (``make sim`` does this).

The report (``--json``, ``--csv``, the printed table and its legend) is described field by field
in docs/usage.md, "Reports"; the Python API (:func:`tessera.run_gemm`) returns the same fields.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time

import numpy as np

from tessera.cli.common import check_output, write_output
from tessera.runtime.gemm_inputs import add_input_args, inputs, load_array

CONFIRM_SECONDS = 600       # estimates above this ask for confirmation (or --yes)


def register(sub):
    p = sub.add_parser("gemm", help="GEMM on the whole fabric under Verilator (checked, reported)",
                       description="Run D = C + A x B on the Verilated fabric through its host and "
                                   "memory ports, check D bit-exactly and report cycles, "
                                   "utilization and traffic.")
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p):
    """The options of ``tessera gemm`` (``tessera sim --workload gemm`` parses its run with them)."""
    p.add_argument("--preset", default="default", help="configuration preset: tiny, default, ulx3s")
    add_input_args(p)
    p.add_argument("--bias", metavar="FILE",
                   help="epilogue on the tiles' vector engines: add this row (N values: .npy of float32 or"
                        " uint32 FP32 bits, or 'random') to every row of D (BF16 GEMMs)")
    p.add_argument("--act", default="none",
                   help="epilogue activation after the bias: none, relu or gelu (gelu needs --sfu;"
                        " default: none)")
    p.add_argument("--sfu", action="store_true",
                   help="the preset with the vector engines' special functions (TileConfig.sfu; its"
                        " fabric, <preset>_sfu, builds and simulates several times slower)")
    p.add_argument("--json", "--report", dest="report", metavar="FILE", help="write the report as JSON")
    p.add_argument("--csv", metavar="FILE", help="write the report as CSV (one row per run)")
    p.add_argument("--no-multicast", action="store_true", help="every tile loads its own A and B")
    p.add_argument("--compare-multicast", action="store_true",
                   help="also run with --no-multicast and print both (same simulation)")
    p.add_argument("--mem-latency", type=int, default=100, help="memory latency in cycles")
    p.add_argument("--mem-bytes-per-cycle", type=float, default=None,
                   help="memory bandwidth over all AXI ports (default: one beat per port per cycle)")
    p.add_argument("--engine", default="native", choices=("native", "cocotb"),
                   help="simulation engine: native (memory and host in C++, fast) or cocotb "
                        "(the verification path; same cycle counts, docs/simulation.md)")
    p.add_argument("--waves", action="store_true",
                   help="write a VCD waveform (a separate build with tracing); its path is printed")
    p.add_argument("--keep", action="store_true", help="keep the run's folder (inputs, D, result.json)")
    p.add_argument("--yes", "-y", action="store_true",
                   help="run without asking even if the estimate is above 10 minutes")


def prepare(args):
    """Every check before anything is built: the arguments, the output paths, the inputs, the
    plan; returns the :class:`tessera.api.GemmRun`."""
    from tessera.api import GemmRun, check_gemm

    if args.no_multicast and args.compare_multicast:
        raise ValueError("--compare-multicast: runs both ways already; drop --no-multicast")
    args.out = check_output(args.out, "--out", ".npy")
    args.report = check_output(args.report, "--json")
    args.csv = check_output(args.csv, "--csv", ".csv")
    modes = (not args.no_multicast,) + ((False,) if args.compare_multicast else ())
    flags = {"a": "--a" if args.a else "--m", "b": "--b" if args.b else "--n", "c": "--c",
             "dtype": "--dtype", "preset": "--preset", "mem_latency": "--mem-latency",
             "mem_bytes_per_cycle": "--mem-bytes-per-cycle", "seed": "--seed", "engine": "--engine",
             "bias": "--bias", "act": "--act"}
    shape = (args.m, args.n, args.k)
    if getattr(args, "sfu", False):
        from tessera.api import _config
        from tessera.runtime.vector_programs import with_sfu

        args.preset = with_sfu(_config(args.preset, "--preset"))
    if not (args.a or args.b) and None not in shape and min(shape) >= 1:
        # random data: everything that needs only the shape, before the data are drawn
        check_gemm(args.preset, *shape, args.dtype or "bf16", has_c=args.c == "random", modes=modes,
                   mem_latency=args.mem_latency, mem_bytes_per_cycle=args.mem_bytes_per_cycle, seed=args.seed,
                   engine=args.engine, flags=flags, bias=args.bias is not None, act=args.act)
    a, b, c = inputs(args)
    bias = None
    if args.bias == "random":
        bias = np.random.default_rng([args.seed, 1]).standard_normal(b.shape[1]).astype(np.float32)
    elif args.bias is not None:
        bias = load_array(args.bias, "--bias")
    return GemmRun(a, b, c, dtype=args.dtype, preset=args.preset, modes=modes, mem_latency=args.mem_latency,
                   mem_bytes_per_cycle=args.mem_bytes_per_cycle, seed=args.seed, engine=args.engine,
                   waves=args.waves, flags=flags, bias=bias, act=args.act)


def confirm(est: dict, yes: bool, stdin=None, stderr=None) -> None:
    """Ask before a run estimated above ``CONFIRM_SECONDS``: a y/N question on stderr, answered on
    stdin, when both are a terminal; otherwise refuse (``ValueError`` with the estimate) unless
    ``yes``."""
    from tessera.api import describe_estimate, describe_seconds

    if est["seconds"] <= CONFIRM_SECONDS or yes:
        return
    stdin, stderr = stdin or sys.stdin, stderr or sys.stderr
    what = f"the run is estimated at {describe_seconds(est['seconds'])} ({describe_estimate(est)})"
    if not all(hasattr(f, "isatty") and f.isatty() for f in (stdin, stderr)):
        raise ValueError(f"--yes: {what}, above the {CONFIRM_SECONDS // 60}-minute limit for a run without"
                         " confirmation, and there is no terminal to ask; give --yes to run it")
    print(f"[tessera] {what}. Run it? [y/N] ", end="", flush=True, file=stderr)
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise ValueError("--yes: not confirmed; nothing was run")


ROWS = [  # (key, label, format)
    ("cycles", "cycles", "{:,}"), ("flush_cycles", "  + final L2 flush", "{:,}"),
    ("utilization", "utilization", "{:.1%}"),
    ("dram_read_bytes", "DRAM read bytes", "{:,}"),
    ("dram_read_over_compulsory", "  / compulsory", "{:.3f}x"),
    ("dram_write_bytes", "DRAM write bytes", "{:,}"), ("l2_requests", "L2 requests", "{:,}"),
    ("l2_hits", "  hits", "{:,}"), ("l2_misses", "  misses", "{:,}"),
    ("l2_secondary_misses", "  secondary misses", "{:,}"),
    ("l2_response_flits", "L2->tile flits", "{:,}"),
    ("l2_read_response_flits", "  of which read data", "{:,}"),
    ("noc_link_traversals", "NoC link traversals", "{:,}"),
    ("multicast_packets", "multicast packets", "{:,}"),
    ("bit_exact", "bit-exact", "{}"),
]

LEGEND = """\
  legend (docs/usage.md, "Reports"):
    cycles             first tile started to last tile done; the final L2 flush (D's dirty lines
                       written to memory) comes after, on the next line
    utilization        MACs / (PEs x cycles): the share of the tensor cores' peak over the run
    / compulsory       DRAM read bytes over the bytes of A, B (and C): 1.0x reads each once
    L2 requests        requests the L2 slices received (reads, writes, allocations), each a hit,
                       a miss (fetches its line from memory) or a secondary miss (waits for a line
                       another miss is already fetching): the three add up to the requests
    L2->tile flits     flits the slices sent into the NoC: read data (2 flits a word, one packet
                       per multicast group) and store acknowledgements
    NoC link traversals  flits x router-to-router hops"""


def print_reports(reports: list[dict]):
    first = reports[0]
    print(f"GEMM {first['m']}x{first['n']}x{first['k']} {first['dtype']} on '{first['preset']}': "
          f"{first['tiles']} tiles of {first['rows']}x{first['cols']}, {first['macs']:,} MACs")
    ep = first.get("epilogue") or {}
    if ep.get("bias") or ep.get("act", "none") != "none":
        parts = (["+ bias"] if ep["bias"] else []) + ([ep["act"]] if ep["act"] != "none" else [])
        print(f"  epilogue on the tiles' vector engines: {', then '.join(parts)}")
    heads = ["multicast" if r["multicast"] else "no multicast" for r in reports]
    print(f"  {'':22}" + "".join(f"{h:>18}" for h in heads) + ("        ratio" if len(reports) == 2 else ""))
    for key, label, fmt in ROWS:
        vals = [r[key] for r in reports]
        line = f"  {label:22}" + "".join(f"{fmt.format(v):>18}" for v in vals)
        numeric = isinstance(vals[0], (int, float)) and not isinstance(vals[0], bool)
        if len(reports) == 2 and numeric and vals[0]:
            line += f"   {vals[1] / vals[0]:9.2f}x"
        print(line)
    busy = first["per_tile_busy_cycles"]
    print(f"  tensor-core busy cycles per tile: min {min(busy):,} max {max(busy):,}")
    print(LEGEND)
    for note in first["input_conversion"]:
        print(f"  input: {note}")


def csv_text(reports: list[dict]) -> str:
    """One row per run: every scalar field of the report (lists and dicts left out)."""
    keys = [k for k, v in reports[0].items() if not isinstance(v, (list, dict))]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in reports:
        w.writerow({k: r.get(k) for k in keys})
    return buf.getvalue()


def run(args) -> int:
    import numpy as np

    from tessera.api import describe_estimate
    from tessera.tools.harness import waveform_line

    t0 = time.monotonic()
    gemm = prepare(args)
    est = gemm.estimate()
    cfg = gemm.cfg
    runs = " and ".join("multicast" if mc else "no multicast" for mc in gemm.modes)
    print(f"[tessera] gemm {gemm.m}x{gemm.n}x{gemm.k} {gemm.dtype} on '{cfg.name}' ({cfg.tiles} tiles of"
          f" {cfg.tensor.rows}x{cfg.tensor.cols}), {runs}, {args.engine} engine;"
          f" estimate: {describe_estimate(est)}")
    confirm(est, args.yes)
    results = gemm.run(progress=True, keep=args.keep)
    reports = [r.report for r in results]
    wall = time.monotonic() - t0
    for r in reports:
        r["wall_seconds"] = round(wall, 3)
    print_reports(reports)
    sim_s = sum(r["sim_seconds"] for r in reports)
    sim_c = sum(r["sim_cycles"] for r in reports)
    print(f"  wall time {wall:.0f} s (export, build, simulation); simulation {sim_s:.1f} s,"
          f" {sim_c / max(sim_s, 1e-9):,.0f} cycles/s ({args.engine} engine; estimated"
          f" {sum(c['total'] for c in est['cycles']):,} cycles)")
    main = dict(reports[0])
    if len(reports) == 2:
        main["no_multicast"] = reports[1]
        main["multicast_l2_traffic_cut"] = (reports[1]["l2_read_response_flits"]
                                            / max(1, reports[0]["l2_read_response_flits"]))
        main["multicast_l2_response_flit_cut"] = (reports[1]["l2_response_flits"]
                                                  / max(1, reports[0]["l2_response_flits"]))
        main["multicast_link_traversal_cut"] = (reports[1]["noc_link_traversals"]
                                                / max(1, reports[0]["noc_link_traversals"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, results[0].bits)
    if args.report:
        write_output(args.report, json.dumps(main, indent=2) + "\n")
    if args.csv:
        write_output(args.csv, csv_text(reports))
    for r in reports:
        if r.get("vcd"):
            print(f"  {waveform_line(r['vcd'])}")
            break
    for r in reports:
        if r["flush_errors"]:
            print(f"  FAILED: the final L2 flush met {r['flush_errors']} memory write errors (FLUSH_ERRORS)")
    if not all(r.ok for r in results):
        print("  FAILED: result differs from the golden model, a tile did not finish or the flush failed;"
              f" the run's folder is kept: {reports[0]['run_dir']}; replay with --seed {args.seed}")
        return 1
    return 0
