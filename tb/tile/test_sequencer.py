"""Tile sequencer against its golden model: random programs, malformed words, faults, back-pressure.

Each episode feeds one program (random valid instructions of every class, VECTOR included, END,
then trailing words that must not be consumed; or with a malformed word at a random place; or
with a fault pulse at a random time) through the command stream with random gaps, takes the
descriptors under random back-pressure, answers each with a completion pulse after a random
delay, and checks against
:func:`tessera.tb.models.tile_seq.run`: every descriptor in order, the BARRIER ordering (a descriptor
never leaves before the completions its barriers demand), the ``max_outstanding`` bound, the
final state / error code / pc, and the number of words consumed. ``clear`` separates episodes.

SYNC: the bench drives ``sync_counts`` (the other tiles' SYNC counts) with a random evolution,
either "follow" (each tile steps its count towards this tile's, up to a random lead, modulo 256)
or "random" (counts jump to this tile's count plus a random signed 8-bit offset, boundary
offsets -128, -1, 0, 127 favoured, with occasional releases); and checks cycle by cycle, from
the model's list of SYNCs, that ``sync_count`` steps exactly when a SYNC enters ISSUE, that the
SYNC retires in exactly the cycles in which :func:`tessera.tb.models.tile_isa.sync_passes` holds on the
counts driven in that cycle, and that no descriptor of a later instruction leaves before it.
"""

from __future__ import annotations

import collections
import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

import tessera.tb
from tessera.rtl.config import preset
from tessera.rtl.tile.isa import matmul_desc_layout, status_layout, vector_desc_layout, xfer_desc_layout
from tessera.tb.models import tile_seq
from tessera.tb.models.tile_isa import ERROR_NAMES, ERRORS, STATES, IsaParams, encode, sync_passes
from tessera.tb.stream import layout_fields, rng_for, unpack
from tessera.tb.tile.programs import (
    MALFORMED_KINDS,
    VECTOR_CASES,
    malformed,
    malformed_sync,
    malformed_vector,
    random_instruction,
    random_program,
    random_sync,
)

STATE_NAMES = {v: k for k, v in STATES.items()}


