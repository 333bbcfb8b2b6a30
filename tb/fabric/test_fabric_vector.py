"""cocotb: a GEMM with a fused epilogue on the vector engines of every tile (docs/vector.md).

Each of the four tiles computes its own D = A x B (BF16, FP32 accumulation) and then, on its vector
engine, E = relu(D + bias) (``vector add`` with a ROW operand and ``act=relu``) into the
accumulator memory, and F = BF16(E) transposed into the scratchpad (the A^T operand layout of the
next layer). E is stored to memory. F is checked through a second MATMUL, F^T x I (an identity B):
every product is exact and adds to +0, so its D is F's values as FP32 exactly. The tile then
computes the row sums and row maxima of E (``red=sum``, ``red=max``) and stores them too.

Everything is compared bit for bit with the golden models (tb/models/gemm.py, tb/models/vector.py).
Then one tile is given a VECTOR with a special function, which this build of the engine refuses:
it must stop with FAULT while the other tiles finish.
"""

from __future__ import annotations

import cocotb
import numpy as np

import tessera.tb
from tessera.rtl.config import fabric_from_dict
from tessera.runtime import host as hs
from tessera.runtime.asm import Program
from tessera.tb.fabric.run_gemm import start_fabric
from tessera.tb.models import vector as vm
from tessera.tb.models.gemm import gemm
from tessera.tb.stream import rng_for

M, N, K = 8, 12, 16
MAX_CYCLES = 40_000


def pitch(b: int, w: int) -> int:
    return -(-b // w) * w


def tile_job(cfg, rng, t: int):
    """Program words, memory image and expected results of tile ``t``."""
    w = cfg.tile.word_bytes
    base = 0x10000 + 0x8000 * t
    a_at, b_at, bias_at, i_at = base, base + 0x1000, base + 0x2000, base + 0x2800
    e_at, f_at, s_at = base + 0x3000, base + 0x4000, base + 0x5000
    a = (rng.normal(0, 1, (M, K)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    b = (rng.normal(0, 1, (K, N)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    bias = rng.normal(0, 1, N).astype(np.float32).view(np.uint32)
    pm, pn, pd = pitch(2 * M, w), pitch(2 * N, w), pitch(4 * N, w)
    sp_half = cfg.tile.scratchpad_bytes // 2
    acc_d, acc_bias, acc_e, acc_s = 0, pd * M, pd * M + pitch(4 * N, w), 2 * pd * M + pitch(4 * N, w)
    acc_x, acc_f = acc_s + pitch(8 * M, w), acc_s + pitch(8 * M, w)
    sp_f, sp_i = sp_half // 2, sp_half + sp_half // 2
    p = Program(cfg)
    p.load(sp=0, mem=a_at, rows=K, bytes=2 * M, stride=pm)
    p.load(sp=sp_half, mem=b_at, rows=K, bytes=2 * N, stride=pn)
    p.load(acc=acc_bias, mem=bias_at, rows=1, bytes=4 * N)
    p.load(sp=sp_i, mem=i_at, rows=N, bytes=2 * N, stride=pn)
    p.barrier("loads")
    p.matmul("bf16", m=M, n=N, k=K, a=0, b=sp_half, acc=acc_d)
    p.barrier("matmuls")
    p.vector("add", x=acc_d, yrow=acc_bias, d=acc_e, rows=M, cols=N, act="relu")
    p.vector("pass", x=acc_e, d=sp_f, rows=M, cols=N, fmt="bf16t")
    p.vector("pass", x=acc_e, d=acc_s, rows=M, cols=N, red="sum")
    p.vector("pass", x=acc_e, d=acc_s + 4 * M, rows=M, cols=N, red="max")
    p.barrier("vectors")
    p.store(acc=acc_e, mem=e_at, rows=M, bytes=4 * N, stride=pd)
    p.store(acc=acc_s, mem=s_at, rows=1, bytes=8 * M)
    p.matmul("bf16", m=M, n=N, k=N, a=sp_f, b=sp_i, acc=acc_x)
    p.barrier("matmuls")
    p.store(acc=acc_x, mem=f_at, rows=M, bytes=4 * N, stride=pd)
    p.end()
    at = np.zeros((K, pm // 2), np.uint16)
    at[:, :M] = a.T
    bb = np.zeros((K, pn // 2), np.uint16)
    bb[:, :N] = b
    eye = np.zeros((N, pn // 2), np.uint16)
    eye[np.arange(N), np.arange(N)] = 0x3F80
    image = [(a_at, at.tobytes()), (b_at, bb.tobytes()), (bias_at, bias.tobytes()), (i_at, eye.tobytes()),
             (e_at, bytes(pd * M)), (f_at, bytes(pd * M)), (s_at, bytes(8 * M))]
    d = gemm(a, b, None, "bf16").view(np.uint32)
    e = vm.relu(vm.add(d, bias[None, :]))
    want = {"e": (e_at, e), "f": (f_at, vm.to_bf16(e).astype(np.uint32) << 16),
            "s": (s_at, np.concatenate([vm.rowsum(e), vm.rowmax(e)])[None, :])}
    del acc_f
    return list(p.words), image, want, pd


@cocotb.test(timeout_time=2000, timeout_unit="us")
async def fused_epilogue(dut):
    params = tessera.tb.params()
    cfg = fabric_from_dict(params["cfg"])
    assert cfg.tiles >= 4, "needs four tiles"
    rng = np.random.default_rng(rng_for("fabric-vector").randrange(1 << 30))
    mem, host = await start_fabric(dut, cfg, params)
    jobs = {t: tile_job(cfg, rng, t) for t in range(4)}
    # tile 3: a special function, which this engine refuses (FAULT), after its GEMM's loads
    bad = Program(cfg)
    bad.vector("pass", x=0, d=0x100, rows=2, cols=4, act="gelu")
    bad.end()
    for _, image, _, _ in jobs.values():
        for addr, data in image:
            mem.write(addr, data)
    programs = {t: jobs[t][0] for t in range(3)}
    programs[3] = list(bad.words)
    pos = await host.run(hs.launch(programs))
    idle = await host.run(hs.wait_idle(programs, pos, max_cycles=MAX_CYCLES, poll=32))
    await host.run(hs.flush(invalidate=True))
    st = idle.statuses
    assert st[3]["state"] == "ERROR" and st[3]["error"] == 9, f"tile 3 (gelu refused): {st[3]}"
    for t in range(3):
        assert st[t]["state"] == "DONE", f"tile {t}: {st[t]}"
        _, _, want, pd = jobs[t]
        for name, (at, value) in want.items():
            rows, cols = value.shape
            row_bytes = pd if name != "s" else 4 * cols
            got = np.frombuffer(mem.read(at, rows * row_bytes), np.uint32).reshape(rows, -1)[:, :cols]
            bad_at = np.argwhere(got != value)
            assert not bad_at.size, (f"tile {t} {name}: {len(bad_at)} words differ, first at {bad_at[0]}:"
                                     f" got {got[tuple(bad_at[0])]:#x}, want {value[tuple(bad_at[0])]:#x}")
    dut._log.info("bias + relu, BF16 transposed, rowsum, rowmax on tiles 0..2: bit-exact;"
                  " tile 3's gelu: FAULT")
