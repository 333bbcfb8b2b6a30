"""``tessera gemm``: a GEMM on the whole Verilated fabric, checked bit-exactly, with a report.

Inputs are ``--a A.npy --b B.npy [--c C.npy]`` (formats as in docs/numerics.md, "Array files") or random
(``--m --n --k [--c random] [--seed]``). The runtime (``sim/runtime/gemm_map.py``) maps the GEMM onto
the preset's mesh; the fabric runs it under Verilator with the host on the AXI4-Lite port and a
memory of ``--mem-latency`` cycles and ``--mem-bytes-per-cycle`` behind the AXI4 ports, both in
C++ (``--engine native``, the default: :mod:`tessera.tools.native`) or as cocotb models
(``--engine cocotb``: ``tb/common/axi_memory.py``; the same cycle counts, much slower). D is
compared with the golden model (``tb/models/gemm.py``).
``--compare-multicast`` runs the same GEMM a second time with ``--no-multicast`` in the same
simulation and prints both side by side (``make sim`` does this).

Report JSON: ``cycles`` (first tile started to last tile done), ``macs``, ``utilization`` =
macs / (tiles * R * C * cycles), ``dram_read_bytes``, ``dram_write_bytes`` (including the final
L2 flush), ``compulsory_read_bytes``, ``l2_hits``, ``l2_misses``, ``noc_link_traversals``,
``l2_response_flits`` (L2-to-tile NoC traffic as flits injected by the slices),
``multicast_packets``, ``per_tile_busy_cycles``, ``flush_errors`` (memory write errors of the
final L2 flush: FLUSH_ERRORS, docs/csr.md; D is then incomplete and the run fails),
``bit_exact``, ``sim_seconds`` (wall time of the job's simulation), ``sim_cycles`` (cycles it
simulated, host accesses and flush included) and ``sim_cycles_per_second``; with
``--compare-multicast`` also ``no_multicast`` (the same fields for that run).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from tessera.runtime.gemm_inputs import add_input_args, inputs


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
    p.add_argument("--report", help="write the report JSON to this file")
    p.add_argument("--no-multicast", action="store_true", help="every tile loads its own A and B")
    p.add_argument("--compare-multicast", action="store_true",
                   help="also run with --no-multicast and print both (same simulation)")
    p.add_argument("--mem-latency", type=int, default=100, help="memory latency in cycles (default 100)")
    p.add_argument("--mem-bytes-per-cycle", type=float, default=None,
                   help="memory bandwidth over all AXI ports (default: one beat per port per cycle)")
    p.add_argument("--engine", default="native", choices=("native", "cocotb"),
                   help="simulation engine: native (memory and host in C++, fast; default) or cocotb "
                        "(the verification path; same cycle counts, docs/simulation.md)")


def _config(args):
    from tessera.rtl.config import preset

    try:
        return preset(args.preset)
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None


def _check_args(args, cfg):
    if args.mem_latency < 1:
        raise ValueError(f"--mem-latency: {args.mem_latency} must be at least 1 cycle")
    if args.mem_bytes_per_cycle is not None and args.mem_bytes_per_cycle <= 0:
        raise ValueError(f"--mem-bytes-per-cycle: {args.mem_bytes_per_cycle} must be positive")
    if args.no_multicast and args.compare_multicast:
        raise ValueError("--compare-multicast: runs both ways already; drop --no-multicast")


def store_acks(cfg, programs) -> int:
    """Responses the L2 sends for the STOREs of ``programs`` (tile -> words) when every request
    succeeds: one per line segment of a row (the tensor DMA's acknowledged WRITE; its ALLOC and
    other WRITEs are quiet)."""
    from tessera.rtl.tile.isa import Opcode
    from tessera.runtime import isa

    line = cfg.cache.line_bytes
    acks = 0
    for words in programs.values():
        for word in words:
            if isa.decode(word)["opcode"] != Opcode.STORE.value:
                continue
            f = isa.decode(word)
            for r in range(f["rows"]):
                start = f["mem_addr"] + r * f["stride"]
                if f["row_bytes"]:
                    acks += (start + f["row_bytes"] - 1) // line - start // line + 1
    return acks


def report_of(cfg, res: dict, a, b, c, dtype: str, exact: bool, acks: int = 0) -> dict:
    """The report fields of one run (``res``: the testbench's result.json)."""
    m, k = a.shape
    n = b.shape[1]
    macs = m * n * k
    cyc = max(1, res["cycles"])
    ctr = res["counters"]
    slices = ctr["slices"]
    compulsory = a.nbytes + b.nbytes + (c.nbytes if c is not None else 0)
    return {
        "preset": cfg.name, "m": m, "n": n, "k": k, "dtype": dtype, "accumulate": c is not None,
        "tiles": cfg.tiles, "rows": cfg.tensor.rows, "cols": cfg.tensor.cols,
        "cycles": res["cycles"],
        "macs": macs,
        "utilization": macs / (cfg.tiles * cfg.tensor.rows * cfg.tensor.cols * cyc),
        "dram_read_bytes": res["dram_read_bytes"],
        "dram_write_bytes": res["dram_write_bytes"],
        "compulsory_read_bytes": compulsory,
        "dram_read_over_compulsory": res["dram_read_bytes"] / compulsory,
        "l2_hits": sum(s["hits"] for s in slices),
        "l2_misses": sum(s["misses"] for s in slices),
        "l2_requests": sum(s["requests"] for s in slices),
        "noc_link_traversals": ctr["noc_link_flits"],
        "noc_eject_flits": ctr["noc_eject_flits"],
        "l2_response_flits": ctr["l2_resp_flits"],
        # L2 -> tile data: every response flit but the one-flit acknowledgements of the STOREs
        # (the same in both modes), i.e. the read responses (2 flits per word, one per multicast)
        "l2_read_response_flits": ctr["l2_resp_flits"] - acks,
        "multicast_packets": ctr["mcast_packets"],
        "per_tile_busy_cycles": [t["busy_cycles"] for t in ctr["tiles"]],
        "flush_cycles": res["flush_cycles"],
        "flush_errors": res["flush_errors"],
        "tile_states": {t: s["state"] for t, s in res["statuses"].items()},
        "plan": res["plan"],
        "bit_exact": exact,
        "sim_seconds": res["sim_seconds"],
        "sim_cycles": res["sim_cycles"],
        "sim_cycles_per_second": round(res["sim_cycles"] / max(res["sim_seconds"], 1e-9)),
    }


def _print_reports(reports: list[dict]):
    cols = [("cycles", "cycles", "{:,}"), ("utilization", "utilization", "{:.1%}"),
            ("dram_read_bytes", "DRAM read bytes", "{:,}"),
            ("dram_read_over_compulsory", "  / compulsory", "{:.3f}x"),
            ("dram_write_bytes", "DRAM write bytes", "{:,}"), ("l2_requests", "L2 requests", "{:,}"),
            ("l2_hits", "L2 hits", "{:,}"), ("l2_misses", "L2 misses", "{:,}"),
            ("l2_response_flits", "L2->tile flits", "{:,}"),
            ("l2_read_response_flits", "  of which read data", "{:,}"),
            ("noc_link_traversals", "NoC link traversals", "{:,}"),
            ("multicast_packets", "multicast packets", "{:,}"), ("bit_exact", "bit-exact", "{}")]
    first = reports[0]
    print(f"GEMM {first['m']}x{first['n']}x{first['k']} {first['dtype']} on '{first['preset']}': "
          f"{first['tiles']} tiles of {first['rows']}x{first['cols']}, {first['macs']:,} MACs")
    heads = ["multicast" if not r.get("_no_mc") else "no multicast" for r in reports]
    print(f"  {'':22}" + "".join(f"{h:>18}" for h in heads) + ("        ratio" if len(reports) == 2 else ""))
    for key, label, fmt in cols:
        vals = [r[key] for r in reports]
        line = f"  {label:22}" + "".join(f"{fmt.format(v):>18}" for v in vals)
        numeric = isinstance(vals[0], (int, float)) and not isinstance(vals[0], bool)
        if len(reports) == 2 and numeric and vals[0]:
            line += f"   {vals[1] / vals[0]:9.2f}x"
        print(line)
    busy = first["per_tile_busy_cycles"]
    print(f"  tensor-core busy cycles per tile: min {min(busy):,} max {max(busy):,}")


def run(args) -> int:
    from tessera.runtime.gemm_map import plan_gemm
    from tessera.runtime.host import mem_bandwidth
    from tessera.tb.models.gemm import gemm
    from tessera.tools.fabric_run import fabric_name, run_jobs, save_job
    from tessera.tools.toolchain import BUILD

    cfg = _config(args)
    _check_args(args, cfg)
    a, b, c = inputs(args)
    m, k = a.shape
    n = b.shape[1]
    try:
        plan_gemm(cfg, m, n, k, args.dtype, has_c=c is not None, multicast=not args.no_multicast)
    except ValueError as e:
        raise ValueError(f"--{'a' if args.a else 'm'}: {e}") from None
    raw = a.tobytes() + b.tobytes() + (c.tobytes() if c is not None else b"")
    tag = hashlib.sha256(raw).hexdigest()[:12]
    base = BUILD / "gemm" / f"{fabric_name(cfg)}-{m}x{n}x{k}-{args.dtype}-{tag}"
    modes = [not args.no_multicast] + ([False] if args.compare_multicast else [])
    jobs = []
    for mc in modes:
        work = base / ("multicast" if mc else "unicast")
        save_job(work, a, b, c)
        jobs.append({"dir": str(work), "dtype": args.dtype, "multicast": mc})
    print(f"[tessera] gemm: exporting and building the '{cfg.name}' fabric (cached after the first run)")
    t0 = time.time()
    results = run_jobs(cfg, jobs, mem_latency=args.mem_latency, mem_bytes_per_cycle=args.mem_bytes_per_cycle,
                       seed=args.seed, progress=True, engine=args.engine)
    wall = time.time() - t0
    golden = gemm(a, b, c, args.dtype)
    reports = []
    for mc, res in zip(modes, results, strict=True):
        exact = bool(np.array_equal(res["d"].view(golden.dtype), golden))
        plan = plan_gemm(cfg, m, n, k, args.dtype, has_c=c is not None, multicast=mc)
        rep = report_of(cfg, res, a, b, c, args.dtype, exact, store_acks(cfg, plan.words))
        rep.update({"multicast": mc, "mem_latency": args.mem_latency,
                    "mem_bytes_per_cycle": mem_bandwidth(cfg, args.mem_bytes_per_cycle)})
        if not mc:
            rep["_no_mc"] = True
        reports.append(rep)
    _print_reports(reports)
    sim_s = sum(r["sim_seconds"] for r in reports)
    sim_c = sum(r["sim_cycles"] for r in reports)
    print(f"  wall time {wall:.0f} s (export, build, simulation); simulation {sim_s:.1f} s,"
          f" {sim_c / max(sim_s, 1e-9):,.0f} cycles/s ({args.engine} engine)")
    for r in reports:
        r.pop("_no_mc", None)
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
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, results[0]["d"])
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(main, indent=2) + "\n")
    for r in reports:
        if r["flush_errors"]:
            print(f"  FAILED: the final L2 flush met {r['flush_errors']} memory write errors (FLUSH_ERRORS)")
    bad = [r for r in reports if not r["bit_exact"] or r["flush_errors"]
           or any(s != "DONE" for s in r["tile_states"].values())]
    if bad:
        print("  FAILED: result differs from the golden model, a tile did not finish or the flush failed")
    return 1 if bad else 0
