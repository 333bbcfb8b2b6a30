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

import numpy as np
from tessera.tb.models import gemm as gemm_model
from tessera.tb.models import tile_isa as isa

__all__ = ["FabricError", "run_programs", "SYNC_OPCODE"]

SYNC_OPCODE = isa.OPCODES["sync"]
_MODE_MASK = 0b11 << 4
LOAD_SLOTS = 16          # a tile's LOAD completion slots (sequence number mod 16; docs/fabric.md)
_LOAD, _STORE, _MATMUL, _BARRIER, _END = (isa.OPCODES[n]
                                          for n in ("load", "store", "matmul", "barrier", "end"))


class FabricError(Exception):
    """A protocol error between tiles (RECV mismatch, cross-tile race, deadlock, memory bound)."""

    def __init__(self, message: str, stats: dict | None = None):
        super().__init__(message)
        self.stats = stats


def _rect(f: dict, width: int) -> list[int]:
    return [y * width + x for y in range(f["y0"], f["y1"] + 1) for x in range(f["x0"], f["x1"] + 1)]


class _Tile:
    def __init__(self, node: int, words, p: isa.IsaParams):
        self.node = node
        self.words = list(words)
        self.pc = 0
        self.state = "RUN" if self.words else "IDLE"
        self.error = 0
        self.reason = ""
        self.sp = bytearray(p.scratchpad_bytes)
        self.acc = bytearray(p.accumulator_bytes)
        self.loads = 0              # LOADs executed (the next LOAD's sequence number)
        self.syncs = 0
        self.in_sync = False        # executed the SYNC at pc, waiting for the group
        self.pending = {}           # seq -> RECV word still waiting for its SEND
        self.arrived = {}           # seq -> (sender, SEND word) delivered before the RECV executed
        self.early = []             # (seq, space, lo, hi, sender): bytes delivered before the RECV
        self.wait = ""
        self.stats = {"instructions": 0, "loads_local": 0, "loads_send": 0, "loads_recv": 0,
                      "stores": 0, "matmuls": 0, "macs": 0, "syncs": 0, "read_words": 0,
                      "write_words": 0, "delivered_words": 0}


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
    nodes = p.nodes
    if isinstance(programs_words, dict):
        progs = {int(t): w for t, w in programs_words.items()}
    else:
        progs = dict(enumerate(programs_words))
    for t in progs:
        if not 0 <= t < nodes:
            raise ValueError(f"programs_words: node {t} is not a tile of the"
                             f" {p.mesh_width}x{p.mesh_height} mesh")
    tiles = [_Tile(t, progs.get(t, []), p) for t in range(nodes)]
    mem = memory
    wb = p.word_bytes
    rng = random.Random(seed) if seed is not None else None

    def stats():
        tot = {k: sum(t.stats[k] for t in tiles) for k in tiles[0].stats}
        tot["tiles"] = [dict(t.stats, node=t.node, state=t.state, error=t.error, reason=t.reason, pc=t.pc)
                        for t in tiles]
        tot["steps"] = steps
        return tot

    def fail(msg):
        raise FabricError(msg, stats())

    def mem_read(addr, n):
        if addr + n > len(mem):
            fail(f"memory read {addr:#x}+{n} beyond the {len(mem):#x}-byte memory")
        return mem[addr:addr + n]

    def region_check(t, space, lo, hi, what):
        """``t`` accesses ``space`` lo..hi: no bytes there may come from a SEND whose RECV ``t``
        has not executed yet."""
        for seq, sp2, l2, h2, sender in t.early:
            if sp2 == space and lo < h2 and l2 < hi:
                fail(f"race: tile {t.node} {what} (pc {t.pc}) touches {space}"
                     f" {max(lo, l2):#x}..{min(hi, h2):#x},"
                     f" which tile {sender}'s SEND (LOAD #{seq}) already overwrote before tile {t.node}"
                     f" reached its RECV (LOAD #{seq}); a SYNC is missing")

    def xfer_rows(f):
        pitch = isa.pitch(f["row_bytes"], wb)
        for r in range(f["rows"]):
            yield f["mem_addr"] + r * f["stride"], f["local_addr"] + r * pitch

    def do_load_into(t, f, data_rows):
        buf = t.acc if f["space"] else t.sp
        rb = f["row_bytes"]
        for (_, la), row in zip(xfer_rows(f), data_rows, strict=True):
            buf[la:la + rb] = row

    def load_span(f):
        return f["local_addr"], f["local_addr"] + f["rows"] * isa.pitch(f["row_bytes"], wb)

    def words_of(f):
        return f["rows"] * -(-f["row_bytes"] // wb)

    def exec_load(t, word, f):
        seq = t.loads
        t.loads += 1
        mode = f["mode"]
        space = "acc" if f["space"] else "sp"
        lo, hi = load_span(f)
        if mode == 2:                                              # RECV
            t.stats["loads_recv"] += 1
            if t.node not in _rect(f, p.mesh_width):
                fail(f"tile {t.node} pc {t.pc}: RECV whose group does not contain the tile")
            if seq in t.arrived:
                sender, sword = t.arrived.pop(seq)
                if (sword & ~_MODE_MASK) != (word & ~_MODE_MASK):
                    fail(f"tile {t.node} LOAD #{seq} (pc {t.pc}): RECV differs from tile {sender}'s SEND")
                t.early = [e for e in t.early if e[0] != seq]
            else:
                t.pending[seq] = word
            return
        if seq in t.arrived:
            sender, _ = t.arrived[seq]
            fail(f"tile {t.node} LOAD #{seq} (pc {t.pc}) is not a RECV, but tile {sender}'s SEND"
                 " delivered to it")
        region_check(t, space, lo, hi, "LOAD")
        rows = [bytes(mem_read(ma, f["row_bytes"])) for ma, _ in xfer_rows(f)]
        t.stats["read_words"] += words_of(f)
        if mode == 0:
            t.stats["loads_local"] += 1
            do_load_into(t, f, rows)
            return
        t.stats["loads_send"] += 1                                 # SEND
        for node in _rect(f, p.mesh_width):
            r = tiles[node]
            t.stats["delivered_words"] += words_of(f)
            if node == t.node:
                do_load_into(r, f, rows)
                continue
            if r.loads > seq:                                      # receiver already past LOAD #seq
                if seq not in r.pending:
                    fail(f"tile {t.node}'s SEND (LOAD #{seq}, pc {t.pc}) reaches tile {node}, whose"
                         f" LOAD #{seq} is not a waiting RECV")
                rword = r.pending.pop(seq)
                if (rword & ~_MODE_MASK) != (word & ~_MODE_MASK):
                    fail(f"tile {node} LOAD #{seq}: RECV differs from tile {t.node}'s SEND")
            else:
                if seq in r.arrived:
                    fail(f"tile {node} LOAD #{seq}: two SENDs deliver to it")
                oldest = min(r.pending) if r.pending else r.loads
                if seq >= oldest + LOAD_SLOTS:
                    fail(f"tile {t.node}'s SEND (LOAD #{seq}) reaches tile {node} while its LOAD #{oldest} is"
                         f" incomplete: both use completion slot {seq % LOAD_SLOTS}")
                r.arrived[seq] = (t.node, word)
                r.early.append((seq, space, lo, hi, t.node))
            do_load_into(r, f, rows)

    def exec_store(t, f):
        lo, hi = load_span(f)
        region_check(t, "acc", lo, hi, "STORE")
        rb = f["row_bytes"]
        for ma, la in xfer_rows(f):
            if ma + rb > len(mem):
                fail(f"tile {t.node} STORE {ma:#x}+{rb} beyond the {len(mem):#x}-byte memory")
            mem[ma:ma + rb] = t.acc[la:la + rb]
        t.stats["stores"] += 1
        t.stats["write_words"] += words_of(f)

    def exec_matmul(t, f):
        m, n, k = f["m"], f["n"], f["k"]
        ap, bp, dp = isa.matmul_pitches(f, wb)
        a_top, b_top, d_top = isa.matmul_extents(f, wb)
        region_check(t, "sp", f["a_addr"], a_top, "MATMUL (A)")
        region_check(t, "sp", f["b_addr"], b_top, "MATMUL (B)")
        region_check(t, "acc", f["acc_addr"], d_top, "MATMUL (D)")
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

    def step(t) -> bool:
        """Execute (or retry) the instruction at t.pc; False when t is blocked or finished."""
        if t.state != "RUN":
            return False
        if t.pc >= len(t.words):
            t.wait = "the next instruction (program ends without END)"
            return False
        word = t.words[t.pc]
        op = word & 0xF
        if t.in_sync:
            f = isa.decode(word)
            group = _rect(f, p.mesh_width)
            behind = [n for n in group if tiles[n].syncs < t.syncs]
            if behind:
                t.wait = f"SYNC #{t.syncs} (tiles {behind} behind)"
                return False
            t.in_sync = False
            t.pc += 1
            return True
        err, reason = isa.check(word, p)
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
        if op == _LOAD:
            exec_load(t, word, f)
        elif op == _STORE:
            exec_store(t, f)
        elif op == _MATMUL:
            exec_matmul(t, f)
        elif op == _END:
            t.state = "DONE"
            return True
        elif op == SYNC_OPCODE:
            t.syncs += 1
            t.stats["syncs"] += 1
            t.in_sync = True
            return True                                     # retire on a later step
        t.pc += 1
        return True

    steps = 0
    order = list(range(nodes))
    while True:
        progress = False
        if rng is not None:
            rng.shuffle(order)
        for node in order:
            t = tiles[node]
            quantum = rng.randint(1, 8) if rng is not None else 1
            for _ in range(quantum):
                if not step(t):
                    break
                progress = True
                steps += 1
        if steps > max_steps:
            fail(f"more than {max_steps} steps")
        running = [t for t in tiles if t.state == "RUN"]
        if not running:
            break
        if not progress:
            where = "; ".join(f"tile {t.node} pc {t.pc}: {t.wait}" for t in running)
            fail(f"deadlock: {where}")
    for t in tiles:
        if t.state == "DONE" and t.early:
            seq, _, _, _, sender = t.early[0]
            fail(f"tile {t.node} ended with tile {sender}'s SEND (LOAD #{seq}) never received")
    return stats()
