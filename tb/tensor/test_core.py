"""cocotb testbench of the TensorCore: random operations checked bit-exactly against tb/models/gemm.

Parameters (``tessera.tb.params()``): ``cfg`` (TensorConfig fields), ``ops`` (list of
``{m, n, k, dtype, acc[, bad]}``), ``special_prob`` (share of special values in A, B, C),
``ab_idle`` / ``c_idle`` (probability of a gap in valid), ``d_ready`` (probability of ready),
``pad_garbage`` (random bits in padding lanes and unused bytes), ``bench`` (directory with
A/B/C .npy inputs: run them, write D.npy and result.json there).
"""

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

import tessera.tb
from tessera.rtl.config import NumericConfig, TensorConfig
from tessera.rtl.tensor.interface import DTYPES
from tessera.tb.models.gemm import gemm
from tessera.tb.stream import rng_for
from tessera.tb.tensor.driver import CoreDriver, Op
from tessera.tb.tensor.feed import OpStreams, random_bf16, random_f32, random_i32, random_int8


def config_from(p) -> TensorConfig:
    c = dict(p)
    c["numeric"] = NumericConfig(**c.get("numeric", {}))
    return TensorConfig(**c)


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for name in ("op__valid", "a__valid", "b__valid", "c__valid"):
        getattr(dut, name).value = 0
    dut.d__ready.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 1)


def make_op(cfg, spec, nprng, special_prob, pad_rng):
    m, n, k, dtype, acc = spec["m"], spec["n"], spec["k"], spec["dtype"], int(spec.get("acc", 0))
    code = spec.get("code", DTYPES.get(dtype, 3))
    if spec.get("bad"):
        return Op(m, n, k, code, acc, bad=True)
    if dtype == "bf16":
        a = random_bf16(nprng, (m, k), special_prob)
        b = random_bf16(nprng, (k, n), special_prob)
        c = random_f32(nprng, (m, n), special_prob) if acc else None
    else:
        a = random_int8(nprng, (m, k))
        b = random_int8(nprng, (k, n))
        c = random_i32(nprng, (m, n)) if acc else None
    expect = gemm(a, b, c, dtype).view(np.uint32)
    streams = OpStreams(a, b, c, dtype, cfg.rows, cfg.cols, cfg.interleave, pad_rng=pad_rng)
    return Op(m, n, k, code, acc, streams=streams, expect=expect)


@cocotb.test()
async def tensor_core_random(dut):
    p = tessera.tb.params()
    cfg = config_from(p["cfg"])
    rng = rng_for("tensor")
    nprng = np.random.default_rng(rng.randrange(1 << 62))
    await reset(dut)
    if p.get("bench"):
        await run_bench(dut, cfg, p, rng)
        return
    pad_rng = np.random.default_rng(rng.randrange(1 << 62)) if p.get("pad_garbage", True) else None
    ops = [make_op(cfg, spec, nprng, p.get("special_prob", 0.0), pad_rng) for spec in p["ops"]]
    drv = CoreDriver(dut, cfg, rng=rng, ab_idle=p.get("ab_idle", 0.0), c_idle=p.get("c_idle", 0.0),
                     d_ready=p.get("d_ready", 1.0))
    budget = sum(8 * (op.streams.steps + op.m * 4 + 200) for op in ops if not op.bad) + 200
    await drv.run(ops, budget)
    for op in ops:
        if not op.bad:
            dut._log.info(f"op m={op.m} n={op.n} k={op.k} dtype={op.dtype_code} acc={op.accumulate}: "
                          f"first operand @{op.first_operand}, last result @{op.last_result}")
    stats = [{"m": op.m, "n": op.n, "k": op.k, "bad": op.bad, "first": op.first_operand,
              "last": op.last_result} for op in ops]
    Path(os.environ["TESSERA_RUN_DIR"], "ops.json").write_text(json.dumps(stats))
    assert not drv.errors, "\n".join(drv.errors)
    assert all(op.bad or op.last_result is not None for op in ops)


async def run_bench(dut, cfg, p, rng):
    d = Path(p["bench"])
    dtype = p["dtype"]
    a = np.load(d / "A.npy")
    b = np.load(d / "B.npy")
    c = np.load(d / "C.npy") if (d / "C.npy").exists() else None
    expect = gemm(a, b, c, dtype).view(np.uint32)
    m, k = a.shape
    n = b.shape[1]
    streams = OpStreams(a, b, c, dtype, cfg.rows, cfg.cols, cfg.interleave)
    op = Op(m, n, k, DTYPES[dtype], int(c is not None), streams=streams, expect=expect)
    drv = CoreDriver(dut, cfg, rng=rng, keep_results=True)
    await drv.run([op], 4 * streams.steps + 20 * (m + cfg.rows * cfg.interleave) + 1000)
    out = op.results.view(np.int32) if dtype == "int8" else op.results
    np.save(d / "D.npy", out)
    result = {"first_operand_cycle": op.first_operand, "last_result_cycle": op.last_result,
              "descriptor_cycle": op.accepted, "errors": drv.errors,
              "exact": not drv.errors and op.last_result is not None}
    (d / "result.json").write_text(json.dumps(result))
    assert not drv.errors, "\n".join(drv.errors)
