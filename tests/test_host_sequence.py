"""The host sequence without a simulator: the operations of sim/runtime/host.py against a fake
fabric, the board's lowering of them (sim/runtime/board_gemm.py) and the failures they report.

The cycle-exact behaviour in the Verilated fabric is covered by tests/test_fabric.py and
tests/test_gemm_cli.py (tb/fabric/host.py drives the same generators); the UART path by
tests/test_synth_board.py.
"""

import numpy as np
import pytest

from tessera.rtl.board.axi_bram import HOST_MEM_BASE
from tessera.rtl.config import preset
from tessera.rtl.fabric.csr_map import ID_VALUE, REG, TILE_BASE, TILE_REG
from tessera.runtime import host
from tessera.runtime.board_gemm import FabricError, gemm_session, over_bridge, run_sync
from tessera.runtime.gemm_map import plan_gemm


class FakeFabric:
    """CSRs and memory of a fabric that computes nothing: ACTIVE reads 1 for ``busy`` polls, each
    ACTIVE read frees ``drain`` queue entries per tile, FLUSH reads busy ``flush_busy`` times after
    a flush starts and adds ``flush_errors`` to FLUSH_ERRORS; STATUS is ``state`` (2 = DONE).
    ``log`` holds every access; ``queued`` every tile's 128-bit words in push order."""

    def __init__(self, busy=3, drain=20, flush_busy=2, flush_errors=0, state=2, depth=32):
        self.log, self.mem, self.queued = [], {}, {}
        self.busy, self.drain, self.flush_busy, self.flush_add = busy, drain, flush_busy, flush_errors
        self.state, self.depth = state, depth
        self.free, self.cmd, self.flushing, self.errors, self.started = {}, {}, 0, 5, False

    def tile(self, addr):
        t, off = divmod(addr - TILE_BASE, 0x40)
        return t, off

    def write32(self, addr, value):
        self.log.append(("write", addr, value))
        if addr >= HOST_MEM_BASE:
            self.mem[addr - HOST_MEM_BASE] = value
        elif addr == REG["FLUSH"]:
            self.flushing, self.errors = self.flush_busy, self.errors + self.flush_add
        elif addr == REG["START"]:
            self.started = True
        elif addr >= TILE_BASE:
            t, off = self.tile(addr)
            if off <= TILE_REG["CMD3"]:
                self.cmd.setdefault(t, [0] * 4)[off // 4] = value
            if off == TILE_REG["CMD3"]:
                assert self.free.get(t, self.depth) > 0, f"tile {t}: CMD3 into a full queue"
                self.free[t] = self.free.get(t, self.depth) - 1
                self.queued.setdefault(t, []).append(sum(w << (32 * i) for i, w in enumerate(self.cmd[t])))

    def read32(self, addr):
        if addr >= HOST_MEM_BASE:
            v = self.mem.get(addr - HOST_MEM_BASE, 0)
        elif addr == REG["ID"]:
            v = ID_VALUE
        elif addr == REG["ACTIVE"]:
            self.busy -= 1
            self.free = {t: min(self.depth, f + self.drain) for t, f in self.free.items()}
            v = int(self.busy >= 0)
        elif addr == REG["FLUSH"]:
            self.flushing -= 1
            v = int(self.flushing >= 0)
        elif addr == REG["FLUSH_ERRORS"]:
            v = self.errors
        elif addr >= TILE_BASE and self.tile(addr)[1] == TILE_REG["QUEUE"]:
            v = self.free.get(self.tile(addr)[0], self.depth)
        elif addr >= TILE_BASE and self.tile(addr)[1] == TILE_REG["STATUS"]:
            v = self.state
        else:
            v = 0
        self.log.append(("read", addr, v))
        return v


def drive(session, fabric):
    """Run a host session on ``fabric`` directly (no lowering): every operation is logged as the
    session yields it; ``wait`` and ``progress`` are logged and answered None."""
    ops, value = [], None
    try:
        while True:
            op = session.send(value)
            ops.append(op)
            value = (fabric.read32(op[1]) if op[0] == "read" else
                     fabric.write32(op[1], op[2]) if op[0] == "write" else None)
    except StopIteration as done:
        return done.value, ops


def _long_plan():
    """ulx3s (32-deep queues) with programs longer than the queue: the push-during-run path."""
    cfg = preset("ulx3s")
    plan = plan_gemm(cfg, 16, 40, 200, "int8", has_c=True)
    assert max(len(p.words) for p in plan.programs.values()) > cfg.tile.cmd_queue_depth
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (16, 200), dtype=np.int8)
    b = rng.integers(-128, 128, (200, 40), dtype=np.int8)
    c = rng.integers(-1000, 1000, (16, 40), dtype=np.int32)
    return cfg, plan, a, b, c


