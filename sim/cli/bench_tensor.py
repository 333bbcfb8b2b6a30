"""``tessera bench tensor``: one GEMM on the TensorCore RTL under Verilator, cycle-counted.

Random data (``--m --n --k --dtype [--seed]``) or given matrices (``--a --b [--c] --out``; formats
as in docs/numerics.md). The result is checked bit-exactly against tb/models/gemm.py; the JSON
holds ``cycles`` (first operand accepted to last result delivered, both inclusive), ``macs``,
``utilization`` = M*N*K / (R*C*cycles), ``scalesim_os_cycles`` and ``ratio_to_scalesim``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time

import numpy as np

from tessera.runtime.gemm_inputs import add_input_args, inputs, save_inputs


def register(sub):
    p = sub.add_parser("tensor", help="GEMM on the tensor core RTL (cycles, utilization vs SCALE-Sim)",
                       description="Run D = C + A x B on the TensorCore under Verilator, check it "
                                   "bit-exactly and report cycles and utilization.")
    p.add_argument("--preset", default="default", help="configuration preset: tiny, default, ulx3s")
    p.add_argument("--rows", type=int, help="array rows R (default: the preset's)")
    p.add_argument("--cols", type=int, help="array columns C (default: the preset's)")
    add_input_args(p)
    p.add_argument("--json", help="write the figures as JSON to this file")
    p.add_argument("--waves", action="store_true",
                   help="build with tracing and write a waveform (dump.vcd in the printed run directory; "
                        "as WAVES=1)")
    p.set_defaults(func=run)


def check_input_args(args):
    """``--seed`` (also the simulation's seed with ``--a/--b``) and ``--out``, before anything is
    built; :func:`tessera.runtime.gemm_inputs.inputs` checks the random-data numbers before it
    draws. Shared with the board's GEMM script."""
    from tessera.cli.common import check_output, check_seed

    check_seed(args.seed)
    return check_output(args.out, "--out", suffix=".npy")


def _config(args):
    from tessera.rtl.config import TensorConfig, preset

    try:
        cfg = preset(args.preset).tensor
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None
    for flag in ("rows", "cols"):
        value = getattr(args, flag)
        if value is not None:
            try:
                cfg = dataclasses.replace(cfg, **{flag: value})
            except ValueError as e:
                raise ValueError(f"--{flag}: {e}") from None
    assert isinstance(cfg, TensorConfig)
    return cfg


def core_verilog(cfg, name: str) -> str:
    """The simulated Verilog of the tensor core (hierarchical export), cached on disk
    (:mod:`tessera.tools.verilog_cache`): repeated runs, and the regression's cocotb tests of the
    same size (tests/test_tensor_core.py), export once."""
    from tessera.rtl.tensor.export import verilog_hierarchical
    from tessera.tools.verilog_cache import cached_verilog

    return cached_verilog(name, repr(cfg), lambda: verilog_hierarchical("tensor_core", cfg, name))


def run(args) -> int:
    from tessera.cli.common import check_output, write_output
    from tessera.rtl.tensor.interface import check_op
    from tessera.rtl.tensor.tensor_core import TensorCore
    from tessera.tb.models.gemm import scalesim_os_cycles
    from tessera.tools.harness import run as harness_run
    from tessera.tools.toolchain import BUILD

    cfg = _config(args)
    out_npy = check_input_args(args)
    out_json = check_output(args.json, "--json")
    a, b, c = inputs(args)
    m, k = a.shape
    n = b.shape[1]
    try:
        check_op(cfg, m, n, k, args.dtype)
    except ValueError as e:
        flag = "--a" if args.a else f"--{str(e).split()[0]}"
        raise ValueError(f"{flag}: {e}") from None

    name = f"tensor_core_{cfg.rows}x{cfg.cols}"
    text = core_verilog(cfg, name)
    tag = hashlib.sha256(a.tobytes() + b.tobytes() + (c.tobytes() if c is not None else b"")
                         + text.encode()).hexdigest()[:12]
    work = BUILD / "bench" / "tensor" / f"{name}-{m}x{n}x{k}-{args.dtype}-{tag}"
    save_inputs(work, a, b, c)
    t0 = time.time()
    harness_run(TensorCore, "tessera.tb.tensor.test_core", name=name, verilog_text=text, seed=args.seed,
                params={"cfg": dataclasses.asdict(cfg), "bench": str(work), "dtype": args.dtype},
                waves=True if args.waves else None, replay="--seed {seed}")
    wall = time.time() - t0
    res = json.loads((work / "result.json").read_text())
    cycles = res["last_result_cycle"] - res["first_operand_cycle"] + 1
    macs = m * n * k
    scalesim = scalesim_os_cycles(m, n, k, cfg.rows, cfg.cols)
    out = {
        "preset": args.preset, "rows": cfg.rows, "cols": cfg.cols, "interleave": cfg.interleave,
        "m": m, "n": n, "k": k, "dtype": args.dtype, "accumulate": c is not None, "seed": args.seed,
        "cycles": cycles,
        "cycles_from_descriptor": res["last_result_cycle"] - res["descriptor_cycle"] + 1,
        "macs": macs,
        "utilization": macs / (cfg.rows * cfg.cols * cycles),
        "scalesim_os_cycles": scalesim,
        "ratio_to_scalesim": cycles / scalesim,
        "bit_exact": bool(res["exact"]),
        "wall_seconds": round(wall, 1),
    }
    if out_npy:
        out_npy.parent.mkdir(parents=True, exist_ok=True)
        np.save(out_npy, np.load(work / "D.npy"))
    if out_json:
        write_output(out_json, json.dumps(out, indent=2) + "\n")
    print(f"tensor {cfg.rows}x{cfg.cols} {args.dtype} {m}x{n}x{k}: {cycles} cycles, "
          f"utilization {100 * out['utilization']:.2f}%, SCALE-Sim OS {scalesim} cycles, "
          f"ratio {out['ratio_to_scalesim']:.3f}, bit-exact {out['bit_exact']}")
    return 0 if out["bit_exact"] else 1
