"""PC side of the fabric on the board, on the command line: a GEMM through the UART bridge,
checked against the golden model (the session: :mod:`tessera.runtime.board_gemm`, running the host
sequence of :mod:`tessera.runtime.host`).

    python -m tessera.cli.board_gemm --tty /dev/ttyUSB0 id
    python -m tessera.cli.board_gemm --tty /dev/ttyUSB0 gemm --m 16 --n 24 --k 40 --dtype bf16 [--c random]
    python -m tessera.cli.board_gemm --tty /dev/ttyUSB0 gemm --a A.npy --b B.npy [--c C.npy] --out D.npy
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from tessera.rtl.fabric.csr_map import REG
from tessera.runtime.board_gemm import gemm_session, run_sync
from tessera.runtime.gemm_inputs import add_input_args, inputs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tessera.cli.board_gemm", description=__doc__.split("\n")[0])
    p.add_argument("--tty", required=True, help="serial device of the ULX3S (FTDI), e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--preset", default="ulx3s", help="the preset the bitstream was built with")
    p.add_argument("--memory-bytes", type=int, default=64 * 1024, help="the board memory's size")
    sub = p.add_subparsers(dest="op", required=True)
    sub.add_parser("id", help="read the fabric's ID and CONFIG registers")
    g = sub.add_parser("gemm", help="run D = [C +] A x B on the board and check it against the golden model")
    add_input_args(g)
    a = p.parse_args(argv)

    from tessera.rtl.config import preset
    from tessera.runtime.board_link import Board, SerialLink

    cfg = preset(a.preset)
    board = Board(SerialLink(a.tty, a.baud, timeout=5.0))
    if a.op == "id":
        print(f"ID {board.read32(REG['ID']):#010x}, CONFIG {board.read32(REG['CONFIG']):#010x}")
        return 0
    from tessera.runtime.gemm_map import plan_gemm
    from tessera.tb.models.gemm import gemm

    try:
        x, y, z = inputs(a)
    except ValueError as e:
        p.error(str(e))
    (m, k), n = x.shape, y.shape[1]
    plan = plan_gemm(cfg, m, n, k, a.dtype, has_c=z is not None)
    if plan.end > a.memory_bytes:
        p.error(f"--m/--n/--k: the data need {plan.end} bytes, the board memory has {a.memory_bytes}")
    d, info = run_sync(gemm_session(plan, x, y, z), board)
    if a.out:
        np.save(a.out, d)
    exact = bool(np.array_equal(d, gemm(x, y, z, a.dtype).view(d.dtype)))
    print(f"{m}x{n}x{k} {a.dtype}: {info['cycles']} fabric cycles, {info['bus_ops']} bus operations,"
          f" {'bit-exact' if exact else 'MISMATCH against the golden model'}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
