"""Map a GEMM ``D = C + A x B`` onto a Tessera fabric: memory layout and one program per tile.

:func:`plan_gemm` returns a :class:`GemmPlan`: where the host puts A, B, C and D in memory
(:meth:`GemmPlan.pack`, :meth:`GemmPlan.unpack`), and a :class:`tessera.runtime.asm.Program` for every tile
of the mesh (:attr:`GemmPlan.programs`, keyed by node ``y * width + x``).

Memory layout (chosen by the runtime; the host places the data), from ``base``, each region
starting on an L2 line:

* ``A`` stored transposed: K rows of M elements, row pitch ``pitch(M * e)`` (``e`` = 2 BF16,
  1 INT8; ``pitch`` rounds up to a word of ``W = tile.word_bytes`` bytes);
* ``B``: K rows of N elements, pitch ``pitch(N * e)``;
* ``C`` (only with ``has_c``) and ``D``: M rows of N 32-bit elements, pitch ``pitch(4 * N)``.

Work split. D is cut into output tiles of ``Mt x Nt`` (the last row / column of tiles may be
smaller). One *round* gives every tile of the mesh at most one output tile: in round
``(ry, rx)`` tile ``(x, y)`` computes the output tile of row block ``ry * H + y`` and column
block ``rx * W + x`` (so a mesh row shares its A rows, a mesh column its B columns); tiles
without a block in a round are idle in it. K is cut into chunks of ``Kc`` rows: an A chunk
(``Kc`` rows of ``Mt`` elements) and a B chunk each fit one quarter of the scratchpad, the four
quarters holding A-ping, A-pong, B-ping, B-pong (banks 0, 1, 2, 3 on a 4-bank scratchpad, so the
tensor core's two operand reads never conflict while the DMA fills the other pair). The output
tile stays in the accumulator memory for the whole K loop. ``Mt``, ``Nt``, ``Kc`` are chosen by a
small cost model: per chunk the largest of the tensor-core cycles of a tile, the L2 words per
slice and the words one tile's DMA receives, plus per-chunk overheads, plus per round the drain
of D and an overhead; ties go to less L2 traffic. When the accumulator memory holds two output
tiles and there are several rounds, rounds alternate between its two halves, so that D of round
``r`` drains while round ``r + 1`` computes (``plan.acc_buffers`` = 2).
E.g. 512^3 BF16 on ``default``: 128, 128, 64; 256^3: 64, 64, 128.

Program of every tile (the chunks of all rounds form one global sequence ``g``; chunk ``g``
uses buffer pair ``g % 2``)::

    [load C of round 0 -> acc]                       (has_c)
    load A, B of chunk 0
    for g:  barrier loads matmuls                    (chunk g is in; MATMUL g-1 is done)
            sync                                     (... on every tile of the mesh)
            matmul chunk g (accumulate unless it is the round's first chunk without C)
            load A, B of chunk g+1 -> other pair     (may belong to the next round)
            at a round's last chunk: [load the bias slice], barrier matmuls,
                 [barrier loads, vector add/pass (act) in place, barrier vectors],
                 store D, [barrier stores, load next C]
    end

The epilogue (``bias``, ``act``; docs/vector.md, "The fused epilogue") adds the bracketed bias
LOAD (into the row kept after the output tile in its accumulator buffer) and the VECTOR.

Without C, the ``barrier stores`` that protects the accumulator before the next round's first
MATMUL joins the ``barrier loads matmuls`` of that chunk. With two accumulator buffers, at a
round's last chunk the tile instead issues, after its MATMUL, ``barrier stores`` (the STORE of
round ``r - 1``, which used the other buffer) and the LOAD of the next C into the other buffer,
then ``barrier matmuls``, store D.

Why the SYNC: with multicast a tile's SEND writes other tiles' scratchpads. The LOADs of chunk
``g+1`` overwrite the buffers that MATMUL ``g-1`` read; after the SYNC of chunk ``g`` every tile
has passed its ``barrier matmuls`` for MATMUL ``g-1``, so no tile still reads them. Every tile,
idle or not, executes the same number of SYNCs (one per chunk, group = the whole mesh).

Multicast (``multicast=True``). The A chunk of a mesh row is one LOAD with ``mode=send`` and
group ``x = 0..wa-1, y = row`` (``wa`` the active columns of the round), issued by tile
``x = (g + y) % wa`` of the row; the other tiles of the row execute the identical instruction
with ``mode=recv``. The B chunk of a mesh column likewise over ``y = 0..ha-1``, sender
``y = (g + x + 1) % ha``. So the L2 sees each A and B word once per round. (A group of one tile,
``wa = 1`` or ``ha = 1``, is a LOCAL LOAD.)

**Sequence rule.** The tensor DMA matches a SEND's data to the receivers' RECV by the per-tile
LOAD sequence number (the completion slot of rtl/fabric/messages.py). So *a tile's k-th LOAD must
be the same transfer as the k-th LOAD of every other tile of each multicast group it belongs to*.
The programs keep it by giving every tile that is active in any round exactly the same LOAD
sequence: C, then (A, B) per chunk, [the bias slice at a round's end,] then the next C, ...;
in a round where such a tile is idle
it executes a one-word LOCAL *dummy* LOAD in each of those positions. Tiles never active load
nothing. Without multicast every LOAD is LOCAL and there are no dummies.

Without multicast (``multicast=False``) every active tile LOADs its own A and B chunks. The
SYNCs stay: they are not needed for correctness then, but keep the tiles in step, so that the
tiles of a mesh row read the same A lines close together in time (L2 hits).

A program can be longer than ``tile.cmd_queue_depth`` (many rounds or chunks): the host streams
it into the command queue as the tile consumes it. The words are built with
:func:`tessera.runtime.asm.encode` and checked with the assembler's checks (``tessera.runtime.isa.check``);
``plan.programs[t].text()`` assembles back to the same words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tessera.rtl.tile.isa import Act, Dtype, ErrorCode, Mode, Opcode, Space, VOp, YMode
from tessera.runtime import isa
from tessera.runtime.asm import Program, encode

__all__ = ["GemmPlan", "plan_gemm", "DTYPE_BYTES", "EPILOGUE_ACTS"]

DTYPE_BYTES = {"bf16": 2, "int8": 1}
EPILOGUE_ACTS = ("none", "relu", "gelu")
SFU_ACTS = ("gelu",)                 # need the vector engine's special functions (TileConfig.sfu)
_OVERHEAD_CHUNK = 64        # cycles lost per chunk (barrier, sync, MATMUL fill and drain)
_OVERHEAD_ROUND = 200       # cycles per round besides draining D


def _pitch(nbytes: int, w: int) -> int:
    return -(-nbytes // w) * w


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _lcm(*xs: int) -> int:
    out = 1
    for x in xs:
        out = out * x // math.gcd(out, x)
    return out


def _words(rows: int, row_bytes: int, w: int) -> int:
    return rows * _ceil(row_bytes, w)


class _Emitter:
    """Appends instructions to a :class:`tessera.runtime.asm.Program` without going through assembly text:
    each word is packed with :func:`tessera.runtime.asm.encode` and checked with
    :func:`tessera.runtime.isa.check`, the checks the assembler and the sequencer make (a failing
    check here is a planner bug and raises ``ValueError``). Much faster than ``Program.load``
    for programs of thousands of instructions; the words are the same."""

    def __init__(self, prog: Program, cfg, wb: int):
        self.prog, self.cfg, self.wb = prog, cfg, wb

    def _add(self, opcode: Opcode, **fields) -> None:
        word = encode(opcode, **fields)
        err, reason = isa.check(word, self.cfg)
        if err != ErrorCode.NONE:
            raise ValueError(f"instruction {len(self.prog.words)}: {err.name}: {reason}")
        self.prog.words.append(word)

    def load(self, *, mem, rows, bytes, sp=None, acc=None, stride=None, mode="local", x=(0, 0), y=(0, 0)):
        space, local = (Space.ACC, acc) if acc is not None else (Space.SP, sp)
        self._add(Opcode.LOAD, mode=Mode[mode.upper()].value, space=space.value, local_addr=local,
                  mem_addr=mem, stride=isa.pitch(bytes, self.wb) if stride is None else stride,
                  rows=rows, row_bytes=bytes, x0=x[0], x1=x[1], y0=y[0], y1=y[1])

    def store(self, *, acc, mem, rows, bytes, stride):
        self._add(Opcode.STORE, space=Space.ACC.value, local_addr=acc, mem_addr=mem, stride=stride, rows=rows,
                  row_bytes=bytes)

    def matmul(self, dtype, *, m, n, k, a, b, acc, accumulate=False):
        self._add(Opcode.MATMUL, dtype=Dtype[dtype.upper()].value, accumulate=int(accumulate), a_addr=a,
                  b_addr=b, acc_addr=acc, m=m, n=n, k=k)

    def vector(self, *, op, x, d, rows, cols, yrow=None, act="none"):
        """A VECTOR with an optional ROW operand (the epilogue's bias); FP32 output in place."""
        ymode = YMode.ROW if yrow is not None else YMode.REGION
        self._add(Opcode.VECTOR, op=VOp[op.upper()].value, ymode=ymode.value,
                  act=Act[act.upper()].value, x_addr=x, d_addr=d, rows=rows, cols=cols,
                  y=0 if yrow is None else yrow)

    def barrier(self, *classes):
        self._add(Opcode.BARRIER, **{c: 1 for c in classes})

    def sync(self, *, x, y):
        self._add(Opcode.SYNC, x0=x[0], x1=x[1], y0=y[0], y1=y[1])

    def end(self):
        self._add(Opcode.END)


@dataclass
class GemmPlan:
    """Memory layout, work split and tile programs of one GEMM (see the module docstring)."""

    cfg: object
    m: int
    n: int
    k: int
    dtype: str
    has_c: bool
    multicast: bool
    base: int
    mt: int
    nt: int
    kc: int
    chunks: int                 # K chunks per round
    acc_buffers: int            # output tiles in the accumulator memory (2: round r at (r % 2) * half)
    row_blocks: int
    col_blocks: int
    rounds_y: int
    rounds_x: int
    a_addr: int
    b_addr: int
    c_addr: int | None
    d_addr: int
    a_pitch: int
    b_pitch: int
    d_pitch: int
    end: int                    # first byte after the last region
    bias_addr: int | None = None    # the epilogue's bias (N FP32 values), or None
    act: str = "none"               # the epilogue's activation
    programs: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)

    @property
    def e(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def rounds(self) -> int:
        return self.rounds_y * self.rounds_x

    @property
    def d_pitch_tile(self) -> int:
        """Row pitch of an output tile in the accumulator memory (``pitch(4 Nt)``)."""
        return _pitch(4 * self.nt, self.cfg.tile.word_bytes)

    @property
    def epilogue(self) -> bool:
        """D = act(A x B [+ C] + bias) on the vector engines before D is stored."""
        return self.bias_addr is not None or self.act != "none"

    @property
    def words(self) -> dict:
        """Tile index -> instruction words."""
        return {t: list(p.words) for t, p in self.programs.items()}

    # -- host side -------------------------------------------------------------------------

    def pack(self, a, b, c=None, bias=None) -> list[tuple[int, bytes]]:
        """The memory image: ``[(addr, bytes), ...]`` for A^T, B, C and the bias (formats of
        docs/numerics.md: A, B uint16 BF16 bits or int8; C uint32 FP32 bits or int32; bias N uint32
        FP32 bits)."""
        if (bias is None) != (self.bias_addr is None):
            raise ValueError("bias must be given exactly when the plan has a bias")
        m, n, k, e = self.m, self.n, self.k, self.e
        el = "<u2" if self.dtype == "bf16" else "i1"
        a = np.asarray(a)
        b = np.asarray(b)
        if a.shape != (m, k):
            raise ValueError(f"a has shape {a.shape}, expected ({m}, {k})")
        if b.shape != (k, n):
            raise ValueError(f"b has shape {b.shape}, expected ({k}, {n})")
        if (c is None) == self.has_c:
            raise ValueError("c must be given exactly when the plan has_c")
        at = np.zeros((k, self.a_pitch), dtype=np.uint8)
        at[:, :m * e] = np.ascontiguousarray(a.T.astype(el)).view(np.uint8).reshape(k, m * e)
        bb = np.zeros((k, self.b_pitch), dtype=np.uint8)
        bb[:, :n * e] = np.ascontiguousarray(b.astype(el)).view(np.uint8).reshape(k, n * e)
        image = [(self.a_addr, at.tobytes()), (self.b_addr, bb.tobytes())]
        if c is not None:
            c = np.asarray(c)
            if c.shape != (m, n):
                raise ValueError(f"c has shape {c.shape}, expected ({m}, {n})")
            cc = np.zeros((m, self.d_pitch), dtype=np.uint8)
            cc[:, :4 * n] = np.ascontiguousarray(c.astype(np.uint32 if self.dtype == "bf16" else np.int32)
                                                 .astype("<u4" if self.dtype == "bf16" else "<i4")
                                                 ).view(np.uint8).reshape(m, 4 * n)
            image.append((self.c_addr, cc.tobytes()))
        if bias is not None:
            bias = np.asarray(bias)
            if bias.shape != (n,):
                raise ValueError(f"bias has shape {bias.shape}, expected ({n},)")
            image.append((self.bias_addr, np.ascontiguousarray(bias.astype("<u4")).tobytes()))
        return image

    def unpack(self, read_bytes_fn):
        """D read back through ``read_bytes_fn(addr, nbytes) -> bytes``: M x N uint32 (BF16 mode,
        FP32 bit patterns) or int32 (INT8 mode)."""
        raw = bytes(read_bytes_fn(self.d_addr, self.m * self.d_pitch))
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(self.m, self.d_pitch)[:, :4 * self.n]
        d = np.ascontiguousarray(rows).view("<u4" if self.dtype == "bf16" else "<i4")
        return d.astype(np.uint32 if self.dtype == "bf16" else np.int32)

    def summary(self) -> dict:
        """Sizes and traffic of the plan (counted over the generated programs)."""
        e = self.e
        c = self.counts
        compulsory = (self.m * self.k * e + self.k * self.n * e
                      + self.m * self.n * 4 * (2 if self.has_c else 1))
        return {
            "tiles": self.cfg.noc.width * self.cfg.noc.height,
            "tiles_used": c["tiles_used"],
            "Mt": self.mt, "Nt": self.nt, "Kc": self.kc,
            "rounds": self.rounds, "chunks": self.chunks, "acc_buffers": self.acc_buffers,
            "multicast": self.multicast,
            "l2_read_words": c["read_words"],
            "l2_read_words_multicast": c["read_words_mc"],
            "l2_read_words_unicast": c["read_words_uc"],
            "l2_write_words": c["write_words"],
            "dummy_loads": c["dummy_loads"],
            "compulsory_bytes": compulsory,
            "word_bytes": self.cfg.tile.word_bytes,
            "instructions": max(len(p.words) for p in self.programs.values()),
            "memory_end": self.end,
        }


def _size(nbytes: int) -> str:
    """``nbytes`` for people: '37.2 GiB (39,946,199,552 bytes)'."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.1f} {unit} ({nbytes:,} bytes)"
    return f"{nbytes:,} bytes"


def _chunk_costs(cfg, m, n, mt, nt, kc, e):
    """Cycles of one K chunk of an Mt x Nt output tile: (tensor core, L2 words per slice, DMA words
    into one tile, draining D), the terms of the planner's cost model."""
    r, cc, w = cfg.tensor.rows, cfg.tensor.cols, cfg.tile.word_bytes
    mesh_w, mesh_h = cfg.noc.width, cfg.noc.height
    me, ne = min(mt, m), min(nt, n)
    compute = _ceil(me, r) * _ceil(ne, cc) * kc + r + cc
    act_r, act_c = min(mesh_h, _ceil(m, mt)), min(mesh_w, _ceil(n, nt))
    l2 = (act_r * kc * _ceil(me * e, w) + act_c * kc * _ceil(ne * e, w)) / (mesh_w * mesh_h)
    dma = kc * (_ceil(me * e, w) + _ceil(ne * e, w))      # words into one tile per chunk
    drain = 2 * me * _ceil(4 * ne, w)                    # a STORE sends 2 beats per word
    return compute, l2, dma, drain


def _round_cost(compute, l2, dma, drain, chunks):
    return chunks * (max(compute, l2, dma) + _OVERHEAD_CHUNK) + _OVERHEAD_ROUND + drain


def plan_cost(plan) -> float:
    """The planner's estimate of ``plan``'s tile cycles: rounds x (chunks x the largest of the
    tensor-core, L2 and DMA cycles of a chunk, plus overheads, plus draining D); it chooses the
    tile sizes that minimise it (:mod:`tessera.runtime.estimate` calibrates it to cycles)."""
    terms = _chunk_costs(plan.cfg, plan.m, plan.n, plan.mt, plan.nt, plan.kc, plan.e)
    return plan.rounds * _round_cost(*terms, plan.chunks)


def _choose_sizes(cfg, m, n, k, e, want_bufs=None, reserve: int = 0, ncap: int | None = None):
    """(cost, Mt, Nt, Kc) minimising the estimated cycles (see module docstring). ``reserve``: rows
    of ``pitch(4 Nt)`` bytes kept after each output tile in the accumulator memory (the epilogue's
    bias); ``ncap``: the largest Nt (the epilogue's VECTOR has 12-bit ``cols``)."""
    tens, tile = cfg.tensor, cfg.tile
    w = tile.word_bytes
    mesh_w, mesh_h = cfg.noc.width, cfg.noc.height
    quarter = tile.scratchpad_bytes // 4
    r, cc = tens.rows, tens.cols
    mstep = _lcm(r, max(1, w // e))
    nstep = _lcm(cc, max(1, w // e), max(1, w // 4))
    mmax = min(tens.max_m, 4095, 65535 // e)
    nmax = min(tens.max_n, 65535 // 4, ncap or 65535)

    def cands(total, step, cap):
        top = min(_ceil(total, step) * step, cap // step * step)
        out = list(range(step, top + 1, step))
        if total <= cap and total not in out and total < step:
            out.append(total)            # a single block smaller than the alignment step
        return out

    best = None
    for mt in cands(m, mstep, mmax):
        for nt in cands(n, nstep, nmax):
            if (want_bufs or 1) * (mt + reserve) * _pitch(4 * nt, w) > tile.accumulator_bytes:
                break
            kcap = min(quarter // _pitch(mt * e, w), quarter // _pitch(nt * e, w), tens.max_k, 4095)
            if kcap < 1:
                continue
            nch = _ceil(k, kcap)
            kc = _ceil(k, nch)
            rb, cb = _ceil(m, mt), _ceil(n, nt)
            rounds = _ceil(rb, mesh_h) * _ceil(cb, mesh_w)
            compute, l2, dma, drain = _chunk_costs(cfg, m, n, mt, nt, kc, e)
            two = 2 * (mt + reserve) * _pitch(4 * nt, w) <= tile.accumulator_bytes
            accbufs = 2 if rounds > 1 and two else 1
            if want_bufs is not None:
                accbufs = want_bufs
            per_round = _round_cost(compute, l2, dma, drain, nch)
            # The drain is counted per round even when two accumulator buffers hide it (D of round r
            # drains while round r + 1 computes): otherwise small tiles win on paper and the extra
            # rounds re-read A and B, which this model does not charge for.
            cost = rounds * per_round
            traffic = rounds * nch * l2
            key = (cost, traffic, -kc, -mt, -nt)
            if best is None or key < best[0]:
                best = (key, mt, nt, kc, nch, accbufs)
    if best is None:
        raise ValueError(f"no output tile fits: tile.accumulator_bytes = {tile.accumulator_bytes},"
                         f" tile.scratchpad_bytes = {tile.scratchpad_bytes}, tensor.max_m / max_n ="
                         f" {tens.max_m} / {tens.max_n}")
    return best[1:]


def sfu_missing(cfg, what: str) -> str:
    """The message for ``what`` (an argument needing special functions) on a fabric without them."""
    return (f"{what} needs the vector engine's special functions, and fabric {cfg.name!r} is built without"
            " them (TileConfig.sfu = False; tessera.runtime.vector_programs.with_sfu(cfg), or"
            " tessera gemm --sfu)")


def plan_gemm(cfg, m: int, n: int, k: int, dtype: str, *, has_c: bool, multicast: bool = True,
              base: int = 0, acc_buffers: int | None = None, bias: bool = False,
              act: str = "none") -> GemmPlan:
    """Plan ``D = act(C + A x B + bias)`` (A M x K, B K x N) on fabric ``cfg`` (a FabricConfig).

    The epilogue (``bias``: a row of N FP32 values added to every row of D; ``act``: one of
    :data:`EPILOGUE_ACTS`) runs on each tile's vector engine on its output tile before the STORE
    (BF16 only: an INT8 GEMM's D is INT32).

    ``acc_buffers``: output tiles kept in the accumulator memory; None chooses 2 when the chosen
    tile fits twice and there are several rounds, 2 limits the tile to half the accumulator memory.

    Raises ``ValueError`` naming the parameter for a bad dtype, size or base, or when the data
    do not fit below ``2**cfg.cache.addr_bits``."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype = {dtype!r} is not allowed; allowed: bf16, int8")
    for name, v in (("m", m), ("n", n), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} = {v!r} must be a positive integer")
    line = cfg.cache.line_bytes
    if isinstance(base, bool) or not isinstance(base, int) or base < 0 or base % line:
        raise ValueError(f"base = {base!r} must be a non-negative multiple of the {line}-byte line")
    e = DTYPE_BYTES[dtype]
    w = cfg.tile.word_bytes
    if acc_buffers not in (None, 1, 2):
        raise ValueError(f"acc_buffers = {acc_buffers!r} is not allowed; allowed: None (automatic), 1, 2")
    if act not in EPILOGUE_ACTS:
        raise ValueError(f"act = {act!r} is not allowed; allowed: {', '.join(EPILOGUE_ACTS)}")
    if act in SFU_ACTS and not cfg.tile.sfu:
        raise ValueError(sfu_missing(cfg, f"act = {act!r}"))
    if (bias or act != "none") and dtype != "bf16":
        raise ValueError(f"dtype = {dtype!r}: the epilogue (bias, act) is for BF16 GEMMs (FP32 results)")
    epi = bias or act != "none"
    mt, nt, kc, nch, accbufs = _choose_sizes(cfg, m, n, k, e, acc_buffers, reserve=int(bool(bias)),
                                             ncap=4095 if epi else None)

    def align(x):
        return _ceil(x, line) * line

    a_pitch, b_pitch, d_pitch = _pitch(m * e, w), _pitch(n * e, w), _pitch(4 * n, w)
    if max(a_pitch, b_pitch, d_pitch) >= 1 << 24:
        raise ValueError(f"m = {m} or n = {n}: a row pitch does not fit the 24-bit stride field")
    a_addr = base
    b_addr = align(a_addr + k * a_pitch)
    c_addr = align(b_addr + k * b_pitch) if has_c else None
    d_addr = align((c_addr if has_c else b_addr + k * b_pitch) + (m * d_pitch if has_c else 0))
    end = d_addr + m * d_pitch
    bias_addr = align(end) if bias else None
    if bias:
        end = bias_addr + 4 * n
    if end > 1 << cfg.cache.addr_bits:
        at = f" from base {base:#x}" if base else ""
        need, have = _size(end - base), _size(1 << cfg.cache.addr_bits)
        raise ValueError(f"m, n, k = {m}, {n}, {k}: A, B{', C' if has_c else ''} and D need {need} of fabric"
                         f" memory{at}, but the '{cfg.name}' fabric addresses {have} (cache.addr_bits ="
                         f" {cfg.cache.addr_bits}); make the GEMM smaller or split it")
    rb, cb = _ceil(m, mt), _ceil(n, nt)
    mesh_w, mesh_h = cfg.noc.width, cfg.noc.height
    plan = GemmPlan(cfg=cfg, m=m, n=n, k=k, dtype=dtype, has_c=has_c, multicast=multicast, base=base,
                    mt=mt, nt=nt, kc=kc, chunks=nch, acc_buffers=accbufs, row_blocks=rb, col_blocks=cb,
                    rounds_y=_ceil(rb, mesh_h), rounds_x=_ceil(cb, mesh_w),
                    a_addr=a_addr, b_addr=b_addr, c_addr=c_addr, d_addr=d_addr,
                    a_pitch=a_pitch, b_pitch=b_pitch, d_pitch=d_pitch, end=end, bias_addr=bias_addr, act=act)
    _build_programs(plan)
    return plan

def _build_programs(plan: GemmPlan) -> None:
    """Fill ``plan.programs`` (one program per tile of the mesh) and ``plan.counts``."""
    builder = _ProgramBuilder(plan)
    for y in range(builder.mesh_h):
        for x in range(builder.mesh_w):
            prog = Program(plan.cfg)
            plan.programs[y * builder.mesh_w + x] = prog
            _TileProgram(builder, prog, x, y).emit()
    plan.counts = builder.counts


class _ProgramBuilder:
    """What the programs of all tiles share: buffer addresses, the geometry of rounds and chunks,
    and the traffic counters (``plan.counts``) they add to."""

    def __init__(self, plan: GemmPlan):
        cfg = plan.cfg
        self.plan = plan
        self.w = cfg.tile.word_bytes
        self.mesh_w, self.mesh_h = cfg.noc.width, cfg.noc.height
        quarter = cfg.tile.scratchpad_bytes // 4
        self.buf_a, self.buf_b = (0, quarter), (2 * quarter, 3 * quarter)
        self.nch, self.rounds = plan.chunks, plan.rounds
        self.total = self.rounds * self.nch          # chunks of all rounds: the global sequence g
        self.dbuf = plan.acc_buffers == 2
        self.half = cfg.tile.accumulator_bytes // 2
        self.ever = {(x, y) for r in range(self.rounds) for y in range(self.mesh_h)
                     for x in range(self.mesh_w) if self.block(r, x, y) is not None}
        self.counts = {"read_words": 0, "read_words_mc": 0, "read_words_uc": 0, "write_words": 0,
                       "dummy_loads": 0, "tiles_used": len(self.ever)}

    def acc_base(self, r: int) -> int:
        """Accumulator address of round r's output tile."""
        return (r % 2) * self.half if self.dbuf else 0

    def round_geom(self, r: int) -> tuple[int, int, int, int]:
        """(ry, rx, active rows ha, active columns wa) of round r."""
        plan = self.plan
        ry, rx = divmod(r, plan.rounds_x)
        ha = min(self.mesh_h, plan.row_blocks - ry * self.mesh_h)
        wa = min(self.mesh_w, plan.col_blocks - rx * self.mesh_w)
        return ry, rx, ha, wa

    def block(self, r: int, x: int, y: int) -> tuple[int, int, int, int] | None:
        """(row0, mi, col0, ni) of tile (x, y) in round r, or None when it is idle."""
        plan = self.plan
        ry, rx, ha, wa = self.round_geom(r)
        if x >= wa or y >= ha:
            return None
        row0 = (ry * self.mesh_h + y) * plan.mt
        col0 = (rx * self.mesh_w + x) * plan.nt
        return row0, min(plan.mt, plan.m - row0), col0, min(plan.nt, plan.n - col0)

    def chunk(self, i: int) -> tuple[int, int]:
        """(first K row, rows) of K chunk i of a round."""
        k0 = i * self.plan.kc
        return k0, min(self.plan.kc, self.plan.k - k0)


class _TileProgram:
    """Emits the program of tile (x, y) (see the module docstring) into ``prog``."""

    def __init__(self, builder: _ProgramBuilder, prog: Program, x: int, y: int):
        self.b = builder
        self.plan = builder.plan
        self.counts = builder.counts
        self.x, self.y = x, y
        self.p = _Emitter(prog, self.plan.cfg, builder.w)
        self.padded = self.plan.multicast and (x, y) in builder.ever   # keeps the LOAD sequence of the others
        self.stored_in = None          # round whose D store may still be outstanding

    def emit(self) -> None:
        """The whole program: C and the first chunk, every chunk of every round, END."""
        self.load_c(0)
        self.load_chunk(0)
        for g in range(self.b.total):
            self.chunk_step(g)
        self.p.end()

    def dummy(self, space_addr: int, acc: bool = False) -> None:
        """A one-word LOCAL LOAD that only keeps this tile's LOAD sequence in step."""
        self.counts["dummy_loads"] += 1
        self.counts["read_words"] += 1
        if acc:
            self.p.load(acc=space_addr, mem=self.plan.a_addr, rows=1, bytes=self.b.w)
        else:
            self.p.load(sp=space_addr, mem=self.plan.a_addr, rows=1, bytes=self.b.w)

    def load_c(self, r: int) -> None:
        """LOAD of round r's C block into its accumulator buffer (a dummy when idle but padded)."""
        plan, b = self.plan, self.b
        if not plan.has_c:
            return
        blk = b.block(r, self.x, self.y)
        if blk is None:
            if self.padded:
                self.dummy(b.acc_base(r), acc=True)
            return
        row0, mi, col0, ni = blk
        self.p.load(acc=b.acc_base(r), mem=plan.c_addr + row0 * plan.d_pitch + 4 * col0, rows=mi,
                    bytes=4 * ni, stride=plan.d_pitch)
        nw = _words(mi, 4 * ni, b.w)
        self.counts["read_words"] += nw
        self.counts["read_words_mc"] += nw
        self.counts["read_words_uc"] += nw

    def bias_acc(self, r: int) -> int:
        """Accumulator address of round r's bias slice: right after its output tile."""
        return self.b.acc_base(r) + self.plan.mt * self.plan.d_pitch_tile

    def load_bias(self, r: int, blk) -> None:
        """LOAD of round r's bias slice (columns col0 .. col0 + ni - 1) after its output tile (a
        dummy when idle but padded, keeping the LOAD sequence)."""
        plan = self.plan
        if plan.bias_addr is None:
            return
        if blk is None:
            if self.padded:
                self.dummy(self.bias_acc(r), acc=True)
            return
        _, _, col0, ni = blk
        self.p.load(acc=self.bias_acc(r), mem=plan.bias_addr + 4 * col0, rows=1, bytes=4 * ni)
        nw = _words(1, 4 * ni, self.b.w)
        for key in ("read_words", "read_words_mc", "read_words_uc"):
            self.counts[key] += nw

    def epilogue(self, r: int, blk) -> None:
        """D = act(D + bias) in place on the vector engine, then ``barrier vectors`` (the STORE reads D)."""
        plan, p = self.plan, self.p
        _, mi, _, ni = blk
        if plan.bias_addr is not None:
            p.barrier("loads")
        has_bias = plan.bias_addr is not None
        p.vector(op="add" if has_bias else "pass", x=self.b.acc_base(r), d=self.b.acc_base(r), rows=mi,
                 cols=ni, yrow=self.bias_acc(r) if has_bias else None, act=plan.act)
        p.barrier("vectors")

    def load_chunk(self, g: int) -> None:
        """LOADs of the A and B chunks of global chunk g into buffer pair g % 2 (multicast SEND /
        RECV or LOCAL; dummies when idle but padded)."""
        plan, b, x, y, p, counts = self.plan, self.b, self.x, self.y, self.p, self.counts
        e, w = plan.e, b.w
        r, i = divmod(g, b.nch)
        blk = b.block(r, x, y)
        sa, sb = b.buf_a[g % 2], b.buf_b[g % 2]
        if blk is None:
            if self.padded:
                self.dummy(sa)
                self.dummy(sb)
            return
        _, _, ha, wa = b.round_geom(r)
        row0, mi, col0, ni = blk
        k0, kci = b.chunk(i)
        a = dict(sp=sa, mem=plan.a_addr + k0 * plan.a_pitch + row0 * e, rows=kci, bytes=mi * e,
                 stride=plan.a_pitch)
        bb = dict(sp=sb, mem=plan.b_addr + k0 * plan.b_pitch + col0 * e, rows=kci, bytes=ni * e,
                  stride=plan.b_pitch)
        wa_words, wb_words = _words(kci, mi * e, w), _words(kci, ni * e, w)
        counts["read_words_uc"] += wa_words + wb_words
        if plan.multicast:
            a_send = x == (g + y) % wa
            b_send = y == (g + x + 1) % ha
            if wa > 1:
                p.load(**a, mode="send" if a_send else "recv", x=(0, wa - 1), y=(y, y))
            else:                                   # a group of one: a LOCAL LOAD
                p.load(**a)
            if ha > 1:
                p.load(**bb, mode="send" if b_send else "recv", x=(x, x), y=(0, ha - 1))
            else:
                p.load(**bb)
            got = (wa_words if a_send else 0) + (wb_words if b_send else 0)
            counts["read_words"] += got
            counts["read_words_mc"] += got
        else:
            p.load(**a)
            p.load(**bb)
            counts["read_words"] += wa_words + wb_words
            counts["read_words_mc"] += (wa_words if x == (g + y) % wa else 0) \
                + (wb_words if y == (g + x + 1) % ha else 0)

    def chunk_step(self, g: int) -> None:
        """Chunk g: barrier, SYNC, MATMUL, LOADs of chunk g + 1, and the round's end at its last chunk."""
        b, p, plan = self.b, self.p, self.plan
        r, i = divmod(g, b.nch)
        blk = b.block(r, self.x, self.y)
        if i == 0 and self.stored_in is not None and not plan.has_c and blk is not None and not b.dbuf:
            p.barrier("loads", "stores", "matmuls")
            self.stored_in = None
        else:
            p.barrier("loads", "matmuls")
        p.sync(x=(0, b.mesh_w - 1), y=(0, b.mesh_h - 1))
        # The MATMUL first: the sequencer is in order, and a LOAD is handed to the DMA only
        # when the previous LOAD's requests are out, so LOADs first would hold the MATMUL
        # back for the whole time it takes to issue them.
        if blk is not None:
            _, mi, _, ni = blk
            _, kci = b.chunk(i)
            p.matmul(plan.dtype, m=mi, n=ni, k=kci, a=b.buf_a[g % 2], b=b.buf_b[g % 2], acc=b.acc_base(r),
                     accumulate=i > 0 or plan.has_c)
        if g + 1 < b.total:
            self.load_chunk(g + 1)
        if i == b.nch - 1:
            self.round_end(r, blk)

    def round_end(self, r: int, blk) -> None:
        """After round r's last chunk: the next C (into the other accumulator buffer first, with two),
        then D stored."""
        b, p, plan = self.b, self.p, self.plan
        if b.dbuf and r + 1 < b.rounds:
            # the other accumulator buffer: its STORE (round r - 1) must be done
            if self.stored_in is not None:
                p.barrier("stores")
                self.stored_in = None
            self.load_c(r + 1)
        self.load_bias(r, blk)
        if blk is not None:
            row0, mi, col0, ni = blk
            p.barrier("matmuls")
            if plan.epilogue:
                self.epilogue(r, blk)
            p.store(acc=b.acc_base(r), mem=plan.d_addr + row0 * plan.d_pitch + 4 * col0, rows=mi,
                    bytes=4 * ni, stride=plan.d_pitch)
            self.counts["write_words"] += _words(mi, 4 * ni, b.w)
            self.stored_in = r
        if r + 1 < b.rounds and plan.has_c and not b.dbuf:
            if self.stored_in is not None:
                p.barrier("stores")
                self.stored_in = None
            self.load_c(r + 1)
