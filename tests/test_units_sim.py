# amaranth: UnusedElaboratable=no
# (routers built only for their routing function are never elaborated)
"""Fast unit tests of small blocks in Amaranth's own simulator (no Verilator, under a second each).

Each block is checked against a reference written here from its docstring, on random inputs
from the printed seed (``SEED=N`` replays): the L2 slice's true-LRU policy (``rtl/cache/lru.py``),
the round-robin arbiter of the router and the NI (``rtl/noc/arbiter.py``), the router's XY
multicast routing function (``Router._route_of``) and the fabric's address decoders
(``rtl/fabric/messages.py``: owner slice, slice address, memory address).
"""

from __future__ import annotations

import random

import pytest
from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from tessera.rtl.cache.lru import LruPolicy
from tessera.rtl.config import NocConfig, preset
from tessera.rtl.fabric.messages import memory_addr, owner, slice_addr
from tessera.rtl.noc.arbiter import after, round_robin
from tessera.rtl.noc.layouts import flit_layout
from tessera.rtl.noc.router import Router
from tessera.tools.harness import resolve_seed


def _simulate(dut, bench, clocked=False):
    sim = Simulator(dut)
    if clocked:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _lru_reference(ages, touch, valid, reserved):
    """(ages after touching ``touch``, victim, victim_ok, victim_valid) per LruPolicy's docstring."""
    w = len(ages)
    nxt = [0 if i == touch else ages[i] + 1 if ages[i] < ages[touch] else ages[i] for i in range(w)]
    free = [i for i in range(w) if not reserved >> i & 1]
    invalid = [i for i in free if not valid >> i & 1]
    if invalid:
        return nxt, invalid[0], 1, 0
    if not free:
        return nxt, None, 0, 0
    oldest = max(free, key=lambda i: ages[i])             # ages are a permutation: no ties
    return nxt, oldest, 1, 1


@pytest.mark.randomized
@pytest.mark.parametrize("ways", [1, 2, 3, 4, 8])
def test_lru_policy(ways):
    seed = resolve_seed(None)
    rng = random.Random(f"{seed}:{ways}")
    print(f"seed {seed} (replay with SEED={seed})")
    dut = LruPolicy(ways)
    ab = dut.age_bits

    async def bench(ctx):
        ages = list(range(ways))
        for _ in range(300):
            touch = rng.randrange(ways)
            valid, reserved = rng.getrandbits(ways), rng.getrandbits(ways) & rng.getrandbits(ways)
            ctx.set(dut.ages, sum(a << (ab * i) for i, a in enumerate(ages)))
            ctx.set(dut.touch_way, touch)
            ctx.set(dut.valid, valid)
            ctx.set(dut.reserved, reserved)
            nxt, victim, ok, vvalid = _lru_reference(ages, touch, valid, reserved)
            got = ctx.get(dut.ages_next)
            got_ages = [(got >> (ab * i)) & ((1 << ab) - 1) for i in range(ways)]
            assert got_ages == nxt, (ages, touch, got_ages, nxt)
            assert sorted(got_ages) == list(range(ways)), got_ages          # still a permutation
            assert (ctx.get(dut.victim_ok), ctx.get(dut.victim_valid)) == (ok, vvalid), \
                (ages, valid, reserved)
            if ok:
                assert ctx.get(dut.victim) == victim, (ages, valid, reserved, ctx.get(dut.victim), victim)
            ages = nxt

    _simulate(dut, bench)


class _RoundRobin(wiring.Component):
    """``round_robin`` with its priority register, advanced on every grant."""

    def __init__(self, n):
        self.n = n
        super().__init__({"requests": In(n), "grant": Out(n)})

    def elaborate(self, platform):
        m = Module()
        prio = Signal(self.n, init=(1 << self.n) - 1)
        m.d.comb += self.grant.eq(round_robin(self.requests, prio))
        with m.If(self.requests.any()):
            m.d.sync += prio.eq(after(self.grant, self.n))
        return m


