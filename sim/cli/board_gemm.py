"""PC side of the fabric on the board, on the command line: a GEMM through the UART bridge,
checked against the golden model (the session: :mod:`tessera.runtime.board_gemm`, running the host
sequence of :mod:`tessera.runtime.host`).

    python -m tessera.cli.board_gemm --tty /dev/ttyUSB0 id
    python -m tessera.cli.board_gemm --tty /dev/ttyUSB0 gemm --m 16 --n 24 --k 40 --dtype bf16 [--c random]
    python -m tessera.cli.board_gemm --tty /dev/ttyUSB0 gemm --a A.npy --b B.npy [--c C.npy] --out D.npy

Errors are one line (as ``tessera``'s): a bad argument or file exits with 2, the board's failures
(no answer on the serial line, an AXI error response, the fabric's own errors) with 1, Ctrl-C with 130.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from tessera.cli.board_link import board_failures, open_board
from tessera.cli.main import HelpFormatter, run_command
from tessera.rtl.fabric.csr_map import REG
from tessera.runtime.board_gemm import gemm_session, run_sync
from tessera.runtime.gemm_inputs import add_input_args, inputs

PROG = "python -m tessera.cli.board_gemm"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--tty", required=True, help="serial device of the ULX3S (FTDI), e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=115200, help="serial speed (a standard termios speed)")
    p.add_argument("--preset", default="ulx3s", help="the preset the bitstream was built with")
    p.add_argument("--memory-bytes", type=int, default=64 * 1024, help="the board memory's size")
    sub = p.add_subparsers(dest="op", required=True)
    sub.add_parser("id", help="read the fabric's ID and CONFIG registers", formatter_class=HelpFormatter)
    g = sub.add_parser("gemm", help="run D = [C +] A x B on the board and check it against the golden model",
                       formatter_class=HelpFormatter)
    add_input_args(g)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(run, args, PROG)


def run(a) -> int:
    from tessera.cli.bench_tensor import check_input_args
    from tessera.cli.common import check_range, refuse_inapplicable
    from tessera.rtl.config import preset

    check_range(a.baud, "--baud", 1)
    check_range(a.memory_bytes, "--memory-bytes", 1)
    try:
        cfg = preset(a.preset)
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None
    try:
        if a.op == "id":
            board = open_board(a)
            print(f"ID {board.read32(REG['ID']):#010x}, CONFIG {board.read32(REG['CONFIG']):#010x}")
            return 0
        if a.a or a.b:
            refuse_inapplicable(a, {"seed": 1}, "seeds random data (--m/--n/--k) only; a run on the board "
                                                "has no other randomness")
        return _gemm(a, cfg, check_input_args(a))
    except board_failures() as e:
        print(f"{PROG}: error: the board: {e}", file=sys.stderr)
        return 1


def _gemm(a, cfg, out) -> int:
    from tessera.runtime.gemm_map import plan_gemm
    from tessera.tb.models.gemm import gemm

    x, y, z = inputs(a)
    (m, k), n = x.shape, y.shape[1]
    try:
        plan = plan_gemm(cfg, m, n, k, a.dtype, has_c=z is not None)
    except ValueError as e:
        raise ValueError(f"{'--a/--b' if a.a else '--m/--n/--k'}: {e}") from None
    if plan.end > a.memory_bytes:
        raise ValueError(f"--memory-bytes: the data need {plan.end} bytes, the board memory has "
                         f"{a.memory_bytes}")
    board = open_board(a)
    d, info = run_sync(gemm_session(plan, x, y, z), board)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, d)
    exact = bool(np.array_equal(d, gemm(x, y, z, a.dtype).view(d.dtype)))
    print(f"{m}x{n}x{k} {a.dtype}: {info['cycles']} fabric cycles, {info['bus_ops']} bus operations,"
          f" {'bit-exact' if exact else 'MISMATCH against the golden model'}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
