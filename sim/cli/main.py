"""The ``tessera`` command line.

Subcommands live in their own modules: ``sim/cli/cmd_*.py`` (top-level commands such as
``verilog``) and ``sim/cli/bench_*.py`` (``tessera bench <name>``). Each module defines
``register(subparsers)``, which adds its parser and sets ``func`` to a function of ``args``
returning an exit code. Adding a command never touches this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from tessera import cli


def _modules(prefix: str):
    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda i: i.name):
        if info.name.startswith(prefix):
            yield importlib.import_module(f"tessera.cli.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tessera",
        description="Tessera tensor fabric: Verilog export, simulation, benchmarks and synthesis.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in _modules("cmd_"):
        mod.register(sub)
    bench = sub.add_parser("bench", help="cycle-level benchmarks of one block under Verilator",
                           description="Cycle-level benchmarks of one block under Verilator.")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BLOCK", required=True)
    for mod in _modules("bench_"):
        mod.register(bench_sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as e:
        parser.exit(2, f"tessera {args.command}: error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
