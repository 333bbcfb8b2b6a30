"""``tessera verilog``: export blocks to Verilog."""

from __future__ import annotations

from pathlib import Path

OUTPUT = "build/verilog"


def register(sub):
    p = sub.add_parser("verilog", help="export a block (or all blocks) to Verilog",
                       description="Export a block of a preset to Verilog (one .v file per block).")
    p.add_argument("--block", default="all", help="block name, or 'all' (see --list)")
    p.add_argument("--preset", default="default", help="configuration preset: tiny, default, ulx3s")
    p.add_argument("-o", "--output", default=OUTPUT, help="output directory")
    p.add_argument("--list", action="store_true", help="list the block names and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from tessera.cli.common import check_output, refuse_inapplicable
    from tessera.rtl.blocks import export_verilog, registry
    from tessera.rtl.config import preset

    blocks = registry()
    if args.list:
        refuse_inapplicable(args, {"block": "all", "preset": "default", "output": OUTPUT},
                            "--list only lists the block names (it exports nothing)")
        print("\n".join(sorted(blocks)))
        return 0
    try:
        cfg = preset(args.preset)
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None
    if args.block != "all" and args.block not in blocks:
        raise ValueError(f"--block: unknown block {args.block!r}; allowed: all, {', '.join(sorted(blocks))}")
    names = sorted(blocks) if args.block == "all" else [args.block]
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o/--output: {args.output} is a file; name a directory (one .v file per block)")
    paths = [check_output(out / f"{name}_{cfg.name}.v", "-o/--output") for name in names]
    out.mkdir(parents=True, exist_ok=True)
    for name, path in zip(names, paths, strict=True):
        top = f"{name}_{cfg.name}"
        text = export_verilog(name, cfg, top)
        path.write_text(text)
        print(f"{path}  ({text.count(chr(10))} lines)")
    return 0
