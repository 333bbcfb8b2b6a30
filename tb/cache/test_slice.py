"""L2 slice testbenches: random traffic against a shadow memory, errors (fills, evictions, write-backs
of flush/invalidate), LRU model (with malformed requests mixed in), hit timing, hits under a miss,
ALLOC (claim a line without fetching it).

Parameters (``tessera.tb.params()``): ``cache`` (CacheConfig fields), ``count`` (random requests),
``serial`` (requests of the LRU-model test).
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

import tessera.tb
from tessera.tb.cache.env import OP, CacheEnv, cfg_from
from tessera.tb.models.cache import LruCacheModel, ShadowMemory
from tessera.tb.stream import Scoreboard, StreamMonitor, pack, rng_for

BASE = 0x10000


def footprint(cfg, rng, factor=3):
    """Line numbers spread over few sets, several times the capacity, so that lines conflict."""
    sets = min(cfg.sets, 4)
    lines = set()
    while len(lines) < factor * cfg.ways * sets:
        lines.add(BASE // cfg.line_bytes + rng.randrange(sets) + cfg.sets * rng.randrange(64))
    return sorted(lines)


def fill_memory(env, shadow, lines, rng):
    lb = env.cfg.line_bytes
    for ln in lines:
        data = bytes(rng.randrange(256) for _ in range(lb))
        env.ram.write(ln * lb, data)
        shadow.write(ln * lb, data)


def word_of(shadow, cfg, addr):
    a = addr - addr % cfg.data_bytes
    return int.from_bytes(shadow.read(a, cfg.data_bytes), "little")


def apply_write(shadow, cfg, req):
    D = cfg.data_bytes
    a = req["addr"] % D
    lanes = ((1 << (1 << req["size"])) - 1) << a
    shadow.write(req["addr"] - a, req["data"].to_bytes(D, "little"), lanes & req["mask"])


def check_response(exp, got):
    for k in ("op", "id", "dest", "status_name"):
        if exp[k] != got[k]:
            return f"{k}: expected {exp[k]!r}, got {got[k]!r} (request {exp['req']})"
    if "data" in exp and exp["data"] != got["data"]:
        return f"data: expected {exp['data']:#x}, got {got['data']:#x} (request {exp['req']})"
    for k in ("hit", "secondary"):
        if k in exp and exp[k] != got[k]:
            return f"{k}: expected {exp[k]}, got {got[k]} (request {exp['req']})"
    return None


def watch_reads(dut, cfg) -> list[int]:
    """Line numbers of every AR the slice sends, in order."""
    lines: list[int] = []

    async def run():
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(dut.m_axi_arvalid.value) and int(dut.m_axi_arready.value):
                lines.append(int(dut.m_axi_araddr.value) // cfg.line_bytes)

    cocotb.start_soon(run())
    return lines


def issue_alloc(env, rng, addr, **kw) -> dict:
    """An ALLOC with random (ignored) size, mask and data, at any byte of the line."""
    cfg = env.cfg
    a = addr - addr % cfg.line_bytes + rng.randrange(cfg.line_bytes)
    return env.issue(
        "ALLOC",
        a,
        rng.randrange(8),
        data=rng.randrange(1 << (8 * cfg.data_bytes)),
        mask=rng.randrange(1 << cfg.data_bytes),
        **kw,
    )


@cocotb.test()
async def random_traffic(dut):
    """Random reads/writes/flushes/malformed/error-line requests under random pauses everywhere."""
    p = tessera.tb.params()
    cfg = cfg_from(p)
    rng = rng_for("traffic")
    lines = footprint(cfg, rng)
    bad_lines = set(rng.sample(lines, 2))
    good = [ln for ln in lines if ln not in bad_lines]
    env = CacheEnv(dut, cfg, req_idle=0.3, resp_ready=0.7, mem_pause=0.3, read_error_lines=bad_lines)
    await env.reset()
    shadow = ShadowMemory()
    fill_memory(env, shadow, lines, rng)
    sb = Scoreboard("responses", compare=check_response)
    env.on_response = lambda r, c: sb.observe(r, key=r["id"])
    D, lo = cfg.data_bytes, (cfg.data_bytes - 1).bit_length()
    expected_malformed = fill_err_reqs = 0
    for i in range(p["count"]):
        rid, dest = i % (1 << cfg.id_bits), rng.randrange(1 << cfg.dest_bits)
        x = rng.random()
        ln = rng.choice(good)
        size = rng.randrange(lo + 1)
        addr = ln * cfg.line_bytes + rng.randrange(cfg.line_bytes // (1 << size)) * (1 << size)
        if x < 0.42:
            req = env.issue("READ", addr, size, rid=rid, dest=dest)
            exp = dict(status_name="OK", data=word_of(shadow, cfg, addr))
        elif x < 0.80:
            req = env.issue(
                "WRITE",
                addr,
                size,
                data=rng.randrange(1 << (8 * D)),
                mask=rng.randrange(1 << D),
                rid=rid,
                dest=dest,
            )
            apply_write(shadow, cfg, req)
            exp = dict(status_name="OK", data=0)
        elif x < 0.87:  # ALLOC: size, mask, data and the byte offset are ignored (never malformed)
            req = issue_alloc(env, rng, addr, rid=rid, dest=dest)
            shadow.alloc(addr, cfg.line_bytes)
            exp = dict(status_name="OK", data=0)
        elif x < 0.88:
            req = env.issue(rng.choice(["FLUSH", "INVALIDATE"]), rid=rid, dest=dest)
            exp = dict(status_name="OK")
        elif x < 0.94:
            kind = rng.randrange(3)
            if kind == 0:
                req = env.issue(rng.randrange(5, 8), addr, rid=rid, dest=dest)
            elif kind == 1 and lo < 7:
                req = env.issue("WRITE", addr, lo + 1 + rng.randrange(7 - lo), data=1, rid=rid, dest=dest)
            else:  # an access that runs past the end of its word (and, at the word's end, of its line)
                s = rng.randrange(1, lo + 1) if lo else 1
                req = env.issue(
                    rng.choice(["READ", "WRITE"]), addr - addr % D + D - 1, s, data=5, rid=rid, dest=dest
                )
            expected_malformed += 1
            exp = dict(status_name="MALFORMED")
        else:
            bad = rng.choice(sorted(bad_lines)) * cfg.line_bytes
            req = env.issue(rng.choice(["READ", "WRITE"]), bad, lo, data=7, rid=rid, dest=dest)
            fill_err_reqs += 1
            exp = dict(status_name="FILL_ERROR")
        exp.update(op=req["op"], id=rid, dest=dest, req=dict(req, n=i))
        sb.expect(exp, key=rid)
    await env.wait_responses(p["count"], timeout=400 * p["count"])
    sb.check()
    # Every write reaches memory after a flush.
    env.issue("FLUSH", rid=1, dest=2)
    await env.wait_responses(p["count"] + 1)
    assert env.responses[-1]["status_name"] == "OK"
    for ln in good:
        a = ln * cfg.line_bytes
        got, want = env.ram.read(a, cfg.line_bytes), shadow.read(a, cfg.line_bytes)
        assert got == want, f"memory line {a:#x} after flush: {got.hex()} != shadow {want.hex()}"
    c = env.counters()
    dut._log.info(f"counters {c}")
    assert c["requests"] == p["count"] - sum(
        1 for r in env.responses[:-1] if r["op"] in (OP["FLUSH"], OP["INVALIDATE"])
    )
    assert c["malformed"] == expected_malformed
    assert (c["fill_errors"] > 0) == (fill_err_reqs > 0)
    assert c["hits"] > 0 and c["misses"] > 0 and c["evictions"] > 0 and c["writebacks"] > 0


@cocotb.test()
async def axi_errors(dut):
    """SLVERR on a fill -> FILL_ERROR; on a write-back -> WB_ERROR on the evicting request; keeps working."""
    cfg = cfg_from(tessera.tb.params())
    rng = rng_for("errors")
    lb, W = cfg.line_bytes, cfg.ways
    set0 = 3 % cfg.sets
    lines = [BASE // lb + set0 + cfg.sets * k for k in range(W + 4)]
    env = CacheEnv(dut, cfg, mem_pause=0.2, read_error_lines=[lines[0]], write_error_lines=[lines[1]])
    await env.reset()
    shadow = ShadowMemory()
    fill_memory(env, shadow, lines, rng)

    async def do(*args, **kw):
        n = len(env.responses)
        env.issue(*args, **kw)
        await env.wait_responses(n + 1)
        return env.responses[-1]

    r = await do("READ", lines[0] * lb)
    assert r["status_name"] == "FILL_ERROR", r
    r = await do("WRITE", lines[0] * lb, data=0x55)
    assert r["status_name"] == "FILL_ERROR", r
    old = word_of(shadow, cfg, lines[1] * lb)
    r = await do("WRITE", lines[1] * lb, data=0xAB, mask=1)
    assert r["status_name"] == "OK" and not r["hit"], r
    # Fill the set so that the dirty line 1 is evicted (it is the LRU line of its set).
    for k in range(2, W + 2):
        r = await do("READ", lines[k] * lb)
        if r["writeback"]:
            break
    assert r["writeback"] and r["status_name"] == "WB_ERROR", r
    assert r["data"] == word_of(shadow, cfg, lines[k] * lb)
    c = env.counters()
    assert c["wb_errors"] == 1 and c["fill_errors"] == 2, c
    r = await do("READ", lines[1] * lb)  # the lost write: memory still has the old data
    assert r["status_name"] == "OK" and r["data"] == old, r
    r = await do("WRITE", lines[2] * lb, data=0x1234)
    r = await do("READ", lines[2] * lb)
    assert r["status_name"] == "OK" and r["data"] & 0xFFFF == (0x1234 & ((1 << (8 * cfg.data_bytes)) - 1)), r
    r = await do("FLUSH")
    assert r["status_name"] == "OK", r


def malformed_request(env, rng, addr, **kw) -> dict:
    """A malformed request near ``addr``: an unknown op (5..7), a size larger than a data word, or an
    access running past the end of its word (at the line's last word: past the end of the line).
    Writes carry random data and a full mask, so that a write wrongly applied would show."""
    cfg = env.cfg
    D, lo = cfg.data_bytes, (cfg.data_bytes - 1).bit_length()
    data = rng.randrange(1 << (8 * D))
    kinds = ["op", "cross"] + (["size"] if lo < 7 else [])
    kind = rng.choice(kinds) if lo else "op"
    if kind == "op":
        return env.issue(rng.randrange(5, 8), addr, rng.randrange(8), data=data, **kw)
    op = rng.choice(["READ", "WRITE"])
    if kind == "size":
        return env.issue(op, addr, rng.randrange(lo + 1, 8), data=data, **kw)
    if rng.random() < 0.5:  # the line's last word: the access crosses into the next line
        addr = addr - addr % cfg.line_bytes + cfg.line_bytes - D
    s = rng.randrange(1, lo + 1)
    off = rng.randrange(D - (1 << s) + 1, D)  # [off, off + 2**s) runs past the word's end
    return env.issue(op, addr - addr % D + off, s, data=data, **kw)


@cocotb.test()
async def lru_model_serial(dut):
    """One request at a time: hit, eviction and write-back of every request equal the LRU model's.

    Malformed requests (unknown op, size over a word, access crossing its word or line) are mixed in:
    each must answer MALFORMED and change nothing. The counters other than ``requests`` and
    ``malformed`` keep their values across it, the model is not told about it, and the requests
    that follow check it: a read of the malformed request's word (data unchanged, its line not
    brought in) and, when that word's line is the LRU line of a full set, first a miss in that
    set, which must evict that line (a malformed access must not touch the LRU ages).
    """
    p = tessera.tb.params()
    cfg = cfg_from(p)
    rng = rng_for("serial")
    lines = footprint(cfg, rng, factor=2)
    env = CacheEnv(dut, cfg, mem_pause=0.2, resp_ready=0.8)
    await env.reset()
    shadow = ShadowMemory()
    fill_memory(env, shadow, lines, rng)
    model = LruCacheModel(cfg.sets, cfg.ways, cfg.line_bytes)
    base = env.counters()
    D, lb = cfg.data_bytes, cfg.line_bytes
    n_mal = 0

    async def access(i, kind, addr):
        n = len(env.responses)
        if kind == "ALLOC":
            want = model.alloc(addr)
            issue_alloc(env, rng, addr, rid=i % 256)
            shadow.alloc(addr, lb)
            want_data = 0
        elif kind == "WRITE":
            want = model.access(addr, True)
            req = env.issue("WRITE", addr, data=rng.randrange(1 << (8 * D)), rid=i % 256)
            apply_write(shadow, cfg, req)
            want_data = 0
        else:
            want = model.access(addr, False)
            env.issue("READ", addr, rid=i % 256)
            want_data = word_of(shadow, cfg, addr)
        await env.wait_responses(n + 1)
        r = env.responses[-1]
        got = (bool(r["hit"]), bool(r["evict"]), bool(r["writeback"]))
        assert got == (want.hit, want.evict, want.writeback), (
            f"request {i} {kind} {addr:#x}: rtl {got} model {want}"
        )
        assert not r["secondary"] and r["status_name"] == "OK", r
        assert r["data"] == want_data, f"request {i}: data {r['data']:#x} != {want_data:#x}"

    for i in range(p["serial"]):
        n = len(env.responses)
        x = rng.random()
        if x < 0.02:
            op = rng.choice(["FLUSH", "INVALIDATE"])
            env.issue(op)
            (model.flush if op == "FLUSH" else model.invalidate)()
            await env.wait_responses(n + 1)
            continue
        addr = rng.choice(lines) * lb + rng.randrange(lb // D) * D
        if x < 0.09:  # a malformed request, then the requests that show it changed nothing
            full = [s for s in model.lines if len(s) == cfg.ways]
            victim = rng.choice(full)[0][0] if full and rng.random() < 0.6 else None
            if victim is not None:
                addr = victim * lb + rng.randrange(lb // D) * D
            before = env.counters()
            req = malformed_request(env, rng, addr, rid=i % 256, dest=i)
            await env.wait_responses(n + 1)
            r = env.responses[-1]
            n_mal += 1
            assert r["status_name"] == "MALFORMED", (req, r)
            assert (r["op"], r["id"], r["dest"]) == (req["op"], req["id"], req["dest"]), (req, r)
            assert not (r["hit"] or r["secondary"] or r["evict"] or r["writeback"] or r["data"]), r
            after = env.counters()
            for k in after:
                d = after[k] - before[k]
                assert d == (1 if k in ("requests", "malformed") else 0), f"malformed {req}: {k} +{d}"
            if victim is not None:  # a miss in the set must evict the malformed request's line
                others = [
                    ln for ln in lines if ln % cfg.sets == victim % cfg.sets and not model.contains(ln * lb)
                ]
                if others:
                    other = rng.choice(others) * lb
                    await access(i, "READ", other)
                    assert not model.contains(addr), "the model evicts the LRU line"
            await access(i, "READ", req["addr"] - req["addr"] % D)  # the word it named: unchanged
            continue
        kind = "ALLOC" if x < 0.19 else "WRITE" if x < 0.55 else "READ"
        await access(i, kind, addr)
    c = env.counters()
    for k in ("hits", "misses", "evictions", "writebacks", "flush_writebacks"):
        assert c[k] - base[k] == model.stats[k], f"{k}: rtl {c[k] - base[k]} model {model.stats[k]}"
    assert c["secondary_misses"] == base["secondary_misses"]
    assert c["malformed"] - base["malformed"] == n_mal > 0
    dut._log.info(f"lru_model_serial: {model.stats['accesses']} accesses, {n_mal} malformed requests")


@cocotb.test()
async def hit_timing(dut):
    """Back-to-back hits: latency 2 cycles from request to response, one response per cycle."""
    cfg = cfg_from(tessera.tb.params())
    env = CacheEnv(dut, cfg)
    await env.reset()
    accepted = []
    StreamMonitor(dut, "req", dut.clk, callback=lambda w, c: accepted.append(env.cycle))
    times = []
    env.on_response = lambda r, c: times.append(env.cycle)
    lines = [BASE // cfg.line_bytes + k for k in range(min(cfg.sets * cfg.ways, 8))]
    for ln in lines:
        env.issue("READ", ln * cfg.line_bytes)
    await env.wait_responses(len(lines))
    await ClockCycles(dut.clk, 5)
    accepted.clear()
    times.clear()
    n = 64
    for k in range(n):
        env.issue("READ", lines[k % len(lines)] * cfg.line_bytes + cfg.data_bytes * (k % cfg.beats_per_line))
    await env.wait_responses(len(lines) + n)
    await RisingEdge(dut.clk)
    assert all(r["hit"] for r in env.responses[len(lines) :])
    lat = [t - a for a, t in zip(accepted, times, strict=False)]
    dut._log.info(f"hit latency {set(lat)}; {n} hits in {times[-1] - accepted[0] + 1} cycles")
    assert set(lat) == {2}, lat
    assert times[-1] - times[0] == n - 1, "one hit per cycle"


@cocotb.test()
async def hit_under_miss(dut):
    """Hits are served while an earlier miss is outstanding (slow memory), in 2 cycles, one per cycle.

    Lines A0 (set 0) and A1 (set 1) are present; memory's R channel is then held, a READ of line B
    (set 0, a free way) misses and its fill waits. Behind it come ``n`` hits to A0 and A1 (reads
    and writes, in B's set and in another): each must respond with ``hit=1`` exactly 2 cycles after
    it is accepted, one per cycle, all before B's response, while B's AR has been sent and its data
    has not come back. Then memory is released: B responds with its line's data.
    """
    cfg = cfg_from(tessera.tb.params())
    assert cfg.mshrs >= 2 and cfg.sets >= 2, "needs a free MSHR beside the miss, and two sets"
    rng = rng_for("hum")
    lb, D = cfg.line_bytes, cfg.data_bytes
    a0, a1 = BASE // lb, BASE // lb + 1
    b = a0 + cfg.sets * 5  # same set as A0
    env = CacheEnv(dut, cfg)
    ars = watch_reads(dut, cfg)
    await env.reset()
    shadow = ShadowMemory()
    fill_memory(env, shadow, [a0, a1, b], rng)
    for ln in (a0, a1):
        env.issue("READ", ln * lb)
    await env.wait_responses(2)
    assert ars == [a0, a1], ars
    accepted, done = {}, {}
    StreamMonitor(dut, "req", dut.clk, callback=lambda w, c: accepted.setdefault(w, env.cycle))
    env.on_response = lambda r, c: done.setdefault(r["id"], env.cycle)
    r_channel = env.ram.read_if.r_channel
    r_channel.pause = True  # slow memory: no R beat until released
    hold = 60
    miss = env.issue("READ", b * lb + D * rng.randrange(lb // D), rid=1)
    for _ in range(200):
        await RisingEdge(dut.clk)
        if len(ars) == 3:
            break
    assert ars == [a0, a1, b], f"the miss's AR was not sent: {ars}"
    n = 24
    reqs, want = [], []
    for k in range(n):
        ln = (a0, a1)[k % 2]
        a = ln * lb + D * rng.randrange(lb // D)
        if k % 3 == 2:
            req = env.issue(
                "WRITE", a, data=rng.randrange(1 << (8 * D)), mask=rng.randrange(1 << D), rid=2 + k
            )
            apply_write(shadow, cfg, req)
            want.append(0)
        else:
            req = env.issue("READ", a, rid=2 + k)
            want.append(word_of(shadow, cfg, a))
        reqs.append(req)
    await ClockCycles(dut.clk, hold)
    assert 1 not in done, "the miss responded while memory was held"
    got = {r["id"]: r for r in env.responses[2:]}
    assert sorted(got) == list(range(2, 2 + n)), f"hits not all answered under the miss: {sorted(got)}"
    lat = []
    for k, req in enumerate(reqs):
        r = got[2 + k]
        assert r["hit"] and r["status_name"] == "OK" and r["data"] == want[k], (k, req, r)
        w = pack(env.req_fields, req)
        lat.append(done[2 + k] - accepted[w])
    t_miss = accepted[pack(env.req_fields, miss)]
    first, last = done[2], done[2 + n - 1]
    dut._log.info(
        f"hit_under_miss: {n} hits accepted from cycle {accepted[pack(env.req_fields, reqs[0])] - t_miss}"
        f" after the miss, answered in cycles {first - t_miss}..{last - t_miss}, latency {set(lat)};"
        f" memory held {hold} cycles after"
    )
    assert set(lat) == {2}, lat
    assert last - first == n - 1, "one hit per cycle under the miss"
    r_channel.pause = False
    await env.wait_responses(2 + n + 1)
    r = env.responses[-1]
    assert r["id"] == 1 and not r["hit"] and r["status_name"] == "OK", r
    assert r["data"] == word_of(shadow, cfg, miss["addr"]), r
    assert done[1] - t_miss > hold, "the miss took the memory's time"


@cocotb.test()
async def flush_wb_errors(dut):
    """AXI write errors (SLVERR) on write-backs of FLUSH and of INVALIDATE.

    docs/cache.md: the flush/invalidate responds ``WB_ERROR`` once every B has arrived, each failed
    B is counted in ``wb_errors``, the failed line's dirty data is lost (memory keeps its old
    bytes), the other write-backs complete, flush leaves every line valid and clean, invalidate
    invalidates every line, and the slice keeps working. Two of six dirty lines fail.
    """
    cfg = cfg_from(tessera.tb.params())
    rng = rng_for("flush_err")
    lb, D = cfg.line_bytes, cfg.data_bytes
    lines = [BASE // lb + k for k in range(6)]  # within the capacity of both configurations
    assert len(lines) <= cfg.sets * cfg.ways and cfg.sets >= 3
    bad = [lines[1], lines[4]]
    env = CacheEnv(dut, cfg, req_idle=0.2, resp_ready=0.7, mem_pause=0.2, write_error_lines=bad)
    await env.reset()
    shadow = ShadowMemory()
    fill_memory(env, shadow, lines, rng)
    old = {ln: env.ram.read(ln * lb, lb) for ln in bad}

    async def do(*args, **kw):
        n = len(env.responses)
        req = env.issue(*args, **kw)
        await env.wait_responses(n + 1)
        r = env.responses[-1]
        assert (r["op"], r["id"], r["dest"]) == (req["op"], req["id"], req["dest"]), (req, r)
        return r

    async def dirty_all():
        for ln in lines:
            a = ln * lb + D * rng.randrange(lb // D)
            n = len(env.responses)
            req = env.issue("WRITE", a, data=rng.randrange(1 << (8 * D)), mask=rng.randrange(1, 1 << D))
            apply_write(shadow, cfg, req)
            await env.wait_responses(n + 1)
            assert env.responses[-1]["status_name"] == "OK", env.responses[-1]

    for op in ("FLUSH", "INVALIDATE"):
        await dirty_all()
        before = env.counters()
        r = await do(op, rid=5, dest=9)
        assert r["status_name"] == "WB_ERROR", (op, r)
        c = env.counters()
        d = {k: c[k] - before[k] for k in c}
        assert d["wb_errors"] == len(bad) and d["flush_writebacks"] == len(lines), (op, d)
        assert all(v == 0 for k, v in d.items() if k not in ("wb_errors", "flush_writebacks")), (op, d)
        for ln in lines:
            got = env.ram.read(ln * lb, lb)
            want = old[ln] if ln in bad else shadow.read(ln * lb, lb)
            assert got == want, f"{op}: memory line {ln * lb:#x} {got.hex()} != {want.hex()}"
        if op == "INVALIDATE":  # the failed lines' dirty bytes are lost: memory's are what reads see
            for ln in bad:
                shadow.write(ln * lb, old[ln])
        for ln in lines:  # flush: every line present (hit), the cached bytes; invalidate: refetched
            a = ln * lb + D * rng.randrange(lb // D)
            r = await do("READ", a)
            assert r["status_name"] == "OK" and r["hit"] == (op == "FLUSH"), (op, ln, r)
            assert r["data"] == word_of(shadow, cfg, a), (op, ln, r)
        before = env.counters()
        r = await do(op)  # nothing dirty now: nothing written back, OK
        c = env.counters()
        assert r["status_name"] == "OK" and c["wb_errors"] == before["wb_errors"], (op, r)
        assert c["flush_writebacks"] == before["flush_writebacks"], (op, c)
    # The slice keeps working: writes to good lines reach memory at the next flush.
    good = [ln for ln in lines if ln not in bad]
    n = len(env.responses)
    for ln in good:
        a = ln * lb + D * rng.randrange(lb // D)
        req = env.issue("WRITE", a, data=rng.randrange(1 << (8 * D)))
        apply_write(shadow, cfg, req)
    await env.wait_responses(n + len(good))
    assert all(r["status_name"] == "OK" for r in env.responses[n:]), env.responses[n:]
    r = await do("FLUSH")
    assert r["status_name"] == "OK", r
    for ln in good:
        assert env.ram.read(ln * lb, lb) == shadow.read(ln * lb, lb), f"line {ln * lb:#x}"


@cocotb.test()
async def alloc_region(dut):
    """ALLOC every line of a region (twice the capacity), write its words, flush: no AXI read.

    Most lines get every word written with full masks; some only a few words with random masks
    (the rest must stay zero). Each line is read back right after its writes. After the flush the
    memory must equal the shadow (zeros plus the writes) and no AR may have named a region line.
    """
    p = tessera.tb.params()
    cfg = cfg_from(p)
    rng = rng_for("alloc")
    lb, D = cfg.line_bytes, cfg.data_bytes
    words = lb // D
    region = [BASE // lb + k for k in range(2 * cfg.sets * cfg.ways)]
    env = CacheEnv(dut, cfg, req_idle=0.1, resp_ready=0.7, mem_pause=0.2)
    ars = watch_reads(dut, cfg)
    await env.reset()
    shadow = ShadowMemory()
    fill_memory(env, shadow, region, rng)  # stale data that must never come back
    sb = Scoreboard("alloc responses", compare=check_response)
    env.on_response = lambda r, c: sb.observe(r, key=r["id"])
    base = env.counters()
    n = writes = reads = 0

    def expect(req, **exp):
        nonlocal n
        sb.expect(
            dict(exp, op=req["op"], id=req["id"], dest=0, status_name="OK", req=dict(req, n=n)), key=req["id"]
        )
        n += 1

    for ln in region:
        a0 = ln * lb
        expect(issue_alloc(env, rng, a0, rid=n % 256), data=0)
        shadow.alloc(a0, lb)
        full = rng.random() < 0.75
        order = list(range(words)) if full else rng.sample(range(words), rng.randrange(words))
        if full:
            rng.shuffle(order)
        for w in order:
            mask = (1 << D) - 1 if full else rng.randrange(1 << D)
            req = env.issue("WRITE", a0 + w * D, data=rng.randrange(1 << (8 * D)), mask=mask, rid=n % 256)
            apply_write(shadow, cfg, req)
            expect(req, data=0)
            writes += 1
        a = a0 + rng.randrange(words) * D
        expect(env.issue("READ", a, rid=n % 256), data=word_of(shadow, cfg, a))
        reads += 1
    await env.wait_responses(n, timeout=400 * n)
    sb.check()
    c = env.counters()
    d = {k: c[k] - base[k] for k in c}
    dut._log.info(f"alloc_region: {len(region)} lines, {writes} writes; counters {d}")
    assert d["requests"] == n and d["misses"] == len(region), d
    assert d["hits"] + d["secondary_misses"] == writes + reads, d
    assert d["writebacks"] > 0, "the region is twice the capacity: dirty lines must be evicted"
    env.issue("FLUSH", rid=1)
    await env.wait_responses(n + 1)
    assert env.responses[-1]["status_name"] == "OK"
    for ln in region:
        got, want = env.ram.read(ln * lb, lb), shadow.read(ln * lb, lb)
        assert got == want, f"memory line {ln * lb:#x} after flush: {got.hex()} != {want.hex()}"
    assert not set(ars) & set(region), f"AXI reads of ALLOCated lines: {sorted(set(ars) & set(region))}"
    assert not ars, f"unexpected AXI reads {ars}"


@cocotb.test()
async def alloc_secondary(dut):
    """ALLOC behind a fetch of its line (secondary miss), then an ALLOC hit, back to back.

    READ L (primary miss), ALLOC L (secondary: waits for the fill, then zeroes), READ L (zeros),
    WRITE L, READ L (the write on zeros), ALLOC L (a hit), READ L (zeros): one AR per line.
    """
    cfg = cfg_from(tessera.tb.params())
    rng = rng_for("alloc2")
    lb, D = cfg.line_bytes, cfg.data_bytes
    lines = [BASE // lb + 7 * k for k in range(6)]
    env = CacheEnv(dut, cfg)
    ars = watch_reads(dut, cfg)
    await env.reset()
    shadow = ShadowMemory()
    fill_memory(env, shadow, lines, rng)
    sb = Scoreboard("alloc secondary", compare=check_response)
    env.on_response = lambda r, c: sb.observe(r, key=r["id"])
    n = 0

    def expect(req, **exp):
        nonlocal n
        sb.expect(
            dict(exp, op=req["op"], id=req["id"], dest=0, status_name="OK", req=dict(req, n=n)), key=req["id"]
        )
        n += 1

    for ln in lines:
        a0 = ln * lb
        a = a0 + rng.randrange(lb // D) * D
        expect(env.issue("READ", a, rid=n), data=word_of(shadow, cfg, a), hit=0, secondary=0)
        expect(issue_alloc(env, rng, a0, rid=n), data=0, hit=0, secondary=1)
        shadow.alloc(a0, lb)
        expect(env.issue("READ", a, rid=n), data=0, hit=0, secondary=1)
        req = env.issue("WRITE", a, data=rng.randrange(1 << (8 * D)), mask=rng.randrange(1 << D), rid=n)
        apply_write(shadow, cfg, req)
        expect(req, data=0)
        expect(env.issue("READ", a, rid=n), data=word_of(shadow, cfg, a))
        await env.wait_responses(n)
        expect(issue_alloc(env, rng, a0, rid=n), data=0, hit=1, secondary=0)
        shadow.alloc(a0, lb)
        b = a0 + rng.randrange(lb // D) * D
        expect(env.issue("READ", b, rid=n), data=0, hit=1)
    await env.wait_responses(n)
    sb.check()
    assert ars == lines, f"one AR per line expected: {ars}"
    env.issue("FLUSH", rid=1)
    await env.wait_responses(n + 1)
    for ln in lines:
        got, want = env.ram.read(ln * lb, lb), shadow.read(ln * lb, lb)
        assert got == want, f"memory line {ln * lb:#x} after flush: {got.hex()} != {want.hex()}"
