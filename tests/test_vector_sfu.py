# amaranth: UnusedElaboratable=no
# (the latency tests construct units that are refused before they could be elaborated)
"""The vector engine's special-function units (``rtl/vector/``) in Amaranth's simulator against the
golden model ``tb/models/vector.py``, bit for bit: FP32 patterns of every class (zeros,
subnormals, normals across the range, infinities, NaNs) and each algorithm's edges (exp's overflow
and underflow thresholds, gelu's +-6 and interval edges, powers of two for recip and rsqrt), with
the clock enable toggled at random (each result after exactly ``latency`` enabled cycles, ``y``
held while ``en`` is low). Seeds: ``$SEED`` or a fresh one, printed and named in every failure."""

import random
import struct

import numpy as np
import pytest
import softfloatpy as sf
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from tessera.rtl.tile.isa import Act
from tessera.rtl.vector import ExpUnit, GeluUnit, RecipUnit, RsqrtUnit, SpecialFunctions
from tessera.rtl.vector import gelu as rtl_gelu
from tessera.rtl.vector.dataflow import Dataflow
from tessera.tb.models import vector as model
from tessera.tools.harness import resolve_seed

CANONICAL_NAN = 0x7FC00000
CLASSES = [0, 0x80000000, 1, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00800000, 0x80800000, 0x00400000,
           0x3F800000, 0xBF800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
           0x7FA00000, 0xFF800001, 0x7F800001, 0x34000000, 0x35800000, 0x2A000000, 0x5F800000, 0x3FFFFFFF]


def f32(v: float) -> int:
    return struct.unpack("<I", struct.pack("<f", v))[0]


def _pow2s(lo: int, hi: int) -> list[int]:
    """2^k for k in lo .. hi as FP32 patterns (subnormal ones included)."""
    return [f32(2.0 ** k) for k in range(lo, hi + 1)]


# Per function: the model, the range of interest (uniform floats) and the algorithm's edges (each
# also taken with its neighbours within 3 ulps).
LN2 = 0.6931472
EXP_EDGES = [model.EXP_HI, model.EXP_LO, f32(-87.3365447), f32(-103.972), f32(2.0 ** -20), f32(0.5 * LN2),
             f32(-0.5 * LN2), f32(127.5 * LN2), f32(-149.5 * LN2), 0x3F800000, 0xBF800000]
RECIP_EDGES = _pow2s(-149, 127) + [0x3FFFFFFF, 0x00FFFFFF, 0x7F000000, 0x7E800000, 0x00000003]
GELU_EDGES = [f32(-6.0 + 0.5 * k) for k in range(25)] + [f32(2.0 ** -20), f32(-2.0 ** -20)]
FUNCTIONS = {
    "exp": (ExpUnit, model.exp, (-110.0, 95.0), EXP_EDGES),
    "recip": (RecipUnit, model.recip, (-4.0, 4.0), RECIP_EDGES),
    "rsqrt": (RsqrtUnit, model.rsqrt, (0.0, 4.0), RECIP_EDGES),
    "gelu": (GeluUnit, model.gelu, (-8.0, 8.0), GELU_EDGES),
}


def _inputs(rng: random.Random, n: int, span: tuple[float, float], edges: list[int]) -> list[int]:
    """The classes, then ``n`` draws: random bits, subnormals, normals of any exponent, uniform in
    ``span``, near an edge, infinities and NaNs with random payloads (random signs throughout)."""
    out = list(CLASSES)
    while len(out) < len(CLASSES) + n:
        sign = rng.getrandbits(1) << 31
        kind = rng.randrange(6)
        if kind == 0:
            v = rng.getrandbits(32)
        elif kind == 1:
            v = sign | rng.randrange(1, 1 << 23)
        elif kind == 2:
            v = sign | rng.randrange(1, 255) << 23 | rng.getrandbits(23)
        elif kind == 3:
            v = f32(rng.uniform(*span))
        elif kind == 4:
            edge = rng.choice(edges) ^ (sign if rng.random() < 0.3 else 0)
            v = (edge + rng.randrange(-3, 4)) & 0xFFFFFFFF
        else:
            v = sign | 0x7F800000 | (rng.getrandbits(23) if rng.random() < 0.7 else 0)
        out.append(v)
    return out


