"""PC side of the board's host link, on the command line (the protocol: :mod:`tessera.runtime.board_link`).

    python -m tessera.cli.board_link --tty /dev/ttyUSB0 --design NAME --preset ulx3s id
    python -m tessera.cli.board_link --tty /dev/ttyUSB0 --design NAME poke PORT VALUE | peek PORT | step [N]
    python -m tessera.cli.board_link --tty /dev/ttyUSB0 --design NAME ports | reset

Errors are one line (as ``tessera``'s): a bad argument exits with 2, the board's failures (no answer
on the serial line, an AXI error response) with 1, Ctrl-C with 130.
"""

from __future__ import annotations

import argparse
import sys

from tessera.cli.main import HelpFormatter, run_command

PROG = "python -m tessera.cli.board_link"
# The operations and the arguments each takes: (least, most).
OPS = {"id": (0, 0), "ports": (0, 0), "poke": (2, 2), "peek": (1, 1), "step": (0, 1), "reset": (0, 0)}
USAGE = {"poke": "poke PORT VALUE", "peek": "peek PORT", "step": "step [N]"}
STEP_MAX = (1 << 32) - 1   # the STEP register is 32 bits


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--tty", required=True, help="serial device of the ULX3S (FTDI), e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=115200, help="serial speed (a standard termios speed)")
    p.add_argument("--design", required=True, help="the block the bitstream was built with")
    p.add_argument("--preset", default="ulx3s", help="the preset the bitstream was built with")
    p.add_argument("op", choices=list(OPS), help="operation")
    p.add_argument("args", nargs="*", help="its arguments: poke PORT VALUE, peek PORT, step [N] (cycles, 1)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(run, args, PROG)


def _check(a):
    from tessera.cli.common import check_range

    check_range(a.baud, "--baud", 1)
    lo, hi = OPS[a.op]
    if not lo <= len(a.args) <= hi:
        usage = USAGE.get(a.op, f"{a.op} (no arguments)")
        raise ValueError(f"{a.op}: {len(a.args)} arguments given; usage: {usage}")
    if a.op == "poke":
        try:
            int(a.args[1], 0)
        except ValueError:
            raise ValueError(f"poke: VALUE {a.args[1]!r} is not an integer (decimal, 0x..., 0b...)") from None
    if a.op == "step" and a.args:
        try:
            n = int(a.args[0], 0)
        except ValueError:
            raise ValueError(f"step: N {a.args[0]!r} is not an integer") from None
        check_range(n, "step N", 1, STEP_MAX)


def open_board(args, fields=None):
    """The board behind ``--tty`` (errors name ``--tty``/``--baud``)."""
    import termios

    from tessera.runtime.board_link import Board, SerialLink

    try:
        return Board(SerialLink(args.tty, args.baud, timeout=5.0), fields)
    except termios.error as e:
        raise ValueError(f"--tty: {args.tty} is not a serial port ({e.args[-1]})") from None


def board_failures():
    """The exceptions that report a failure of the board rather than of the program."""
    from tessera.runtime.board_link import AxiError
    from tessera.runtime.host import FabricError

    return AxiError, FabricError, TimeoutError


def run(a) -> int:
    from tessera.rtl.board.port_bank import port_map
    from tessera.rtl.config import preset
    from tessera.synth.table import make_design

    _check(a)
    try:
        preset(a.preset)
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None
    try:
        fields = port_map(make_design(a.design, a.preset))
    except ValueError as e:
        raise ValueError(f"--design: {e}") from None
    if a.op == "ports":
        for f in fields:
            print(f"{'out' if f.output else 'in ':3s} {f.name:24s} bit {f.offset:5d}  width {f.width}")
        return 0
    names = {f.name for f in fields}
    if a.op in ("poke", "peek") and a.args[0] not in names:
        raise ValueError(f"{a.op}: unknown port {a.args[0]!r}; ports: {', '.join(f.name for f in fields)}")
    if a.op == "poke":
        field = next(f for f in fields if f.name == a.args[0])
        if field.output:
            raise ValueError(f"poke: {a.args[0]} is an output port (peek it)")
        if not 0 <= int(a.args[1], 0) < 1 << field.width:
            raise ValueError(f"poke: VALUE {a.args[1]} does not fit the {field.width} bits of {a.args[0]}")
    try:
        board = open_board(a, fields)
        if a.op == "id":
            print("input words %d, output words %d" % board.check_id())
        elif a.op == "poke":
            board.poke({a.args[0]: int(a.args[1], 0)})
        elif a.op == "peek":
            print(hex(board.peek(a.args[0])))
        elif a.op == "step":
            board.step(int(a.args[0], 0) if a.args else 1)
            print(f"cycles run: {board.cycles()}")
        elif a.op == "reset":
            board.reset()
    except board_failures() as e:
        print(f"{PROG}: error: the board: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
