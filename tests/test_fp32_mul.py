# amaranth: UnusedElaboratable=no
# (the latency test constructs a multiplier that is refused before it could be elaborated)
"""The FP32 x FP32 multiplier (``rtl/numeric/fp32_mul.py``, the vector engine's) in Amaranth's
simulator against Berkeley SoftFloat: random bit patterns, values that round to and from the
subnormals, overflow, ties, and every special class, at each supported latency, with the clock
enable toggled at random (the result must come after exactly ``latency`` enabled cycles)."""

from __future__ import annotations

import random

import pytest
import softfloatpy as sf
from amaranth.sim import Simulator

from tessera.rtl.numeric.fp32_mul import FP32Multiplier
from tessera.tools.harness import resolve_seed

CANONICAL_NAN = 0x7FC00000
SPECIALS = [0, 0x80000000, 1, 0x80000001, 0x007FFFFF, 0x00800000, 0x00400000, 0x3F800000, 0xBF800000,
            0x3F000000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7FA00000, 0x34000000,
            0x2A000000, 0x1F800000, 0x5F800000, 0x3FFFFFFF, 0x3F800001]


def f32_mul(a: int, b: int) -> int:
    r = int.from_bytes(sf.f32_mul(sf.Float32.from_bytes(a.to_bytes(4, "big")),
                                  sf.Float32.from_bytes(b.to_bytes(4, "big"))).to_bytes(), "big")
    return CANONICAL_NAN if (r & 0x7F800000) == 0x7F800000 and r & 0x7FFFFF else r


def _operands(rng: random.Random, n: int):
    out = [(a, b) for a in SPECIALS for b in SPECIALS]
    for _ in range(n):
        kind = rng.random()
        if kind < 0.4:
            a, b = rng.getrandbits(32), rng.getrandbits(32)
        else:       # exponents chosen so that products land near the subnormal and overflow edges
            ea = rng.randrange(0, 255)
            eb = rng.choice([rng.randrange(0, 255),                                   # subnormal edge,
                             max(0, min(254, 127 - ea + rng.randrange(-30, 6))),      # overflow edge
                             max(0, min(254, 381 - ea + rng.randrange(-2, 3)))])
            a = rng.getrandbits(1) << 31 | ea << 23 | rng.getrandbits(23)
            b = rng.getrandbits(1) << 31 | eb << 23 | rng.choice([rng.getrandbits(23), 0, 0x7FFFFF, 1 << 22])
        out.append((a, b))
    return out


@pytest.mark.randomized
@pytest.mark.parametrize("latency", [1, 2, 3, 4])
def test_fp32_mul_against_softfloat(latency):
    seed = resolve_seed(None)
    rng = random.Random(f"{seed}:{latency}")
    ops = _operands(rng, 1500)
    dut = FP32Multiplier(latency)
    got = []

    async def bench(ctx):
        pending = []                     # operands in flight: one entry per enabled cycle
        i = 0
        while i < len(ops) or len(got) < len(ops):
            en = rng.random() < 0.8
            # with en low the unit must ignore the operands (random ones here) and hold p
            a, b = (ops[i] if i < len(ops) else (0, 0)) if en else (rng.getrandbits(32), rng.getrandbits(32))
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.en, en)
            before = ctx.get(dut.p)
            await ctx.tick()
            if not en:
                assert ctx.get(dut.p) == before, f"p changed with en low (seed {seed})"
            if en:
                pending.append(i if i < len(ops) else None)
                i += 1 if i < len(ops) else 0
                if len(pending) > latency:
                    pending.pop(0)
                if len(pending) == latency and pending[0] is not None and len(got) < len(ops):
                    got.append((pending[0], ctx.get(dut.p)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert [k for k, _ in got] == list(range(len(ops)))
    bad = [(ops[k], p) for k, p in got if p != f32_mul(*ops[k])]
    assert not bad, (f"{len(bad)} of {len(ops)} wrong (seed {seed}); first: {bad[0][0][0]:#010x} *"
                     f" {bad[0][0][1]:#010x} = {bad[0][1]:#010x}, want {f32_mul(*bad[0][0]):#010x}")


def test_fp32_mul_latency_is_checked():
    with pytest.raises(ValueError, match="latency"):
        FP32Multiplier(5)
