"""GEMM mapping (sim/runtime/gemm_map.py) through the ISA-level fabric model (tb/models/fabric.py).

Pure Python: plan -> pack -> run every tile's program on the model -> unpack, compared bit for
bit with the golden GEMM (tb/models/gemm.py); every program free of local hazards
(``Program.hazards()``); the model's cross-tile checks fire on broken programs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tessera.rtl.config import CacheConfig, FabricConfig, NocConfig, TensorConfig, TileConfig, preset
from tessera.runtime.asm import assemble
from tessera.runtime.gemm_map import plan_gemm
from tessera.runtime.vector_programs import with_sfu
from tessera.tb.models import vector as vector_model
from tessera.tb.models.fabric import FabricError, run_programs
from tessera.tb.models.gemm import gemm
from tessera.tools.harness import resolve_seed


def odd_config() -> FabricConfig:
    """8-byte words, a 2 x 4 mesh of 4 x 2 cores, small memories and small MATMUL limits."""
    return FabricConfig(
        name="odd",
        tensor=TensorConfig(rows=4, cols=2, max_m=24, max_n=20, max_k=30),
        noc=NocConfig(width=2, height=4, flit_bits=64),
        cache=CacheConfig(sets=32, ways=2, mshrs=2, data_bytes=8, addr_bits=24, id_bits=20),
        tile=TileConfig(scratchpad_bytes=4 * 1024, scratchpad_banks=2, accumulator_bytes=1024, word_bytes=8),
        mem_ports=1,
    )


def _operands(rng, dtype, m, n, k, has_c):
    if dtype == "int8":
        a = rng.integers(-128, 128, (m, k)).astype(np.int8)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        c = rng.integers(-(1 << 31), 1 << 31, (m, n)).astype(np.int32) if has_c else None
        return a, b, c

    def bf16(shape):
        x = (rng.standard_normal(shape) * np.exp2(rng.integers(-6, 6, shape))).astype(np.float32)
        bits = (x.view(np.uint32) >> 16).astype(np.uint16)
        special = rng.random(shape) < 0.01               # a few zeros, infinities, NaNs, subnormals
        pool = np.array([0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC1, 0x0001, 0x8003], dtype=np.uint16)
        bits[special] = rng.choice(pool, special.sum())
        return bits

    c = rng.standard_normal((m, n)).astype(np.float32).view(np.uint32) if has_c else None
    return bf16((m, k)), bf16((k, n)), c


def _hazard_free(plan):
    for node, prog in plan.programs.items():
        hz = prog.hazards()
        assert not hz, f"tile {node}: {hz[:3]}"


def run_case(cfg, m, n, k, dtype, has_c, multicast, rng, *, sched_seed=None, base=0, acc_buffers=None,
             bias=False, act="none"):
    plan = plan_gemm(cfg, m, n, k, dtype, has_c=has_c, multicast=multicast, base=base,
                     acc_buffers=acc_buffers, bias=bias, act=act)
    a, b, c = _operands(rng, dtype, m, n, k, has_c)
    bv = rng.standard_normal(n).astype(np.float32).view(np.uint32) if bias else None
    mem = bytearray(plan.end)
    for addr, blob in plan.pack(a, b, c, bv):
        mem[addr:addr + len(blob)] = blob
    stats = run_programs(cfg, plan.words, mem, seed=sched_seed)
    d = plan.unpack(lambda addr, nb: mem[addr:addr + nb])
    ref = gemm(a, b, c, dtype)
    if bias:
        ref = vector_model.add(ref, bv[None, :])
    if act in ("relu", "gelu"):
        ref = getattr(vector_model, act)(ref)
    bad = np.argwhere(d.view(np.uint32) != ref.view(np.uint32))
    assert not len(bad), (f"{cfg.name} {m}x{n}x{k} {dtype} c={has_c} mc={multicast}: {len(bad)} wrong,"
                          f" first {tuple(bad[0])}: {d.view(np.uint32)[tuple(bad[0])]:#x} != "
                          f"{ref.view(np.uint32)[tuple(bad[0])]:#x}; summary {plan.summary()}")
    assert all(t["state"] == "DONE" for t in stats["tiles"])
    s = plan.summary()
    assert stats["read_words"] == s["l2_read_words"]
    assert stats["write_words"] == s["l2_write_words"]
    assert stats["macs"] == m * n * k
    return plan, stats


CASES = {"tiny": 40, "default": 14, "odd": 24}
TOP = {"tiny": 300, "default": 260, "odd": 160}      # largest dimension drawn


@pytest.mark.randomized
@pytest.mark.parametrize("name", list(CASES))
def test_random_shapes(name):
    cfg = odd_config() if name == "odd" else preset(name)
    base_seed = resolve_seed(None)
    seed = base_seed + sum(map(ord, name))
    print(f"seed {seed} (replay with SEED={base_seed})")
    rng = np.random.default_rng(seed)
    top = TOP[name]
    for i in range(CASES[name]):
        shape = [int(v) for v in rng.integers(1, top + 1, 3)]
        if i % 4 == 0:                                     # small dimensions, below the mesh
            shape[int(rng.integers(0, 3))] = int(rng.integers(1, 9))
        m, n, k = shape
        dtype = ("bf16", "int8")[i % 2]
        has_c = bool(rng.integers(0, 2))
        multicast = i % 3 != 2
        base = int(rng.integers(0, 4)) * cfg.cache.line_bytes
        acc_buffers = 2 if i % 5 == 1 else None          # two output tiles in the accumulators
        plan, st = run_case(cfg, m, n, k, dtype, has_c, multicast, rng, sched_seed=seed + i, base=base,
                            acc_buffers=acc_buffers)
        sm = plan.summary()
        print(f"  {m}x{n}x{k} {dtype} c={int(has_c)} mc={int(multicast)}: Mt {sm['Mt']} Nt {sm['Nt']}"
              f" Kc {sm['Kc']} rounds {sm['rounds']} chunks {sm['chunks']} acc bufs {sm['acc_buffers']}"
              f" tiles {sm['tiles_used']}"
              f" L2 words {st['read_words']}")
        if i < 6 or plan.acc_buffers == 2:
            _hazard_free(plan)
    if name == "default":                                  # several rounds, a partial last round
        for m, n, k, dtype, has_c in ((700, 600, 70, "bf16", True), (520, 900, 40, "int8", False)):
            plan, st = run_case(cfg, m, n, k, dtype, has_c, True, rng, sched_seed=seed)
            print(f"  {m}x{n}x{k} {dtype}: {plan.summary()}")
            assert plan.rounds > 1
    # the epilogue (bias + relu, or gelu on the special functions, on the vector engines), with one
    # and two accumulator buffers
    for i in range(5):
        m, n, k = (int(v) for v in rng.integers(1, top + 1, 3))
        plan, _ = run_case(with_sfu(cfg) if i == 4 else cfg, m, n, k, "bf16", bool(i % 2), i != 3, rng,
                           sched_seed=seed + i, acc_buffers=2 if i == 2 else None, bias=i != 1,
                           act=("none", "relu", "relu", "relu", "gelu")[i])
        _hazard_free(plan)
    # hazards on every program of a few plans, including multi-round ones
    for m, n, k in ((1, 1, 1), (top, 7, 129), (5, top, 200)):
        for has_c in (False, True):
            _hazard_free(plan_gemm(cfg, m, n, k, "bf16", has_c=has_c))
            _hazard_free(plan_gemm(cfg, m, n, k, "int8", has_c=has_c, acc_buffers=2))


def test_sizes_and_multicast_savings():
    cfg = preset("default")
    on = plan_gemm(cfg, 512, 512, 512, "bf16", has_c=False, multicast=True)
    off = plan_gemm(cfg, 512, 512, 512, "bf16", has_c=False, multicast=False)
    s_on, s_off = on.summary(), off.summary()
    print("512^3 default multicast on :", s_on)
    print("512^3 default multicast off:", s_off)
    assert (s_on["Mt"], s_on["Nt"], s_on["Kc"], s_on["rounds"]) == (128, 128, 64, 1)
    s256 = plan_gemm(cfg, 256, 256, 256, "bf16", has_c=False).summary()
    assert (s256["Mt"], s256["Nt"], s256["Kc"]) == (64, 64, 128)
    rng = np.random.default_rng(0)          # the counts do not depend on the data
    _, st_on = run_case(cfg, 512, 512, 512, "bf16", False, True, rng)
    _, st_off = run_case(cfg, 512, 512, 512, "bf16", False, False, rng)
    print(f"L2 read words 512^3 bf16 on default: multicast {st_on['read_words']},"
          f" unicast {st_off['read_words']} ({st_off['read_words'] / st_on['read_words']:.2f}x)")
    assert st_off["read_words"] >= 3 * st_on["read_words"]
    # with multicast the L2 sees A and B once: the compulsory traffic
    assert st_on["read_words"] * 16 == 2 * 512 * 512 * 2
    _hazard_free(on)
    _hazard_free(off)
    small = plan_gemm(cfg, 33, 50, 70, "int8", has_c=True)
    a, b, c = _operands(rng, "int8", 33, 50, 70, True)
    mem = bytearray(small.end)
    for addr, blob in small.pack(a, b, c):
        mem[addr:addr + len(blob)] = blob
    run_programs(cfg, small.words, mem, seed=5)
    d = small.unpack(lambda addr, nb: mem[addr:addr + nb])
    assert np.array_equal(d, gemm(a, b, c, "int8"))
    for plan in (on, off):                      # the planner's words are what the assembler makes
        for prog in plan.programs.values():
            assert assemble(prog.text(), cfg) == prog.words


def _mc_plan():
    cfg = preset("tiny")
    return cfg, plan_gemm(cfg, 64, 64, 200, "bf16", has_c=False, multicast=True)


def _run_words(cfg, plan, words, seed=None):
    rng = np.random.default_rng(1)
    a, b, _ = _operands(rng, "bf16", plan.m, plan.n, plan.k, False)
    mem = bytearray(plan.end)
    for addr, blob in plan.pack(a, b):
        mem[addr:addr + len(blob)] = blob
    run_programs(cfg, words, mem, seed=seed)
    return np.array_equal(plan.unpack(lambda addr, nb: mem[addr:addr + nb]), gemm(a, b, None, "bf16"))


def test_model_catches_missing_sync():
    # 4-wide groups: with 2-wide ones the model (MATMULs atomic) cannot show the race, because
    # the other tile of a pair SENDs the chunk in between only after its own MATMUL
    cfg = preset("default")
    plan = plan_gemm(cfg, 512, 512, 512, "bf16", has_c=False, multicast=True)
    assert plan.chunks >= 3 and plan.multicast
    words = {t: [w for w in ws if w & 0xF != 6] for t, ws in plan.words.items()}
    caught = 0
    for s in range(20):
        try:
            ok = _run_words(cfg, plan, words, seed=s)
        except FabricError as e:
            assert "race" in str(e) or "slot" in str(e), e
            caught += 1
        else:
            caught += not ok
    assert caught, "dropping every SYNC went unnoticed"


def test_model_catches_recv_mismatch_and_deadlock():
    cfg, plan = _mc_plan()
    words = plan.words
    # a RECV with one row fewer than its SEND
    t, idx = next((t, i) for t, ws in words.items() for i, w in enumerate(ws)
                  if w & 0xF == 1 and (w >> 4) & 3 == 2)
    bad = {u: list(ws) for u, ws in words.items()}
    bad[t][idx] -= 1 << 88
    with pytest.raises(FabricError, match="differs"):
        _run_words(cfg, plan, bad)
    # the SEND turned into a RECV: nobody sends, everybody waits
    s, idx = next((t, i) for t, ws in words.items() for i, w in enumerate(ws)
                  if w & 0xF == 1 and (w >> 4) & 3 == 1)
    bad = {u: list(ws) for u, ws in words.items()}
    bad[s][idx] = (bad[s][idx] & ~(3 << 4)) | (2 << 4)
    with pytest.raises(FabricError, match="deadlock"):
        _run_words(cfg, plan, bad)
    # a tile that skips a SYNC: the others wait for it forever
    bad = {u: list(ws) for u, ws in words.items()}
    bad[3] = [w for i, w in enumerate(bad[3]) if not (w & 0xF == 6 and i == max(
        j for j, v in enumerate(bad[3]) if v & 0xF == 6))]
    with pytest.raises(FabricError, match="deadlock"):
        _run_words(cfg, plan, bad)


def test_model_catches_wrong_accumulate():
    cfg, plan = _mc_plan()
    words = {t: list(ws) for t, ws in plan.words.items()}
    t, idx = next((t, i) for t, ws in words.items() for i, w in enumerate(ws)
                  if w & 0xF == 3 and (w >> 6) & 1)
    words[t][idx] &= ~(1 << 6)                  # an accumulating MATMUL overwrites instead
    assert not _run_words(cfg, plan, words)
    assert _run_words(cfg, plan, plan.words)


def test_bad_parameters():
    cfg = preset("tiny")
    with pytest.raises(ValueError, match="dtype"):
        plan_gemm(cfg, 4, 4, 4, "fp8", has_c=False)
    with pytest.raises(ValueError, match="m = 0"):
        plan_gemm(cfg, 0, 4, 4, "bf16", has_c=False)
    with pytest.raises(ValueError, match="acc_buffers"):
        plan_gemm(cfg, 4, 4, 4, "bf16", has_c=False, acc_buffers=3)
    with pytest.raises(ValueError, match="base"):
        plan_gemm(cfg, 4, 4, 4, "bf16", has_c=False, base=8)
    small = replace(cfg, cache=replace(cfg.cache, addr_bits=16))
    with pytest.raises(ValueError, match="addr_bits"):
        plan_gemm(small, 300, 300, 300, "bf16", has_c=True)
