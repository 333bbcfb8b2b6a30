"""Golden model of the tile command sequencer (docs/isa.md, "Sequencer").

Pure Python; never imports from ``rtl/``. :func:`run` takes a program (instruction words) and
a configuration and predicts, independently of timing:

* the descriptors issued on each of the four streams (``load``, ``store``, ``matmul``,
  ``vector``), in order, with the fields of ``rtl/tile/isa.py``'s descriptor layouts;
* for each descriptor, how many completions of each class must have been reported before it
  may be issued (what the preceding BARRIERs demand);
* the final status: state, error code, pc, and how many words the sequencer consumes;
* every SYNC (cross-tile barrier): its instruction index, the tile's ``sync_count`` once it has
  executed it, and its group as a node mask. Whether a SYNC may retire depends on the other
  tiles' counts, an input: :func:`tessera.tb.models.tile_isa.sync_passes` is the rule, and ``run``
  takes the counts (``counts=``) to stop at the first SYNC they do not let pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tessera.tb.models.tile_isa import (
    OPCODES,
    STATES,
    SYNC_COUNT_MOD,
    IsaParams,
    check,
    decode,
    group_mask,
    matmul_pitches,
    pitch,
    rect_mask,
    sync_passes,
    vector_pitches,
)

CLASSES = ("load", "store", "matmul", "vector")
BARRIER_FLAGS = {"load": "loads", "store": "stores", "matmul": "matmuls", "vector": "vectors"}


@dataclass
class Issue:
    stream: str            # "load", "store", "matmul" or "vector"
    desc: dict             # descriptor fields
    index: int             # instruction index in the program
    after: dict            # class -> completions that must have been reported before the issue
    syncs: int = 0         # SYNCs that must have retired before the issue (those earlier in the program)


@dataclass
class Sync:
    index: int             # instruction index in the program
    count: int             # the tile's sync_count once this SYNC has entered ISSUE (mod 256)
    mask: int              # its group, node bitmask (node = y * width + x)


@dataclass
class SeqResult:
    issues: list[Issue] = field(default_factory=list)
    state: int = STATES["IDLE"]
    error: int = 0
    pc: int = 0
    consumed: int = 0      # words taken from the command stream
    syncs: list[Sync] = field(default_factory=list)
    blocked: bool = False  # stopped at a SYNC that the given counts do not let pass (run(counts=))

    def by_stream(self, stream: str) -> list[Issue]:
        return [i for i in self.issues if i.stream == stream]

    @property
    def drain(self) -> dict:
        """Completions that must have been reported before DONE (END waits for everything)."""
        return {c: len(self.by_stream(c)) for c in CLASSES}


def xfer_desc(f: dict, p: IsaParams) -> dict:
    return {
        "mode": f["mode"], "space": f["space"], "local_addr": f["local_addr"],
        "pitch": pitch(f["row_bytes"], p.word_bytes), "mem_addr": f["mem_addr"], "stride": f["stride"],
        "rows": f["rows"], "row_bytes": f["row_bytes"], "dest": group_mask(f, p.mesh_width),
    }


def matmul_desc(f: dict, p: IsaParams) -> dict:
    ap, bp, dp = matmul_pitches(f, p.word_bytes)
    d = {k: f[k] for k in ("dtype", "accumulate", "m", "n", "k", "a_addr", "b_addr", "acc_addr")}
    d.update(a_pitch=ap, b_pitch=bp, acc_pitch=dp)
    return d


def vector_desc(f: dict, p: IsaParams) -> dict:
    xp, dp = vector_pitches(f, p.word_bytes)
    names = ("op", "ymode", "act", "red", "fmt", "itof", "x_addr", "d_addr", "y", "rows", "cols")
    d = {k: f[k] for k in names}
    d.update(x_pitch=xp, d_pitch=dp)
    return d


def run(words, cfg=None, counts=None, node=None) -> SeqResult:
    """Execute ``words`` from reset (or clear) to END, the first error, or the end of the words.

    ``counts`` (optional): the ``sync_count`` of every tile (a sequence indexed by node), held
    constant; the run then also stops at the first SYNC they do not let pass (``blocked``; state
    RUN, ``pc`` that SYNC). ``node``: this tile's index, whose entry is its own count. Without
    ``counts`` every SYNC passes (the other tiles catch up eventually).
    """
    p = IsaParams.of(cfg)
    res = SeqResult()
    issued = dict.fromkeys(CLASSES, 0)
    need = dict.fromkeys(CLASSES, 0)
    own = 0
    for i, word in enumerate(words):
        res.state, res.pc, res.consumed = STATES["RUN"], i, i + 1
        err, _ = check(word, p)
        if err:
            res.state, res.error = STATES["ERROR"], err
            return res
        f = decode(word)
        op = f["opcode"]
        if op == OPCODES["end"]:
            res.state = STATES["DONE"]
            return res
        if op == OPCODES["barrier"]:
            for c, flag in BARRIER_FLAGS.items():
                if f[flag]:
                    need[c] = issued[c]
            continue
        if op == OPCODES["sync"]:
            own = (own + 1) % SYNC_COUNT_MOD
            mask = rect_mask(f, p.mesh_width)
            res.syncs.append(Sync(i, own, mask))
            if counts is not None:
                now = list(counts)
                if node is not None:
                    now[node] = own
                if not sync_passes(own, now, mask):
                    res.blocked = True
                    return res
            continue
        stream = {OPCODES["load"]: "load", OPCODES["store"]: "store", OPCODES["matmul"]: "matmul",
                  OPCODES["vector"]: "vector"}[op]
        desc = {"matmul": matmul_desc, "vector": vector_desc}.get(stream, xfer_desc)(f, p)
        res.issues.append(Issue(stream, desc, i, dict(need), len(res.syncs)))
        issued[stream] += 1
    res.pc = len(words)
    return res