class CommandFeeder:
    """Drives ``cmd`` from a queue with random gaps; :meth:`flush` withdraws whatever is pending
    (only used when the sequencer has stopped and takes nothing)."""

    def __init__(self, dut, rng, idle_prob):
        self.dut, self.rng, self.idle_prob = dut, rng, idle_prob
        self.queue = collections.deque()
        self.sent = 0
        self.busy = False
        dut.cmd__valid.value = 0
        cocotb.start_soon(self._run())

    def flush(self):
        self.queue.clear()
        self.busy = False
        self.dut.cmd__valid.value = 0

    async def _run(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            if self.busy and int(dut.cmd__ready.value):
                self.sent += 1
                self.busy = False
            if not self.busy:
                if self.queue and self.rng.random() >= self.idle_prob:
                    dut.cmd__payload.value = self.queue.popleft()
                    dut.cmd__valid.value = 1
                    self.busy = True
                else:
                    dut.cmd__valid.value = 0


class Bench:
    def __init__(self, dut, cfg):
        self.dut, self.cfg = dut, cfg
        self.rng = rng_for("seq")
        self.fields = {
            "load": layout_fields(xfer_desc_layout(cfg)),
            "store": layout_fields(xfer_desc_layout(cfg)),
            "matmul": layout_fields(matmul_desc_layout(cfg)),
            "vector": layout_fields(vector_desc_layout(cfg)),
        }
        self.status_fields = layout_fields(status_layout())
        self.ready_prob = 1.0
        self.max_delay = 0
        self.cycle = 0
        self.total_issued = dict.fromkeys(tile_seq.CLASSES, 0)
        self.spurious_prob = 0.05
        self.completed = dict.fromkeys(tile_seq.CLASSES, 0)    # completion pulses the DUT has absorbed
        self.errors: list[str] = []
        # SYNC: the other tiles' counts, as driven for the cycle in progress
        self.nodes = cfg.noc.nodes
        self.count_rng = rng_for("sync_counts")
        self.count_mode, self.lead, self.step_prob = "follow", 1, 0.5
        self.counts = [0] * self.nodes
        self.sync_checked = 0          # ISSUE cycles of a SYNC checked against the rule
        self.sync_waited = 0           # ... of which the rule said wait
        self.reset_episode(None)
        dut.sync_counts.value = 0
        for s in tile_seq.CLASSES:
            getattr(dut, f"{s}__ready").value = 1
            getattr(dut, f"{s}_done").value = 0
        cocotb.start_soon(self._cycle())

    def reset_episode(self, model):
        self.model = model
        self.expected = {s: collections.deque(model.by_stream(s)) if model else collections.deque()
                         for s in tile_seq.CLASSES}
        self.issued = dict.fromkeys(tile_seq.CLASSES, 0)
        # completions of earlier episodes (all of them have arrived before an episode starts)
        self.base = dict(self.completed)
        self.pending = {s: collections.deque() for s in tile_seq.CLASSES}   # completion due cycles
        self.offer = dict.fromkeys(tile_seq.CLASSES)                       # payload on offer
        self.strict_valid = True
        self.syncs = list(model.syncs) if model else []
        self.sync_next = 0             # index in self.syncs of the next SYNC to retire
        self.sync_active = False       # checks on (off around clear / fault)
        self.prev = None               # (pc, sync_count, state, counts) of the previous cycle
        # a clear of the whole fabric: every tile's count back to 0 (random mode: anything)
        self.counts = [0] * self.nodes
        if self.count_mode == "random":
            self.counts = [self.count_rng.randrange(256) for _ in range(self.nodes)]
        self.drive_counts()

    def drive_counts(self):
        self.dut.sync_counts.value = sum(c << (8 * t) for t, c in enumerate(self.counts))

    def evolve_counts(self, own):
        """The other tiles' next counts (``own``: this tile's count as last sampled)."""
        rng = self.count_rng
        for t in range(self.nodes):
            ahead = (self.counts[t] - own + 128) % 256 - 128       # signed 8-bit
            if self.count_mode == "follow":
                if ahead < self.lead and rng.random() < self.step_prob:
                    self.counts[t] = (self.counts[t] + 1) % 256
            elif rng.random() < self.step_prob:
                d = rng.choice((-128, -127, -1, 0, 1, 127, rng.randrange(-128, 128)))
                self.counts[t] = (own + d) % 256
        if self.count_mode == "random" and rng.random() < 0.08:      # release: all at or ahead
            self.counts = [(own + 1 + rng.randrange(126)) % 256 for _ in range(self.nodes)]
        self.drive_counts()

    def check_sync(self, prev, cur):
        """``prev``, ``cur``: (pc, sync_count, state, counts) of two consecutive cycles."""
        pc0, sc0, state0, counts0 = prev
        pc1, sc1, _, _ = cur
        s = self.syncs[self.sync_next] if self.sync_next < len(self.syncs) else None
        if sc1 != sc0:
            if s is None or sc1 != s.count or sc1 != (sc0 + 1) % 256:
                self.error(f"sync_count {sc0} -> {sc1}; expected "
                           + (f"{s.count} (SYNC of instruction {s.index})" if s else "no change"))
        if s is not None and state0 == STATES["RUN"] and pc0 == s.index and sc0 == s.count:
            expect = sync_passes(sc0, counts0, s.mask)
            retired = pc1 == (s.index + 1) & 0xFFFF
            self.sync_checked += 1
            self.sync_waited += not expect
            if retired != expect:
                self.error(f"SYNC of instruction {s.index} (count {sc0}, group {s.mask:#x}) "
                           f"{'retired' if retired else 'did not retire'} with counts {counts0}")
            if retired:
                self.sync_next += 1

    def error(self, msg):
        if len(self.errors) < 20:
            self.errors.append(f"cycle {self.cycle}: {msg}")

    def status(self):
        return unpack(self.status_fields, int(self.dut.status.value))

    async def _cycle(self):
        dut = self.dut
        completed = self.completed
        driven = dict.fromkeys(tile_seq.CLASSES, 0)       # pulses of the cycle that just ended
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            st = self.status()
            stopped = st["state"] in (STATES["DONE"], STATES["ERROR"])
            sc = int(dut.sync_count.value)
            cur = (st["pc"], sc, st["state"], tuple(self.counts))
            if self.sync_active and self.prev is not None:
                self.check_sync(self.prev, cur)
            self.prev = cur
            self.evolve_counts(sc)
            for s in tile_seq.CLASSES:
                valid = int(getattr(dut, f"{s}__valid").value)
                ready = int(getattr(dut, f"{s}__ready").value)
                payload = int(getattr(dut, f"{s}__payload").value)
                held = valid and payload == self.offer[s]
                if self.strict_valid and self.offer[s] is not None and not held:
                    self.error(f"{s}: valid dropped or payload changed before the transfer")
                self.offer[s] = payload if valid and not ready else None
                if valid and ready:
                    self.on_issue(s, payload, completed)
            for s in tile_seq.CLASSES:
                completed[s] += driven[s]
                due = self.pending[s] and self.pending[s][0] <= self.cycle
                driven[s] = 1 if due else 0
                if due:
                    self.pending[s].popleft()
                # with nothing outstanding, a completion pulse must be ignored (docs/isa.md)
                idle = completed[s] == self.total_issued[s] and not self.pending[s]
                spurious = idle and self.rng.random() < self.spurious_prob
                getattr(dut, f"{s}_done").value = driven[s] | spurious
                ready = self.ready_prob >= 1 or self.rng.random() < self.ready_prob
                getattr(dut, f"{s}__ready").value = int(ready)
            if stopped and st["state"] == STATES["DONE"] and any(
                    completed[s] - self.base[s] < self.issued[s] for s in tile_seq.CLASSES):
                self.error(f"DONE with operations outstanding: issued {self.issued}, completed {completed}")

    def on_issue(self, s, payload, completed):
        completed = {c: completed[c] - self.base[c] for c in completed}
        desc = unpack(self.fields[s], payload)
        outstanding = self.issued[s] - completed[s]
        self.issued[s] += 1
        self.total_issued[s] += 1
        self.pending[s].append(self.cycle + self.rng.randrange(self.max_delay + 1))
        if outstanding >= self.cfg.tile.max_outstanding:
            self.error(f"{s} issued with {outstanding} outstanding (max {self.cfg.tile.max_outstanding})")
        if not self.expected[s]:
            self.error(f"unexpected {s} descriptor {desc}")
            return
        exp = self.expected[s].popleft()
        if desc != exp.desc:
            diff = {k: (exp.desc[k], desc.get(k)) for k in exp.desc if exp.desc[k] != desc.get(k)}
            self.error(f"{s} #{self.issued[s] - 1} (instruction {exp.index}): (expected, got) {diff}")
        if self.sync_active and self.sync_next < exp.syncs:
            self.error(f"{s} of instruction {exp.index} issued before the SYNC of instruction"
                       f" {self.syncs[self.sync_next].index} retired")
        for c in tile_seq.CLASSES:
            if completed[c] < exp.after[c]:
                self.error(f"{s} of instruction {exp.index} issued after {completed[c]} {c} completions;"
                           f" its barrier needs {exp.after[c]}")


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.clear.value = 0
    dut.fault.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


async def episode(dut, bench: Bench, feeder: CommandFeeder, words, *, fault_at=None, clear_at=None,
                  timeout=20000):
    """Run one program from IDLE (with a fault or a clear pulse at a given cycle);
    return (status, model result, words consumed, cycles)."""
    model = tile_seq.run(words, bench.cfg)
    bench.reset_episode(model)
    bench.strict_valid = fault_at is None and clear_at is None
    bench.sync_active = bench.strict_valid
    start_sent = feeder.sent
    feeder.queue.extend(words)
    t0 = bench.cycle
    st = bench.status()
    while bench.cycle - t0 < timeout:
        await RisingEdge(dut.clk)
        dut.fault.value = int(fault_at is not None and bench.cycle - t0 == fault_at)
        if clear_at is not None and bench.cycle - t0 >= clear_at:
            if int(dut.clear.value):
                dut.clear.value = 0
                break
            dut.clear.value = 1                # abandon the program; take no further word
            feeder.flush()
            continue
        st = bench.status()
        if clear_at is None and st["state"] in (STATES["DONE"], STATES["ERROR"]):
            break                              # (a clear episode clears even a finished program)
    dut.fault.value = 0
    await RisingEdge(dut.clk)                 # (the monitor has seen the last edge's transfers)
    issued = sum(bench.issued.values())
    await ClockCycles(dut.clk, 30)            # nothing more may be consumed or issued
    st = bench.status() if clear_at is not None else st
    if sum(bench.issued.values()) != issued:
        bench.error("descriptors issued after the tile stopped or was cleared")
    consumed = feeder.sent - start_sent
    feeder.flush()
    return st, model, consumed, bench.cycle - t0


def check_episode(bench, st, model, consumed, label, *, fault=False, cleared=False):
    errs = []
    if cleared:
        if (st["state"], st["error"], st["pc"]) != (STATES["IDLE"], 0, 0):
            errs.append(f"after clear: {st}")
    elif fault:
        if (st["state"], st["error"]) not in ((STATES["ERROR"], ERRORS["FAULT"]),
                                              (model.state, model.error)):
            errs.append(f"state {STATE_NAMES[st['state']]} error {ERROR_NAMES.get(st['error'])},"
                        " expected FAULT")
    else:
        if (st["state"], st["error"], st["pc"]) != (model.state, model.error, model.pc):
            errs.append(f"status {STATE_NAMES[st['state']]}/{ERROR_NAMES.get(st['error'])}/pc={st['pc']}, "
                        f"expected {STATE_NAMES[model.state]}/{ERROR_NAMES[model.error]}/pc={model.pc}")
        if consumed != model.consumed:
            errs.append(f"consumed {consumed} words, expected {model.consumed}")
        missing = {s: len(q) for s, q in bench.expected.items() if q}
        if missing:
            errs.append(f"descriptors never issued: {missing}")
        if bench.sync_next != len(model.syncs):
            errs.append(f"{bench.sync_next} SYNCs seen to retire, expected {len(model.syncs)}")
        final = model.syncs[-1].count if model.syncs else 0
        if bench.prev is not None and bench.prev[1] != final:
            errs.append(f"sync_count {bench.prev[1]} at the end, expected {final}")
    errs += bench.errors
    bench.errors = []
    if errs:
        raise AssertionError(f"{label}:\n  " + "\n  ".join(errs))


async def clear(dut, bench):
    # let outstanding operations complete, so that the next episode's counts start from zero
    for _ in range(2000):
        if not any(bench.pending.values()) and all(bench.completed[s] == bench.total_issued[s]
                                                     for s in tile_seq.CLASSES):
            break
        await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    bench.sync_active = False
    dut.clear.value = 1
    await RisingEdge(dut.clk)
    dut.clear.value = 0
    await RisingEdge(dut.clk)
    st = bench.status()
    assert (st["state"], st["error"], st["pc"]) == (STATES["IDLE"], 0, 0), f"after clear: {st}"


@cocotb.test()
async def random_programs(dut):
    """Valid programs, malformed words of every kind and faults, under random timing."""
    p = tessera.tb.params()
    cfg = preset(p["preset"])
    isa = IsaParams.of(cfg)
    rng = rng_for("programs")
    await reset(dut)
    bench = Bench(dut, cfg)
    feeder = CommandFeeder(dut, rng_for("cmd"), idle_prob=0.3)
    kinds = ["ok"] * 3 + MALFORMED_KINDS + ["fault", "clear", "sync_BAD_FIELD", "sync_BAD_GROUP"]
    plan = [kinds[i % len(kinds)] for i in range(p["episodes"])]
    rng.shuffle(plan)
    for n, kind in enumerate(plan):
        bench.ready_prob = rng.choice((1.0, 0.8, 0.4))
        bench.max_delay = rng.choice((0, 3, 30))
        set_count_mode(bench, rng)
        length = rng.randrange(1, p["max_length"])
        words = random_program(rng, isa, length, end=kind != "fault", sync=True)
        fault_at = clear_at = None
        if kind in MALFORMED_KINDS:
            words.insert(rng.randrange(len(words)), malformed(rng, isa, kind))
        elif kind.startswith("sync_"):
            words.insert(rng.randrange(len(words)), malformed_sync(rng, isa, kind[5:]))
        elif kind == "fault":
            fault_at = rng.randrange(2, 4 * length + 4)
        elif kind == "clear":
            clear_at = rng.randrange(2, 4 * length + 4)
        words += [random_instruction(rng, isa) for _ in range(3)]     # must stay unconsumed
        st, model, consumed, _ = await episode(dut, bench, feeder, words,
                                               fault_at=fault_at, clear_at=clear_at)
        label = (f"episode {n} ({kind}, {len(words)} words, ready {bench.ready_prob},"
                 f" delay <= {bench.max_delay}, counts {bench.count_mode} lead {bench.lead}"
                 f" p {bench.step_prob})")
        check_episode(bench, st, model, consumed, label, fault=kind == "fault", cleared=kind == "clear")
        dut._log.info(f"{label}: {STATE_NAMES[st['state']]} {ERROR_NAMES[st['error']]} pc={st['pc']} ok")
        await clear(dut, bench)
    dut._log.info(f"SYNC: {bench.sync_checked} ISSUE cycles checked, {bench.sync_waited} of them waiting")
    dut._log.info(f"descriptors checked: {bench.total_issued}")
    assert bench.sync_checked > 0 and bench.sync_waited > 0
    assert all(bench.total_issued.values()), bench.total_issued


@cocotb.test()
async def vector_checks(dut):
    """Every way a VECTOR fails its check (programs.VECTOR_CASES), each a few times after a random
    program, under random timing: the error code and pc of the model, nothing of it issued."""
    p = tessera.tb.params()
    cfg = preset(p["preset"])
    isa = IsaParams.of(cfg)
    rng = rng_for("vector_checks")
    await reset(dut)
    bench = Bench(dut, cfg)
    feeder = CommandFeeder(dut, rng_for("cmd4"), idle_prob=0.2)
    n = 0
    for kind, cases in VECTOR_CASES.items():
        for case in cases:
            for _ in range(p.get("vector_case_runs", 3)):
                bench.ready_prob = rng.choice((1.0, 0.5))
                bench.max_delay = rng.choice((0, 5))
                words = random_program(rng, isa, rng.randrange(0, 8), end=False, sync=True)
                words += [malformed_vector(rng, isa, kind, case), encode(5)]
                st, model, consumed, _ = await episode(dut, bench, feeder, words)
                assert model.error == ERRORS[kind], (kind, case)
                check_episode(bench, st, model, consumed, f"VECTOR {kind} ({case})")
                await clear(dut, bench)
                n += 1
    dut._log.info(f"{n} malformed VECTORs checked")


def set_count_mode(bench, rng):
    bench.count_mode = rng.choice(("follow", "follow", "random"))
    bench.lead = rng.choice((0, 1, 2, 5))
    bench.step_prob = rng.choice((0.1, 0.5, 0.9))


@cocotb.test()
async def sync_wraparound(dut):
    """Long programs of SYNCs: this tile's count and the others' wrap past 255 (both count modes)."""
    p = tessera.tb.params()
    cfg = preset(p["preset"])
    isa = IsaParams.of(cfg)
    rng = rng_for("wrap")
    await reset(dut)
    bench = Bench(dut, cfg)
    feeder = CommandFeeder(dut, rng_for("cmd3"), idle_prob=0.1)
    for mode in ("follow", "random"):
        set_count_mode(bench, rng)
        bench.count_mode = mode
        bench.ready_prob, bench.max_delay = 0.8, 3
        # About 85 % SYNCs, at least 257 of them (so that both counts wrap) whatever the seed draws.
        words, n_sync = [], 0
        while len(words) < p["sync_length"] or n_sync <= 256:
            sync = rng.random() < 0.85
            words.append(random_sync(rng, isa) if sync else random_instruction(rng, isa))
            n_sync += sync
        words.append(encode(5))
        assert n_sync == sum(1 for w in words[:-1] if w & 0xF == 6)
        checked = bench.sync_checked
        st, model, consumed, cycles = await episode(dut, bench, feeder, words, timeout=100 * len(words))
        check_episode(bench, st, model, consumed, f"wrap-around ({mode})")
        assert n_sync > 256 and model.syncs[-1].count == n_sync % 256
        dut._log.info(f"wrap-around ({mode}): {n_sync} SYNCs in {cycles} cycles,"
                      f" {bench.sync_checked - checked} ISSUE cycles checked")
        await clear(dut, bench)


@cocotb.test()
async def outstanding_limit_and_throughput(dut):
    """Completions held back: exactly max_outstanding of a class leave; then 3 cycles per instruction."""
    p = tessera.tb.params()
    cfg = preset(p["preset"])
    isa = IsaParams.of(cfg)
    rng = rng_for("limit")
    await reset(dut)
    bench = Bench(dut, cfg)
    feeder = CommandFeeder(dut, rng_for("cmd2"), idle_prob=0.0)
    limit = cfg.tile.max_outstanding
    from tessera.tb.tile.programs import random_matmul, random_vector
    for cls, make in (("matmul", random_matmul), ("vector", random_vector)):
        words = [make(rng, isa) for _ in range(limit + 3)] + [encode(5)]
        bench.reset_episode(tile_seq.run(words, cfg))
        bench.max_delay = 10 ** 9                   # never complete (for now)
        feeder.queue.extend(words)
        await ClockCycles(dut.clk, 4 * len(words))
        assert bench.issued[cls] == limit, f"{bench.issued[cls]} {cls}s issued, max_outstanding {limit}"
        bench.max_delay = 0
        for s in tile_seq.CLASSES:
            bench.pending[s] = collections.deque(bench.cycle + 1 + i for i in range(len(bench.pending[s])))
        await ClockCycles(dut.clk, 4 * len(words))
        st = bench.status()
        assert st["state"] == STATES["DONE"] and bench.issued[cls] == limit + 3, (st, bench.issued)
        assert not bench.errors, bench.errors
        await clear(dut, bench)

    # throughput: always ready, completions at once, no barriers
    n = p["throughput_length"]
    words = [random_instruction(rng, isa) for _ in range(4 * n)]
    words = [w for w in words if w & 0xF != 4][:n] + [encode(5)]
    bench.ready_prob, bench.max_delay = 1.0, 0
    st, model, consumed, cycles = await episode(dut, bench, feeder, words)
    check_episode(bench, st, model, consumed, "throughput")
    cycles -= 30
    result = {"instructions": n, "cycles_to_done": cycles, "cycles_per_instruction": cycles / n}
    dut._log.info(f"throughput: {result}")
    with open(os.path.join(os.environ["TESSERA_RUN_DIR"], "sequencer_throughput.json"), "w") as f:
        json.dump(result, f)
    assert cycles <= 3 * n + 8, f"{cycles} cycles for {n} instructions (bound 3n + 8)"