def _run(dut, elements: list[dict], rng: random.Random, seed: int) -> list[int]:
    """Drive ``elements`` (port -> value, one per enabled cycle) into ``dut`` with ``en`` high 80 %
    of the cycles (random inputs while it is low); return ``y`` of each element, read after
    exactly ``dut.latency`` enabled cycles, and check that ``y`` holds while ``en`` is low."""
    latency, got = dut.latency, []

    async def bench(ctx):
        pending, i = [], 0                # the elements in flight: one entry per enabled cycle
        while len(got) < len(elements):
            en = rng.random() < 0.8
            fill = elements[i] if en and i < len(elements) else {k: rng.getrandbits(32) & 0x7 if k == "act"
                                                               else rng.getrandbits(32) for k in elements[0]}
            for port, value in fill.items():
                ctx.set(getattr(dut, port), Act(value % 6) if port == "act" else value)
            ctx.set(dut.en, en)
            before = ctx.get(dut.y)
            await ctx.tick()
            if not en:
                assert ctx.get(dut.y) == before, f"y changed with en low (seed {seed})"
                continue
            pending.append(i if i < len(elements) else None)
            i += i < len(elements)
            if len(pending) > latency:
                pending.pop(0)
            if len(pending) == latency and pending[0] is not None:
                assert pending[0] == len(got)
                got.append(ctx.get(dut.y))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def _compare(name: str, xs, got, want, seed: int, extra=None):
    bad = [k for k in range(len(xs)) if got[k] != int(want[k])]
    if bad:
        k = bad[0]
        what = f"{name}({xs[k]:#010x})" + (f" [{extra[k]}]" if extra else "")
        raise AssertionError(f"{len(bad)} of {len(xs)} wrong (seed {seed}); first: {what} = {got[k]:#010x},"
                             f" want {int(want[k]):#010x}")


# (function, fadd_latency, fmul_latency, samples): every unit at the default latencies, exp and gelu
# once more at others. Building the simulation dominates (about 1 s per FP32Adder, 0.5 s per
# FP32Multiplier: 15 to 20 s per unit), so more configurations cost more than more samples.
CASES = [("exp", 3, 3, 1000), ("recip", 3, 3, 1000), ("rsqrt", 3, 3, 1000), ("gelu", 3, 3, 1000),
         ("exp", 1, 4, 500), ("gelu", 2, 1, 500)]


@pytest.mark.randomized(cost="heavy")
@pytest.mark.parametrize("name, fadd, fmul, samples", CASES, ids=[f"{c[0]}-a{c[1]}m{c[2]}" for c in CASES])
def test_unit_against_model(name, fadd, fmul, samples):
    seed = resolve_seed(None)
    print(f"seed {seed}")
    rng = random.Random(f"{seed}:{name}:{fadd}:{fmul}")
    cls, fn, span, edges = FUNCTIONS[name]
    xs = _inputs(rng, samples, span, edges)
    dut = cls(fadd_latency=fadd, fmul_latency=fmul)
    got = _run(dut, [{"x": x} for x in xs], rng, seed)
    _compare(name, xs, got, fn(np.array(xs, dtype=np.uint32)), seed)


