"""ISA-level functional model of a whole fabric: every tile's program on a shared memory.

Pure Python + numpy; never imports from ``rtl/``. :func:`run_programs` executes the instruction
words of every tile (decoded with :mod:`tessera.tb.models.tile_isa`) on per-tile scratchpad and
accumulator byte arrays and one shared memory (``bytearray``, address 0 = byte 0), with the
numerics of :mod:`tessera.tb.models.gemm`. Timing is not modelled: each instruction completes when it is
executed, except what waits on another tile.

Semantics (docs/isa.md):

* LOAD LOCAL reads memory into the tile's scratchpad / accumulators.
* LOAD SEND reads memory once and writes it into the local memory of every tile of its group
  (the sender's too if it is a member). The data of a SEND is matched to the receivers by
  the LOAD sequence number: the sender's k-th LOAD feeds each receiver's k-th LOAD, which must
  be a RECV with the identical fields (checked, a mismatch is a :class:`FabricError`).
* LOAD RECV requests nothing. It stays outstanding until the matching SEND has delivered; a
  ``barrier loads`` or END waits for it. A SEND may deliver before the receiver reached its
  RECV (the data lands at once, as in hardware); then any access of the receiver, issued before
  that RECV, to the delivered bytes is a cross-tile race and raises :class:`FabricError` (the
  program forgot a SYNC).
* STORE writes accumulator rows to memory. MATMUL computes at once (BF16: FP32 chain in k
  order; INT8: int32 wrapping). BARRIER waits only for outstanding RECVs.
* SYNC (opcode 6, group rectangle in the XFER group bits): the tile counts it, then blocks until
  every tile of the group has executed at least as many SYNCs. END: blocks until its RECVs are
  in, then the tile is DONE.
* A malformed instruction (:func:`tessera.tb.models.tile_isa.check`) stops that tile in ERROR with the
  error code, like the sequencer; the others go on.

Scheduling is round-robin, one instruction per tile per turn, or, with ``seed``, a random tile
order and a random number (1..8) of instructions per turn. When no tile can make progress and
some are not finished, :class:`FabricError` reports the deadlock with every tile's position.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np

from tessera.tb.models import gemm as gemm_model
from tessera.tb.models import tile_isa as isa
from tessera.tb.models import vector_exec

__all__ = ["FabricError", "run_programs", "SYNC_OPCODE"]

SYNC_OPCODE = isa.OPCODES["sync"]
_MODE_MASK = 0b11 << 4
LOAD_SLOTS = 16          # a tile's LOAD completion slots (sequence number mod 16; docs/fabric.md)
_LOAD, _STORE, _MATMUL, _BARRIER, _END, _VECTOR = (
    isa.OPCODES[n] for n in ("load", "store", "matmul", "barrier", "end", "vector"))


class FabricError(Exception):
    """A protocol error between tiles (RECV mismatch, cross-tile race, deadlock, memory bound)."""

    def __init__(self, message: str, stats: dict | None = None):
        super().__init__(message)
        self.stats = stats


def _rect(f: dict, width: int) -> list[int]:
    return [y * width + x for y in range(f["y0"], f["y1"] + 1) for x in range(f["x0"], f["x1"] + 1)]
def _new_stats() -> dict:
    return {"instructions": 0, "loads_local": 0, "loads_send": 0, "loads_recv": 0,
            "stores": 0, "matmuls": 0, "macs": 0, "syncs": 0, "vectors": 0, "read_words": 0,
            "write_words": 0, "delivered_words": 0}


@dataclass(eq=False)
class _Tile:
    """Executor state of one tile: program position, local memories, LOAD / SYNC bookkeeping."""

    node: int
    words: list
    sp: bytearray
    acc: bytearray
    pc: int = 0
    state: str = "RUN"
    error: int = 0
    reason: str = ""
    loads: int = 0              # LOADs executed (the next LOAD's sequence number)
    syncs: int = 0
    in_sync: bool = False       # executed the SYNC at pc, waiting for the group
    pending: dict = field(default_factory=dict)   # seq -> RECV word still waiting for its SEND
    arrived: dict = field(default_factory=dict)   # seq -> (sender, SEND word) delivered before the RECV
    early: list = field(default_factory=list)     # (seq, space, lo, hi, sender): bytes delivered early
    wait: str = ""
    stats: dict = field(default_factory=_new_stats)

    @classmethod
    def new(cls, node: int, words, p: isa.IsaParams) -> _Tile:
        """A tile at pc 0 with zeroed memories; IDLE without a program."""
        words = list(words)
        return cls(node, words, bytearray(p.scratchpad_bytes), bytearray(p.accumulator_bytes),
                   state="RUN" if words else "IDLE")


def _programs_by_node(programs_words, p: isa.IsaParams) -> dict:
    """``{node: words}`` from a dict or a list indexed by node; ValueError for a node outside the mesh."""
    if isinstance(programs_words, dict):
        progs = {int(t): w for t, w in programs_words.items()}
    else:
        progs = dict(enumerate(programs_words))
    for t in progs:
        if not 0 <= t < p.nodes:
            raise ValueError(f"programs_words: node {t} is not a tile of the"
                             f" {p.mesh_width}x{p.mesh_height} mesh")
    return progs


class _Fabric:
    """Every tile's executor state, the shared memory and the scheduler's step count of one run."""

    def __init__(self, p: isa.IsaParams, progs: dict, memory: bytearray):
        self.p = p
        self.wb = p.word_bytes
        self.mem = memory
        self.tiles = [_Tile.new(t, progs.get(t, []), p) for t in range(p.nodes)]
        self.steps = 0

    # -- reporting ------------------------------------------------------------------------------

    def stats(self) -> dict:
        """Totals of the tiles' counters, per-tile stats under ``tiles`` and ``steps``."""
        tiles = self.tiles
        tot = {k: sum(t.stats[k] for t in tiles) for k in tiles[0].stats}
        tot["tiles"] = [dict(t.stats, node=t.node, state=t.state, error=t.error, reason=t.reason, pc=t.pc)
                        for t in tiles]
        tot["steps"] = self.steps
        return tot

    def fail(self, msg: str) -> NoReturn:
        """Raise :class:`FabricError` with the stats so far."""
        raise FabricError(msg, self.stats())

    # -- memory and transfer geometry -----------------------------------------------------------

    def mem_read(self, addr: int, n: int) -> bytearray:
        """``n`` bytes of the shared memory at ``addr`` (a FabricError beyond its end)."""
        mem = self.mem
        if addr + n > len(mem):
            self.fail(f"memory read {addr:#x}+{n} beyond the {len(mem):#x}-byte memory")
        return mem[addr:addr + n]

    def region_check(self, t: _Tile, space: str, lo: int, hi: int, what: str) -> None:
        """``t`` accesses ``space`` lo..hi: no bytes there may come from a SEND whose RECV ``t``
        has not executed yet."""
        for seq, sp2, l2, h2, sender in t.early:
            if sp2 == space and lo < h2 and l2 < hi:
                self.fail(f"race: tile {t.node} {what} (pc {t.pc}) touches {space}"
                          f" {max(lo, l2):#x}..{min(hi, h2):#x},"
                          f" which tile {sender}'s SEND (LOAD #{seq}) already overwrote before tile {t.node}"
                          f" reached its RECV (LOAD #{seq}); a SYNC is missing")

    def xfer_rows(self, f: dict):
        """(memory address, local address) of every row of the LOAD / STORE ``f``."""
        pitch = isa.pitch(f["row_bytes"], self.wb)
        for r in range(f["rows"]):
            yield f["mem_addr"] + r * f["stride"], f["local_addr"] + r * pitch

    def load_into(self, t: _Tile, f: dict, data_rows) -> None:
        """Write the rows of LOAD ``f`` into ``t``'s scratchpad or accumulators."""
        buf = t.acc if f["space"] else t.sp
        rb = f["row_bytes"]
        for (_, la), row in zip(self.xfer_rows(f), data_rows, strict=True):
            buf[la:la + rb] = row

    def load_span(self, f: dict) -> tuple[int, int]:
        """The local byte range lo..hi a LOAD / STORE ``f`` covers."""
        return f["local_addr"], f["local_addr"] + f["rows"] * isa.pitch(f["row_bytes"], self.wb)

    def words_of(self, f: dict) -> int:
        """Memory words a LOAD / STORE ``f`` moves."""
        return f["rows"] * -(-f["row_bytes"] // self.wb)

    # -- instructions ---------------------------------------------------------------------------

    def exec_load(self, t: _Tile, word: int, f: dict) -> None:
        """LOAD (LOCAL, SEND or RECV) with sequence number ``t.loads``."""
        seq = t.loads
        t.loads += 1
        mode = f["mode"]
        if mode == 2:
            self._exec_recv(t, word, f, seq)
            return
        if seq in t.arrived:
            sender, _ = t.arrived[seq]
            self.fail(f"tile {t.node} LOAD #{seq} (pc {t.pc}) is not a RECV, but tile {sender}'s SEND"
                      " delivered to it")
        space = "acc" if f["space"] else "sp"
        lo, hi = self.load_span(f)
        self.region_check(t, space, lo, hi, "LOAD")
        rows = [bytes(self.mem_read(ma, f["row_bytes"])) for ma, _ in self.xfer_rows(f)]
        t.stats["read_words"] += self.words_of(f)
        if mode == 0:
            t.stats["loads_local"] += 1
            self.load_into(t, f, rows)
            return
        t.stats["loads_send"] += 1                                 # SEND
        for node in _rect(f, self.p.mesh_width):
            r = self.tiles[node]
            t.stats["delivered_words"] += self.words_of(f)
            if node != t.node:
                self._match_send(t, r, word, seq, (space, lo, hi))
            self.load_into(r, f, rows)

    def _exec_recv(self, t: _Tile, word: int, f: dict, seq: int) -> None:
        """RECV LOAD #seq: completes a SEND that already delivered, else waits for it."""
        t.stats["loads_recv"] += 1
        if t.node not in _rect(f, self.p.mesh_width):
            self.fail(f"tile {t.node} pc {t.pc}: RECV whose group does not contain the tile")
        if seq in t.arrived:
            sender, sword = t.arrived.pop(seq)
            if (sword & ~_MODE_MASK) != (word & ~_MODE_MASK):
                self.fail(f"tile {t.node} LOAD #{seq} (pc {t.pc}): RECV differs from tile {sender}'s SEND")
            t.early = [e for e in t.early if e[0] != seq]
        else:
            t.pending[seq] = word

    def _match_send(self, t: _Tile, r: _Tile, word: int, seq: int, region: tuple) -> None:
        """``t``'s SEND (LOAD #seq) reaches receiver ``r``: match its waiting RECV, or record an
        early delivery of ``region`` (space, lo, hi) that ``r``'s RECV will match later."""
        if r.loads > seq:                                      # receiver already past LOAD #seq
            if seq not in r.pending:
                self.fail(f"tile {t.node}'s SEND (LOAD #{seq}, pc {t.pc}) reaches tile {r.node}, whose"
                          f" LOAD #{seq} is not a waiting RECV")
            rword = r.pending.pop(seq)
            if (rword & ~_MODE_MASK) != (word & ~_MODE_MASK):
                self.fail(f"tile {r.node} LOAD #{seq}: RECV differs from tile {t.node}'s SEND")
            return
        if seq in r.arrived:
            self.fail(f"tile {r.node} LOAD #{seq}: two SENDs deliver to it")
        oldest = min(r.pending) if r.pending else r.loads
        if seq >= oldest + LOAD_SLOTS:
            self.fail(f"tile {t.node}'s SEND (LOAD #{seq}) reaches tile {r.node} while its LOAD #{oldest} is"
                      f" incomplete: both use completion slot {seq % LOAD_SLOTS}")
        r.arrived[seq] = (t.node, word)
        r.early.append((seq, *region, t.node))

    def exec_store(self, t: _Tile, f: dict) -> None:
        """STORE accumulator rows to the shared memory."""
        lo, hi = self.load_span(f)
        self.region_check(t, "acc", lo, hi, "STORE")
        mem = self.mem
        rb = f["row_bytes"]
        for ma, la in self.xfer_rows(f):
            if ma + rb > len(mem):
                self.fail(f"tile {t.node} STORE {ma:#x}+{rb} beyond the {len(mem):#x}-byte memory")
            mem[ma:ma + rb] = t.acc[la:la + rb]
        t.stats["stores"] += 1
        t.stats["write_words"] += self.words_of(f)

    def exec_matmul(self, t: _Tile, f: dict) -> None:
        """MATMUL on ``t``'s scratchpad and accumulators, numerics of :mod:`tessera.tb.models.gemm`."""
        m, n, k = f["m"], f["n"], f["k"]
        wb = self.wb
        ap, bp, dp = isa.matmul_pitches(f, wb)
        a_top, b_top, d_top = isa.matmul_extents(f, wb)
        self.region_check(t, "sp", f["a_addr"], a_top, "MATMUL (A)")
        self.region_check(t, "sp", f["b_addr"], b_top, "MATMUL (B)")
        self.region_check(t, "acc", f["acc_addr"], d_top, "MATMUL (D)")
        sp = np.frombuffer(t.sp, dtype=np.uint8)
        acc = np.frombuffer(t.acc, dtype=np.uint8)
        bf16 = f["dtype"] == 0
        el, e = ("<u2", 2) if bf16 else ("i1", 1)
        at = np.ascontiguousarray(sp[f["a_addr"]:a_top].reshape(k, ap)[:, :m * e]).view(el).reshape(k, m)
        b = np.ascontiguousarray(sp[f["b_addr"]:b_top].reshape(k, bp)[:, :n * e]).view(el).reshape(k, n)
        dv = acc[f["acc_addr"]:d_top].reshape(m, dp)
        c = None
        if f["accumulate"]:
            c = np.ascontiguousarray(dv[:, :4 * n]).view("<u4" if bf16 else "<i4").reshape(m, n)
        d = gemm_model.gemm(at.T, b, c, "bf16" if bf16 else "int8")
        out = np.frombuffer(t.acc, dtype=np.uint8)          # writable view of the bytearray
        view = out[f["acc_addr"]:d_top].reshape(m, dp)
        d = np.ascontiguousarray(d.astype("<u4" if bf16 else "<i4"))
        view[:, :4 * n] = d.view(np.uint8).reshape(m, 4 * n)
        t.stats["matmuls"] += 1
        t.stats["macs"] += m * n * k

    def exec_vector(self, t: _Tile, f: dict) -> None:
        """VECTOR on ``t``'s accumulators and scratchpad (:func:`tessera.tb.models.vector_exec.execute`)."""
        for name, region in zip(("x", "y", "d"), isa.vector_regions(f, self.wb), strict=True):
            if region is not None:
                self.region_check(t, region[0], region[1], region[2], f"VECTOR ({name})")
        acc = np.frombuffer(t.acc, dtype=np.uint8)          # writable views of the bytearrays
        sp = np.frombuffer(t.sp, dtype=np.uint8)
        vector_exec.execute(f, acc, sp, self.wb)
        t.stats["vectors"] += 1

    # -- one tile's step ------------------------------------------------------------------------

    def step(self, t: _Tile) -> bool:
        """Execute (or retry) the instruction at t.pc; False when t is blocked or finished."""
        if t.state != "RUN":
            return False
        if t.pc >= len(t.words):
            t.wait = "the next instruction (program ends without END)"
            return False
        word = t.words[t.pc]
        op = word & 0xF
        if t.in_sync:
            return self._retire_sync(t, word)
        err, reason = isa.check(word, self.p)
        if err:
            t.state, t.error, t.reason = "ERROR", err, reason
            return True
        f = isa.decode(word)
        if op == _BARRIER and f["loads"] and t.pending:
            t.wait = f"barrier loads (RECV LOAD #{min(t.pending)} not delivered)"
            return False
        if op == _END and t.pending:
            t.wait = f"END (RECV LOAD #{min(t.pending)} not delivered)"
            return False
        t.stats["instructions"] += 1
        t.wait = ""
        self._execute(t, op, word, f)
        return True

    def _retire_sync(self, t: _Tile, word: int) -> bool:
        """Retire the SYNC ``t`` executed once every tile of its group has executed as many."""
        f = isa.decode(word)
        group = _rect(f, self.p.mesh_width)
        behind = [n for n in group if self.tiles[n].syncs < t.syncs]
        if behind:
            t.wait = f"SYNC #{t.syncs} (tiles {behind} behind)"
            return False
        t.in_sync = False
        t.pc += 1
        return True

    def _execute(self, t: _Tile, op: int, word: int, f: dict) -> None:
        """Execute the checked, unblocked instruction ``word`` (fields ``f``) at t.pc."""
        if op == _LOAD:
            self.exec_load(t, word, f)
        elif op == _STORE:
            self.exec_store(t, f)
        elif op == _MATMUL:
            self.exec_matmul(t, f)
        elif op == _VECTOR:
            self.exec_vector(t, f)
        elif op == _END:
            t.state = "DONE"
            return
        elif op == SYNC_OPCODE:
            t.syncs += 1
            t.stats["syncs"] += 1
            t.in_sync = True
            return                                          # retire on a later step
        t.pc += 1

    # -- scheduling -----------------------------------------------------------------------------

    def run(self, rng: random.Random | None, max_steps: int) -> None:
        """Schedule the tiles until none is RUNning; FabricError on a deadlock or too many steps."""
        order = list(range(len(self.tiles)))
        while True:
            progress = self._turn(order, rng)
            if self.steps > max_steps:
                self.fail(f"more than {max_steps} steps")
            running = [t for t in self.tiles if t.state == "RUN"]
            if not running:
                break
            if not progress:
                where = "; ".join(f"tile {t.node} pc {t.pc}: {t.wait}" for t in running)
                self.fail(f"deadlock: {where}")
        for t in self.tiles:
            if t.state == "DONE" and t.early:
                seq, _, _, _, sender = t.early[0]
                self.fail(f"tile {t.node} ended with tile {sender}'s SEND (LOAD #{seq}) never received")

    def _turn(self, order: list, rng: random.Random | None) -> bool:
        """One turn of every tile (in ``order``, shuffled with ``rng``); True when any made progress."""
        progress = False
        if rng is not None:
            rng.shuffle(order)
        for node in order:
            t = self.tiles[node]
            quantum = rng.randint(1, 8) if rng is not None else 1
            for _ in range(quantum):
                if not self.step(t):
                    break
                progress = True
                self.steps += 1
        return progress


def run_programs(params, programs_words, memory: bytearray, *, seed: int | None = None,
                 max_steps: int = 10_000_000) -> dict:
    """Run every tile's program to the end on ``memory`` (modified in place).

    ``params``: a FabricConfig (or anything :class:`tessera.tb.models.tile_isa.IsaParams` reads);
    ``programs_words``: ``{node: words}`` or a list indexed by node (node = y * width + x);
    tiles without a program stay IDLE. Returns stats: per tile (``tiles[node]``: state, error,
    pc, counters) and totals (``read_words``: words requested from L2 by LOAD LOCAL / SEND,
    ``write_words`` by STORE, ``macs``, ``syncs``, ``steps``). Raises :class:`FabricError` on a
    cross-tile protocol error or a deadlock."""
    p = isa.IsaParams.of(params)
    fabric = _Fabric(p, _programs_by_node(programs_words, p), memory)
    fabric.run(random.Random(seed) if seed is not None else None, max_steps)
    return fabric.stats()