@pytest.mark.randomized
@pytest.mark.parametrize("n", [1, 2, 5])
def test_round_robin_arbiter(n):
    """The grant is one-hot among the requests (zero without one); it goes to the lowest requester
    after the last one granted, wrapping around; so a requester that keeps requesting waits for at
    most n - 1 other grants."""
    seed = resolve_seed(None)
    rng = random.Random(f"{seed}:{n}")
    print(f"seed {seed} (replay with SEED={seed})")
    dut = _RoundRobin(n)

    async def bench(ctx):
        last = n - 1                 # as if the highest requester had the last grant
        waited = [0] * n
        for _ in range(400):
            req = rng.getrandbits(n) | (1 if rng.random() < 0.3 else 0)
            ctx.set(dut.requests, req)
            grant = ctx.get(dut.grant)
            if not req:
                assert grant == 0
            else:
                order = [(last + 1 + i) % n for i in range(n)]
                want = next(i for i in order if req >> i & 1)
                assert grant == 1 << want, (req, last, grant, want)
                last = want
                for i in range(n):
                    waited[i] = 0 if i == want or not req >> i & 1 else waited[i] + 1
                    assert waited[i] <= n - 1, f"requester {i} waited {waited[i]} grants"
            await ctx.tick()

    _simulate(dut, bench, clocked=True)


def _xy_output(x, y, dx, dy, port):
    """The output an XY route from router (x, y) takes towards node (dx, dy) (docs/noc.md)."""
    if dx != x:
        return "e" if dx > x else "w"
    if dy != y:
        return "s" if dy > y else "n"
    return f"l{port}"


@pytest.mark.randomized
@pytest.mark.parametrize("mesh", [(3, 3, 1), (4, 2, 2)])
def test_router_xy_multicast_routes(mesh):
    """A head flit with destination mask D and port p has a branch through output o exactly when
    some node of D is reached through o by XY routing (the multicast tree), for every router."""
    w, h, lp = mesh
    seed = resolve_seed(None)
    rng = random.Random(f"route:{mesh}:{seed}")
    cfg = NocConfig(width=w, height=h, local_ports=lp)
    for node in range(cfg.nodes):
        _check_router(cfg, node, rng, seed)


def _check_router(cfg, node, rng, seed):
    x, y = node % cfg.width, node // cfg.width
    router = Router(cfg, x, y)
    m = Module()
    flit = Signal(flit_layout(cfg))
    outs = list(router.ports)
    route = Signal(len(outs))
    m.d.comb += route.eq(Cat(router._route_of(flit, o) for o in outs))
    lp = cfg.local_ports
    cases = [(rng.randrange(1, 1 << cfg.nodes), rng.randrange(lp)) for _ in range(60)]
    cases += [(1 << d, p) for d in range(cfg.nodes) for p in range(lp)]

    async def bench(ctx):
        for mask, port in cases:
            ctx.set(flit.dest, mask)
            ctx.set(flit.port, port)
            got = ctx.get(route)
            want = {_xy_output(x, y, d % cfg.width, d // cfg.width, port)
                    for d in range(cfg.nodes) if mask >> d & 1}
            for i, o in enumerate(outs):
                assert (got >> i & 1) == (o in want), (node, o, hex(mask), port, seed)

    _simulate(m, bench)


@pytest.mark.randomized
@pytest.mark.parametrize("name", ["tiny", "default"])
def test_address_decoders(name):
    """Line-interleaved addresses: line L of byte address a lives in slice L mod nodes, which sees
    a with the slice-select bits removed; memory_addr puts them back (the hardware expressions)."""
    cfg = preset(name)
    seed = resolve_seed(None)
    rng = random.Random(f"addr:{name}:{seed}")
    bits, off, nodes = cfg.cache.addr_bits, cfg.cache.offset_bits, cfg.noc.nodes
    m = Module()
    addr = Signal(bits)
    own, local = Signal(range(nodes)), Signal(bits)
    back = [Signal(bits, name=f"back{n}") for n in range(nodes)]
    m.d.comb += [own.eq(owner(cfg, addr)), local.eq(slice_addr(cfg, addr))]
    m.d.comb += [back[n].eq(memory_addr(cfg, n, local)) for n in range(nodes)]
    samples = [rng.randrange(1 << bits) for _ in range(300)] + [0, (1 << bits) - 1, 1 << off]

    async def bench(ctx):
        for a in samples:
            ctx.set(addr, a)
            line = a >> off
            assert ctx.get(own) == line % nodes, (hex(a), seed)
            assert ctx.get(local) == (line // nodes) << off | (a & ((1 << off) - 1)), (hex(a), seed)
            assert ctx.get(back[line % nodes]) == a, (hex(a), seed)

    _simulate(m, bench)
