"""The ``tessera`` command line.

Subcommands live in their own modules: ``sim/cli/cmd_*.py`` (top-level commands such as
``verilog``) and ``sim/cli/bench_*.py`` (``tessera bench <name>``). Each module defines
``register(subparsers)``, which adds its parser and sets ``func`` to a function of ``args``
returning an exit code. Adding a command never touches this file.

What reaches the user is one line per error (:func:`run_command`): ``ValueError`` (a bad argument,
naming its flag) and file errors on paths the user gave exit with 2, Ctrl-C with 130; any other
exception is an internal error and keeps its traceback. Every subcommand's help shows its defaults
(:class:`HelpFormatter`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import sys
from pathlib import Path

from tessera import cli

# A help text that already says its default: "(default 100)", "default: ...", "defaults to ...";
# not the preset named "default" in a list ("tiny, default, ulx3s").
_SAYS_DEFAULT = re.compile(r"\bdefault(?!,|$)", re.IGNORECASE)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, unless there is none to show (None, False, an
    empty string) or the option's help already says what it is."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if d is None or d is False or d is argparse.SUPPRESS or (isinstance(d, str) and d == "") \
                or _SAYS_DEFAULT.search(text):
            return text
        return super()._get_help_string(action)


class RawHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """:class:`HelpFormatter` for a parser whose description is laid out by hand."""


def with_defaults(parser: argparse.ArgumentParser):
    """Give ``parser`` and every parser below it :class:`HelpFormatter` (keeping a hand-laid-out
    description as it is)."""
    todo = [parser]
    while todo:
        p = todo.pop()
        if issubclass(p.formatter_class, argparse.RawDescriptionHelpFormatter):
            p.formatter_class = RawHelpFormatter
        else:
            p.formatter_class = HelpFormatter
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += list(action.choices.values())
    return parser


class _Version(argparse.Action):
    """``--version``: the version and the commit (looked up only when asked for)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the version and the git commit of the sources, and exit"):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from tessera.tools.provenance import version

        print(version())
        parser.exit()


def _modules(prefix: str):
    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda i: i.name):
        if info.name.startswith(prefix):
            yield importlib.import_module(f"tessera.cli.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tessera",
        description="Tessera tensor fabric: Verilog export, simulation, benchmarks and synthesis.",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in _modules("cmd_"):
        mod.register(sub)
    bench = sub.add_parser("bench", help="cycle-level benchmarks of one block under Verilator",
                           description="Cycle-level benchmarks of one block under Verilator.")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BLOCK", required=True)
    for mod in _modules("bench_"):
        mod.register(bench_sub)
    return with_defaults(parser)


# Parsed values that are never file names (the command's own name, choices of a mode).
_NOT_PATHS = {"command", "bench", "op"}


def _user_paths(args) -> list[Path]:
    """The string arguments of ``args``, as resolved paths (any of them may name a file)."""
    out = []
    for dest, value in vars(args).items():
        if dest in _NOT_PATHS:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, (str, os.PathLike)) and str(v) not in ("", "-"):
                try:
                    out.append(Path(v).resolve())
                except (OSError, RuntimeError, ValueError):
                    pass
    return out


def user_file_error(e: OSError, args) -> str | None:
    """One line for a file error on a path the user gave (the path itself, a folder on the way to
    it, or a file directly in a folder the user named), else None: an internal error."""
    paths = _user_paths(args)
    for name in (e.filename, e.filename2):
        if name is None or isinstance(name, int):
            continue
        try:
            p = Path(os.fsdecode(name)).resolve()
        except (OSError, RuntimeError, ValueError):
            continue
        if any(p == u or p in u.parents or p.parent == u for u in paths):
            reason = e.strerror or type(e).__name__
            return f"{os.fsdecode(name)}: {reason}"
    return None


def run_command(func, args, prog: str) -> int:
    """``func(args)`` as an exit code, user errors as one line on stderr: ``ValueError`` and file
    errors on user-given paths exit with 2 (as argparse's own errors), Ctrl-C returns 130."""
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return 130
    except ValueError as e:
        _exit(prog, str(e))
    except OSError as e:
        line = user_file_error(e, args)
        if line is None:
            raise
        _exit(prog, line)


def _exit(prog: str, message: str):
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.exit(2)


def main(argv=None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("tessera: interrupted", file=sys.stderr, flush=True)
        return 130
    prog = " ".join(["tessera", args.command] + ([args.bench] if getattr(args, "bench", None) else []))
    return run_command(args.func, args, prog)


if __name__ == "__main__":
    sys.exit(main())
