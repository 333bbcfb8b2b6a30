"""PC side of the board's host link, on the command line (the protocol: :mod:`tessera.runtime.board_link`).

    python -m tessera.cli.board_link --tty /dev/ttyUSB0 --design NAME --preset ulx3s id
    python -m tessera.cli.board_link --tty /dev/ttyUSB0 --design NAME poke PORT VALUE | peek PORT | step N
    python -m tessera.cli.board_link --tty /dev/ttyUSB0 --design NAME ports
"""

from __future__ import annotations

import argparse
import sys

from tessera.runtime.board_link import Board, SerialLink


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tessera.cli.board_link", description=__doc__.split("\n")[0])
    p.add_argument("--tty", required=True, help="serial device of the ULX3S (FTDI), e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--design", required=True, help="the block the bitstream was built with")
    p.add_argument("--preset", default="ulx3s")
    p.add_argument("op", choices=["id", "ports", "poke", "peek", "step", "reset"])
    p.add_argument("args", nargs="*")
    a = p.parse_args(argv)
    from tessera.rtl.board.port_bank import port_map
    from tessera.synth.table import make_design

    fields = port_map(make_design(a.design, a.preset))
    if a.op == "ports":
        for f in fields:
            print(f"{'out' if f.output else 'in ':3s} {f.name:24s} bit {f.offset:5d}  width {f.width}")
        return 0
    board = Board(SerialLink(a.tty, a.baud), fields)
    if a.op == "id":
        print("input words %d, output words %d" % board.check_id())
    elif a.op == "poke":
        board.poke({a.args[0]: int(a.args[1], 0)})
    elif a.op == "peek":
        print(hex(board.peek(a.args[0])))
    elif a.op == "step":
        board.step(int(a.args[0]) if a.args else 1)
        print(f"cycles run: {board.cycles()}")
    elif a.op == "reset":
        board.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