def test_board_session_runs_the_shared_sequence_over_the_bridge():
    cfg, plan, a, b, c = _long_plan()
    fab = FakeFabric(depth=cfg.tile.cmd_queue_depth)
    d_words = {plan.d_addr + i: (i * 2654435761) & 0xFFFF_FFFF for i in range(0, plan.m * plan.d_pitch, 4)}
    fab.mem.update(d_words)                     # what the fabric "computed"
    d, info = run_sync(gemm_session(plan, a, b, c), fab)
    # the memory image through the bridge, word by word at HOST_MEM_BASE + address
    for addr, data in plan.pack(a, b, c):
        data = bytes(data) + bytes(-len(data) % 4)
        got = b"".join(fab.mem[addr + i].to_bytes(4, "little") for i in range(0, len(data), 4))
        assert got == data, f"image at {addr:#x}"
    # every program word pushed once, in order, the rest of the long ones after START
    assert fab.queued == {t: list(p.words) for t, p in plan.programs.items()}
    start = fab.log.index(("write", REG["START"], sum(1 << t for t in plan.programs)))
    assert any(op[0] == "write" and op[1] >= TILE_BASE for op in fab.log[start:]), "no push after START"
    raw = b"".join(d_words[a_].to_bytes(4, "little") for a_ in sorted(d_words))
    assert np.array_equal(d, plan.unpack(lambda addr, n: raw[addr - plan.d_addr:addr - plan.d_addr + n]))
    assert info["bus_ops"] == len(fab.log) and fab.log[0] == ("read", REG["ID"], ID_VALUE)
    assert info["flush_errors"] == 0 and info["flush_cycles"] == 2 * host.FLUSH_POLL
    assert info["polls"] == 4 and "counters" not in info and "dram_read_bytes" not in info
    assert all(s["state"] == "DONE" for s in info["statuses"].values())


def test_wait_idle_polls_after_waiting_and_reports_progress():
    programs = {0: list(range(40)), 1: list(range(10))}
    fab = FakeFabric(busy=2, drain=8)
    run, ops = drive(host.run_programs(programs, max_cycles=10_000, poll=64), fab)
    assert run.polls == 3 and run.statuses == {t: {"state": "DONE", "error": 0, "pc": 0} for t in (0, 1)}
    poll, active, progress = ("wait", 64), ("read", REG["ACTIVE"]), ("progress",)
    start = ops.index(("write", REG["START"], 3))
    assert ops[start + 1] == poll
    assert [op for op in ops if op in (poll, active, progress)] == [poll, active, progress] * 3
    # tile 0 (40 words, 32-deep queue): 32 before START; the QUEUE read of poll 1 finds no room (the
    # fake drains on ACTIVE reads), poll 2 pushes the other 8 between its wait and its ACTIVE read
    queue0 = ("read", TILE_BASE + TILE_REG["QUEUE"])
    polls = [i for i, op in enumerate(ops) if op == poll]
    assert ops[polls[0] + 1:polls[0] + 4] == [queue0, active, progress]
    assert ops[polls[1] + 1] == queue0 and ops[polls[1] + 2 + 4 * 8] == active
    assert ops[polls[2] + 1] == active
    assert fab.queued == programs
    assert ops[-4:] == [("read", REG["CYCLES_LO"]), ("read", REG["CYCLES_HI"]),
                        ("read", TILE_BASE + TILE_REG["STATUS"]),
                        ("read", TILE_BASE + 0x40 + TILE_REG["STATUS"])]


def test_watchdog_and_flush_timeout_raise():
    fab = FakeFabric(busy=10**9)
    with pytest.raises(host.FabricError, match="still active after 1024 cycles .4 polls.; tiles"):
        drive(host.run_programs({0: [1, 2]}, max_cycles=1000, poll=256), fab)
    fab = FakeFabric(flush_busy=10**9)
    with pytest.raises(host.FabricError, match="flush did not finish"):
        drive(host.flush(timeout=100), fab)


def test_flush_reports_the_errors_of_this_flush():
    fab = FakeFabric(flush_busy=3, flush_errors=2)        # FLUSH_ERRORS already 5 before
    fl, ops = drive(host.flush(invalidate=False), fab)
    assert fl == host.Flush(3 * host.FLUSH_POLL, 2)
    assert ops[:3] == [("read", REG["FLUSH_ERRORS"]), ("write", REG["FLUSH"], 1), ("read", REG["FLUSH"])]


def test_strict_job_stops_before_the_flush_on_a_tile_error():
    cfg, plan, a, b, c = _long_plan()
    fab = FakeFabric(state=3 | (7 << 4), depth=cfg.tile.cmd_queue_depth)     # ERROR, SP_OVERFLOW
    with pytest.raises(FabricError, match="did not finish cleanly"):
        run_sync(gemm_session(plan, a, b, c), fab)
    assert not any(op[:2] == ("write", REG["FLUSH"]) for op in fab.log)
    # not strict (the simulation's way): reported, flushed, D read
    fab = FakeFabric(state=3 | (7 << 4), depth=cfg.tile.cmd_queue_depth)
    (d, info), ops = drive(over_bridge(host.gemm_job(plan, a, b, c, max_cycles=10**6, flush_timeout=10**6)),
                           fab)
    assert info["statuses"][0] == {"state": "ERROR", "error": 7, "pc": 0}
    assert "counters" in info and d.shape == (plan.m, plan.n)


def test_bridge_lowering_of_memory_operations():
    def session():
        yield ("mem_write", 8, b"\x01\x02\x03\x04\x05")
        assert (yield ("mem_stats",)) is None
        yield ("wait", 100)
        yield ("progress",)
        return (yield ("mem_read", 8, 6))

    fab = FakeFabric()
    assert run_sync(session(), fab) == b"\x01\x02\x03\x04\x05\x00"
    assert fab.log[:2] == [("write", HOST_MEM_BASE + 8, 0x04030201), ("write", HOST_MEM_BASE + 12, 5)]
    assert len(fab.log) == 4
    with pytest.raises(ValueError, match="word-aligned"):
        run_sync((op for op in [("mem_read", 2, 4)]), fab)