@pytest.mark.slow
@pytest.mark.randomized(cost="heavy")
@pytest.mark.parametrize("fadd, fmul", [(3, 3)])
def test_special_functions_against_model(fadd, fmul):
    """A random function per element (act changes every cycle); NONE gives x delayed. (About 60 s:
    the simulation of 35 adders and 42 multipliers takes most of it to build.)"""
    seed = resolve_seed(None)
    print(f"seed {seed}")
    rng = random.Random(f"{seed}:sfu:{fadd}:{fmul}")
    edges = EXP_EDGES + GELU_EDGES + RECIP_EDGES[::8]
    xs = _inputs(rng, 400, (-10.0, 10.0), edges)
    acts = [rng.choice(list(Act)) for _ in xs]
    dut = SpecialFunctions(fadd_latency=fadd, fmul_latency=fmul)
    got = _run(dut, [{"x": x, "act": a.value} for x, a in zip(xs, acts, strict=True)], rng, seed)
    arr = np.array(xs, dtype=np.uint32)
    table = {Act.NONE: arr, Act.RELU: model.relu(arr), Act.EXP: model.exp(arr), Act.RECIP: model.recip(arr),
             Act.RSQRT: model.rsqrt(arr), Act.GELU: model.gelu(arr)}
    want = [table[a][k] for k, a in enumerate(acts)]
    _compare("act", xs, got, want, seed, extra=[a.name for a in acts])


def test_latencies_and_unit_counts():
    """The documented latencies and FP unit counts at the default latencies (3 and 3)."""
    got = {cls.__name__: (cls().latency, cls().adders, cls().multipliers)
           for cls in (ExpUnit, RecipUnit, RsqrtUnit, GeluUnit, SpecialFunctions)}
    assert got == {"ExpUnit": (63, 11, 12), "RecipUnit": (52, 8, 9), "RsqrtUnit": (61, 8, 13),
                   "GeluUnit": (49, 8, 8), "SpecialFunctions": (64, 35, 42)}


@pytest.mark.parametrize("cls", [ExpUnit, RecipUnit, RsqrtUnit, GeluUnit, SpecialFunctions])
@pytest.mark.parametrize("arg", ["fadd_latency", "fmul_latency"])
@pytest.mark.parametrize("bad", [0, 5, True, 3.0, "3", None])
def test_latency_is_checked(cls, arg, bad):
    with pytest.raises(ValueError, match=arg):
        cls(**{arg: bad})


def test_gelu_table_is_the_models():
    assert np.array_equal(np.array(rtl_gelu.GELU_TABLE, dtype=np.uint32), model.GELU_TABLE)
    assert np.array_equal(np.array(rtl_gelu.GELU_CENTRES, dtype=np.uint32), model.GELU_CENTRES)


class _Subtract(wiring.Component):
    """``Dataflow.sub`` of two variable operands."""

    a: In(32)
    b: In(32)
    en: In(1, init=1)
    y: Out(32)

    latency = 3

    def elaborate(self, platform):
        m = Module()
        df = Dataflow(m, self.en, self.latency, 3)
        m.d.comb += self.y.eq(df.sub(df.input(self.a, "a"), df.input(self.b, "b")).value)
        return m


def _f32_sub(a: int, b: int) -> int:
    r = int.from_bytes(sf.f32_sub(sf.Float32.from_bytes(a.to_bytes(4, "big")),
                                  sf.Float32.from_bytes(b.to_bytes(4, "big"))).to_bytes(), "big")
    return CANONICAL_NAN if (r & 0x7F800000) == 0x7F800000 and r & 0x7FFFFF else r


@pytest.mark.randomized
def test_sub_is_f32_sub():
    """a - b as a + (b with its sign flipped) is SoftFloat's f32_sub, signed zeros and NaNs included."""
    seed = resolve_seed(None)
    rng = random.Random(f"{seed}:sub")
    pairs = [(a, b) for a in CLASSES for b in CLASSES] + [(a, a) for a in CLASSES]
    pairs += [(rng.getrandbits(32), rng.getrandbits(32)) for _ in range(300)]
    got = _run(_Subtract(), [{"a": a, "b": b} for a, b in pairs], rng, seed)
    bad = [(a, b, g) for (a, b), g in zip(pairs, got, strict=True) if g != _f32_sub(a, b)]
    assert not bad, (f"{len(bad)} wrong (seed {seed}); first: {bad[0][0]:#010x} - {bad[0][1]:#010x}"
                     f" = {bad[0][2]:#010x}")
