"""``tessera bench noc``: latency / throughput of the mesh NoC under synthetic traffic (Verilator).

    tessera bench noc --mesh 4x4 --pattern uniform --sweep --vcs 2 --depth 4 --packet-flits 1 \\
        --cycles 2000 --json noc.json --plot noc.png

Traffic: every node injects Bernoulli per cycle into an unbounded source queue (offered load in
flits per node per cycle; a packet is generated with probability rate / packet_flits); latency
counts from generation to ejection of the tail, source queueing included. Each load point runs
``--cycles`` cycles (the first fifth is warm-up, not measured) and then drains, under the full
cocotb scoreboard. Patterns: uniform (any node, the source included), transpose ((x, y) ->
(y, x)), bitcomp (node -> N - 1 - node), hotspot (a quarter of the packets to the centre node),
multicast (one source to every node: link traversals against the XY-tree edge count, latency
against a unicast to the farthest node).

JSON fields, ``--rate``: offered, accepted (flits/node/cycle), avg_latency, p99_latency,
link_traversals; ``--sweep``: also points (one per rate), saturation_throughput (accepted at
offered load 1.0, which every sweep includes: ``--rates`` without 1.0 is refused), max_accepted,
zero_load_latency {per_hop, constant} (least-squares fit of latency against hop count at the
lowest load). ``multicast``: link_traversals, tree_edges,
latency, unicast_latency, unicast_links, separate_unicast_links.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

SWEEP_RATES = [0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
PATTERNS = ("uniform", "transpose", "bitcomp", "hotspot", "multicast")
CYCLES = 2000  # injection cycles per load point, by default
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
REPLAY = "--seed {seed}"  # the replay hint the harness prints: this command's own option


def register(sub):
    p = sub.add_parser("noc", help="mesh NoC latency / throughput under synthetic traffic",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--mesh", default="4x4", help="mesh size WxH (1..8 each)")
    p.add_argument("--pattern", default="uniform", choices=PATTERNS, help="traffic pattern")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--rate", type=float, help="offered load, flits/node/cycle (0 < R <= 1)")
    mode.add_argument("--sweep", action="store_true", help="sweep the offered load up to 1.0")
    p.add_argument("--rates", help="comma-separated offered loads for --sweep, 1.0 included "
                   "(default: 0.02,0.1,...,1.0)")
    p.add_argument("--vcs", type=int, default=2, help="virtual channels per message class")
    p.add_argument("--depth", type=int, default=4, help="input buffer depth per VC, flits")
    p.add_argument("--packet-flits", type=int, default=1, help="flits per packet")
    p.add_argument("--flit-bits", type=int, default=32, help="payload bits per flit (no effect on cycles)")
    p.add_argument("--cycles", type=int, default=CYCLES, help="injection cycles per load point (not "
                   "with --pattern multicast)")
    p.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    p.add_argument("--json", required=True, help="output JSON file")
    p.add_argument("--plot", help="latency-load curve, .png, .pdf or .svg (with --sweep)")
    p.add_argument("--waves", action="store_true",
                   help="build with tracing and write a waveform (dump.vcd in the printed run directory; "
                        "as WAVES=1)")
    p.set_defaults(func=run)


def parse_mesh(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text or "")
    if not m:
        raise ValueError(f"--mesh: {text!r} is not WxH (e.g. 4x4)")
    w, h = int(m.group(1)), int(m.group(2))
    if not (1 <= w <= 8 and 1 <= h <= 8):
        raise ValueError(f"--mesh: {text}: width and height must be 1..8")
    return w, h


def _config(args):
    from tessera.cli.common import check_range, check_seed, refuse_inapplicable
    from tessera.rtl.config import NocConfig

    w, h = parse_mesh(args.mesh)
    if args.pattern not in PATTERNS:
        raise ValueError(f"--pattern: {args.pattern!r} is not one of {', '.join(PATTERNS)}")
    if args.pattern == "transpose" and w != h:
        raise ValueError("--pattern: transpose needs a square mesh")
    check_range(args.packet_flits, "--packet-flits", 1, 64)
    if args.pattern == "multicast" and args.packet_flits > args.depth:
        raise ValueError("--packet-flits: a multicast packet must fit in --depth flits")
    check_range(args.cycles, "--cycles", 100)
    check_seed(args.seed)
    for flag, value in (("--vcs", args.vcs), ("--depth", args.depth), ("--flit-bits", args.flit_bits)):
        name = flag[2:].replace("-", "_")
        try:
            NocConfig(**{name: value})
        except ValueError as e:
            raise ValueError(f"{flag}: {e}") from None
    if args.pattern == "multicast":
        refuse_inapplicable(args, {"rate": None, "sweep": False, "rates": None, "cycles": CYCLES},
                            "not with --pattern multicast (one packet from node 0 to every node, no "
                            "offered load)")
        if args.plot:
            raise ValueError("--plot: the latency-load curve needs --sweep, not --pattern multicast")
    else:
        if args.rate is None and not args.sweep:
            raise ValueError("--rate: give --rate R or --sweep")
        check_range(args.rate, "--rate", 0, 1, lo_open=True)
        if not args.sweep:
            refuse_inapplicable(args, {"rates": None}, "the offered loads of --sweep; with --rate R "
                                                       "one load point runs")
            if args.plot:
                raise ValueError("--plot: the latency-load curve needs --sweep (--rate R runs one point)")
    return NocConfig(width=w, height=h, flit_bits=args.flit_bits, vcs=args.vcs, depth=args.depth,
                     local_ports=1)


def _outputs(args):
    """The output files, checked before anything is built."""
    from tessera.cli.common import check_output

    out_json = check_output(args.json, "--json")
    plot = check_output(args.plot, "--plot")
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        raise ValueError(f"--plot: {args.plot} does not end in {', '.join(PLOT_SUFFIXES)}")
    return out_json, plot


def _rates(args) -> list[float]:
    if args.rate is not None:
        return [args.rate]
    if not args.rates:
        return list(SWEEP_RATES)
    try:
        rates = sorted(float(r) for r in args.rates.split(","))
    except ValueError:
        raise ValueError(f"--rates: {args.rates!r} is not a comma-separated list of numbers") from None
    if not rates or not all(0 < r <= 1 for r in rates):   # (NaN fails the comparison too)
        raise ValueError(f"--rates: {args.rates!r}: every rate must be in (0, 1]")
    if rates[-1] != 1.0:
        raise ValueError(f"--rates: {args.rates!r} must include 1.0 (saturation_throughput is the "
                         "accepted load at offered load 1.0)")
    return rates


def summarise(point: dict) -> dict:
    from tessera.tb.models.noc import percentile

    lats = [lat for _, lat in point["latencies"]]
    return {
        "offered": point["offered"],
        "accepted": round(point["accepted"], 4),
        "avg_latency": round(sum(lats) / len(lats), 3) if lats else None,
        "p99_latency": percentile(lats, 99) if lats else None,
        "link_traversals": point["link_traversals"],
        "packets_measured": len(lats),
    }


def run(args) -> int:
    from tessera.cli.common import write_output
    from tessera.tb.models.noc import MeshModel, fit_line
    from tessera.tb.noc.flat_mesh import FlatMesh, mesh_verilog
    from tessera.tools.harness import resolve_seed
    from tessera.tools.harness import run as run_sim

    cfg = _config(args)
    rates = _rates(args) if args.pattern != "multicast" else []
    out_json, plot_file = _outputs(args)
    seed = resolve_seed(args.seed)
    waves = True if args.waves else None
    # Same name as the regression's mesh of the same shape, so that a cached build is reused.
    name = f"noc_{cfg.width}x{cfg.height}"
    if (cfg.vcs, cfg.depth, cfg.flit_bits) != (2, 4, 32):
        name += f"_v{cfg.vcs}_d{cfg.depth}_f{cfg.flit_bits}"
    params = dict(width=cfg.width, height=cfg.height, flit_bits=cfg.flit_bits, vcs=cfg.vcs,
                  depth=cfg.depth, local_ports=1)
    base = {"mesh": args.mesh, "pattern": args.pattern, "vcs": cfg.vcs, "depth": cfg.depth,
            "packet_flits": args.packet_flits, "seed": seed}
    if args.pattern != "multicast":     # (a multicast probe is one packet: no injection cycles)
        base["cycles"] = args.cycles
    text = mesh_verilog(cfg, name)
    if args.pattern == "multicast":
        params.update(src=0, flits=args.packet_flits)
        run_dir = run_sim(lambda: FlatMesh(cfg), "tessera.tb.noc.test_mesh", name=name, params=params,
                          testcase="broadcast", seed=seed, verilog_text=text, waves=waves, replay=REPLAY)
        r = json.loads((run_dir / "broadcast.json").read_text())
        model = MeshModel(cfg.width, cfg.height)
        separate = args.packet_flits * sum(model.hops(0, d) for d in range(model.nodes))
        out = dict(base, link_traversals=r["multicast_links"], tree_edges=r["tree_edges"],
                   latency=r["multicast_latency"], unicast_latency=r["unicast_latency"],
                   unicast_hops=r["unicast_hops"], unicast_links=r["unicast_links"],
                   separate_unicast_links=separate)
    else:
        params.update(pattern=args.pattern, rates=rates, cycles=args.cycles, flits_min=args.packet_flits,
                      flits_max=args.packet_flits, ready_prob=1.0, response_prob=0.0,
                      watchdog=5000, drain_limit=max(200000, 40 * args.cycles))
        run_dir = run_sim(lambda: FlatMesh(cfg), "tessera.tb.noc.test_mesh", name=name, params=params,
                          testcase="traffic", seed=seed, verilog_text=text, waves=waves, replay=REPLAY)
        r = json.loads((run_dir / "result.json").read_text())
        points = [summarise(pt) for pt in r["points"]]
        out = dict(base, **points[0])
        if args.sweep:
            per_hop, const = fit_line(r["points"][0]["latencies"])
            out = dict(base, points=points,     # --rates is sorted and ends at 1.0 (checked above)
                       saturation_throughput=points[-1]["accepted"],
                       max_accepted=max(pt["accepted"] for pt in points),
                       zero_load_latency={"per_hop": round(per_hop, 3), "constant": round(const, 3),
                                          "at_offered": points[0]["offered"]})
            out.update({k: points[-1][k] for k in ("offered", "accepted", "avg_latency", "p99_latency",
                                                   "link_traversals")})
    write_output(out_json, json.dumps(out, indent=2))
    shown = {k: v for k, v in out.items() if k != "points"}
    print(json.dumps(shown))
    if "points" in out:
        print(f"{'offered':>8} {'accepted':>9} {'avg_lat':>8} {'p99_lat':>8}")
        for pt in out["points"]:
            print(f"{pt['offered']:>8.2f} {pt['accepted']:>9.3f} {pt['avg_latency'] or 0:>8.1f} "
                  f"{pt['p99_latency'] or 0:>8.0f}")
    if plot_file:
        plot(out, plot_file)
    return 0


def plot(out: dict, path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = out.get("points") or [out]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p["offered"] for p in pts], [p["avg_latency"] or 0 for p in pts], "o-", label="average")
    ax.plot([p["offered"] for p in pts], [p["p99_latency"] or 0 for p in pts], "s--", label="99th percentile")
    ax.set_xlabel("offered load (flits/node/cycle)")
    ax.set_ylabel("latency (cycles)")
    ax.set_yscale("log")
    ax.set_title(f"Tessera NoC {out['mesh']} {out['pattern']}, {out['vcs']} VCs, depth {out['depth']}, "
                 f"{out['packet_flits']}-flit")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
