"""AXI4 memory (slave) model for cocotb testbenches: shared storage, latency, bandwidth, errors, randomness.

cocotbext-axi's ``AxiRam`` serves one burst at a time, in order, so its bandwidth falls as latency
grows and it never interleaves. :class:`AxiMemory` is a pipelined AXI4 slave: any number of bursts
in flight on each port, one sparse byte store shared by all its ports. Typical uses::

    # cache benchmark: fixed latency, always ready, outstanding-read statistics
    mem = AxiMemory(dut, "m_axi", dut.clk, data_bytes=16, latency=400, eager_wready=True, counting=False)
    # fabric: 4 ports on one store, 100-cycle latency, 32 bytes/cycle over all ports, a bad range
    mem = AxiMemory(dut, ["m_axi0", "m_axi1", "m_axi2", "m_axi3"], dut.clk, data_bytes=16, latency=100,
                    bytes_per_cycle=32, error_ranges=[(0x8000, 0x9000)])
    # protocol stress: random ready/valid, R beats of different IDs interleaved, B out of order
    mem = AxiMemory(dut, "m_axi", dut.clk, data_bytes=16, rng=random.Random(1), ready_prob=0.7,
                    valid_prob=0.7, interleave=True)

More ports (with their own options) can be added to the same store with :meth:`AxiMemory.add_port`.
The signals of a port ``p`` are ``p_arvalid``, ``p_araddr``, ... (``arsize``, ``awsize`` and ``wstrb``
are optional: full-width beats and all strobes are assumed without them).

**Sampling discipline** (as in :mod:`tessera.tb.stream`): at each rising edge of ``clk`` a channel
transfers when its valid and ready were both high (the values the edge sees); right after the edge
the model drives its outputs for the next cycle. Each port runs its own coroutine, one iteration per
edge: take the edge's AR, AW, W, R and B transfers (in that order), then drive R, B, AR/AW ready and
W ready (in that order; it is also the order of the rng draws). The coroutines are started when the
ports are created and run in that order at each edge (this only matters when two ports touch the same
bytes in the same cycle).

**Timing of a port** (``L = latency``, at least 1; smaller values act as 1):

* AR / AW: ARREADY and AWREADY are always high (with an ``rng``: high in a cycle with probability
  ``ready_prob``, drawn anew after every edge; low before the first edge). Bursts in flight are not
  limited.
* R: a burst whose AR transfers at edge ``t`` can have its first beat transfer at edge ``t + L``
  (RVALID rises right after edge ``t + L - 1``), then one beat per cycle while RREADY is high (and
  the bandwidth allows). Bursts are served in AR order, whatever their IDs. With ``interleave``,
  each new beat comes from a burst chosen at random (``rng``) among the oldest due burst of each ID:
  same-ID bursts stay in order, different IDs interleave beat by beat. Once RVALID is high, it and
  the beat (RDATA, RID, RRESP, RLAST) stay until the beat transfers; the data is read from the store
  when the beat is first offered.
* W: WREADY is high while an AW is waiting for its data (accepted, its last W not yet taken), the
  bandwidth allows and (with an ``rng``) its draw succeeds; low before the first edge. With
  ``eager_wready`` no AW is needed (W beats may then come before their AW; they wait for it) and,
  without an ``rng``, WREADY is high from the start. A beat is written to the store when it
  transfers (or when its AW arrives), lanes per WSTRB. WLAST must match AWLEN (``AssertionError``
  otherwise).
* B: the B of a write whose last W beat transfers at edge ``t`` can transfer at edge ``t + L`` (``t``:
  the AW's edge if that is later, with ``eager_wready``).
  Bs are returned in order (with ``interleave``: chosen at random among the oldest due B of each ID).
  Held like R once BVALID is high.
* Bursts are INCR: beat ``k`` of a burst at ``addr`` with size ``s`` is at ``addr`` for ``k = 0``,
  else at ``(addr // 2**s + k) * 2**s``; it uses the lanes of the ``data_bytes`` word holding it.
  ARBURST / AWBURST are not looked at; no 4 KiB check.
* Randomness (only with ``rng``): an R beat (B) that could be offered is offered with probability
  ``valid_prob``; ready as above. The draws after each edge, in order: R valid (only if a beat could
  be offered and none is held), R choice (with ``interleave``), B valid, B choice, ARREADY, AWREADY,
  WREADY (only if W could be taken). Without ``rng`` nothing is random and the port runs at full
  speed; ``ready_prob`` / ``valid_prob`` < 1 and ``interleave`` need an ``rng``.

**Bandwidth** (``bytes_per_cycle``; None = no limit): a token bucket per port that R and W beats
share. The constructor's value is the total over the ports it creates, split equally
(:meth:`add_port` takes the port's own). The bucket holds at most ``max(2 * data_bytes, rate)``
bytes and starts full; each R or W beat that transfers costs ``data_bytes``; after each edge's
transfers ``rate`` is added. An R beat is offered only if the bucket holds ``data_bytes``; WREADY
needs ``data_bytes`` as well, ``2 * data_bytes`` if an R beat is offered in the same cycle (reads
first). So with ``rate == data_bytes`` a port moves one beat, read or write, per cycle.

**Errors**: a burst any byte of which is in one of ``error_ranges`` (``(lo, hi)``, hi exclusive;
``port.error_ranges`` may be changed at any time, it is looked at when the AR / AW transfers) gets
SLVERR: every R beat has RRESP = SLVERR and data 0; a write is not performed and its B has BRESP =
SLVERR. Otherwise responses are OKAY.

**Counters**, per port (``mem.ports[i]``) and summed over the ports on the memory; they count only
while ``mem.counting`` is true (constructor ``counting``, default True):

* ``r_beats`` / ``w_beats`` (beats transferred), ``read_bytes`` / ``write_bytes`` (beats x
  ``data_bytes``), ``reads`` / ``writes`` (ARs accepted, last W beats taken), ``errors`` (SLVERR
  bursts: reads when their last beat transfers, writes at their last W), ``switches`` (R beats of
  another burst than the previous beat's while that one was unfinished: interleavings).
* ``outstanding``: reads in flight now (AR accepted, last R beat not yet transferred; always kept).
  ``max_outstanding``, ``outstanding_sum`` and ``counted_cycles`` (edges counted): ``outstanding``
  after each counted edge's transfers; ``mean_outstanding = outstanding_sum / counted_cycles``. On the
  memory, ``max_outstanding`` is the largest of one port's and the sums are over the ports.
* ``cycle``: edges seen by the port (the memory's: its first port's).

**Backdoor**: :meth:`AxiMemory.read` / :meth:`AxiMemory.write` reach the store directly (no timing).
The store is sparse (4 KiB pages on demand): any address, bytes never written read 0.
"""

from __future__ import annotations

import collections
import random

import cocotb
from cocotb.triggers import RisingEdge

OKAY = 0
SLVERR = 2
PAGE_BITS = 12
PAGE = 1 << PAGE_BITS

_SIGNALS = ("arvalid", "araddr", "arlen", "arid", "arready", "rvalid", "rdata", "rresp", "rlast", "rid",
            "rready", "awvalid", "awaddr", "awlen", "awid", "awready", "wvalid", "wdata", "wlast",
            "wready", "bvalid", "bresp", "bid", "bready")
_OPTIONAL = ("arsize", "awsize", "wstrb")


def _total(name: str) -> property:
    return property(lambda self: sum(getattr(p, name) for p in self.ports),
                    doc=f"``{name}`` summed over the ports")


class _Burst:
    """One read or write burst: address, beats, size (log2 bytes per beat), id, beats done."""

    __slots__ = ("addr", "beats", "size", "id", "k", "err", "due")

    def __init__(self, addr: int, beats: int, size: int, id_: int, err: bool):
        self.addr, self.beats, self.size, self.id, self.err = addr, beats, size, id_, err
        self.k = 0
        self.due = 0  # the cycle after whose edge it may be offered (R, B)

    def beat_addr(self) -> int:
        if self.k == 0:
            return self.addr
        return ((self.addr >> self.size) + self.k) << self.size

    def end(self) -> int:
        """End (exclusive) of the bytes the burst touches."""
        return ((self.addr >> self.size) + self.beats) << self.size


class AxiMemory:
    """Sparse byte store behind one or more AXI4 slave ports; see the module docstring.

    ``prefixes``: one signal prefix or a list (every port gets the options given here;
    ``bytes_per_cycle`` is the total, split equally). ``dut`` / ``clk`` / ``prefixes`` may be left
    out to create an empty store and add ports with :meth:`add_port`.
    """

    def __init__(self, dut=None, prefixes=(), clk=None, *, data_bytes: int = 0, latency: int = 1,
                 bytes_per_cycle: float | None = None, error_ranges=(), eager_wready: bool = False,
                 rng: random.Random | None = None, ready_prob: float = 1.0, valid_prob: float = 1.0,
                 interleave: bool = False, counting: bool = True):
        self._pages: dict[int, bytearray] = {}
        self.counting = counting
        self.ports: list[AxiPort] = []
        prefixes = [prefixes] if isinstance(prefixes, str) else list(prefixes)
        if bytes_per_cycle is not None and bytes_per_cycle <= 0:
            raise ValueError(f"bytes_per_cycle = {bytes_per_cycle} must be positive")
        per_port = None if bytes_per_cycle is None or not prefixes else bytes_per_cycle / len(prefixes)
        for prefix in prefixes:
            self.add_port(dut, prefix, clk, data_bytes=data_bytes, latency=latency, bytes_per_cycle=per_port,
                          error_ranges=error_ranges, eager_wready=eager_wready, rng=rng,
                          ready_prob=ready_prob, valid_prob=valid_prob, interleave=interleave)

    def add_port(self, dut, prefix: str, clk, *, data_bytes: int, latency: int = 1,
                 bytes_per_cycle: float | None = None, error_ranges=(), eager_wready: bool = False,
                 rng: random.Random | None = None, ready_prob: float = 1.0, valid_prob: float = 1.0,
                 interleave: bool = False) -> AxiPort:
        """Attach one more slave port (signals ``<prefix>_<name>`` of ``dut``) to the store and start it.

        ``bytes_per_cycle`` is this port's rate (None: no limit)."""
        port = AxiPort(self, dut, prefix, clk, data_bytes=data_bytes, latency=latency,
                       bytes_per_cycle=bytes_per_cycle, error_ranges=error_ranges,
                       eager_wready=eager_wready, rng=rng, ready_prob=ready_prob, valid_prob=valid_prob,
                       interleave=interleave)
        self.ports.append(port)
        return port

    # ---- backdoor --------------------------------------------------------------------------------
    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes from ``addr`` (unwritten bytes are 0)."""
        out = bytearray(n)
        pos = 0
        while pos < n:
            a = addr + pos
            off = a & (PAGE - 1)
            take = min(n - pos, PAGE - off)
            page = self._pages.get(a >> PAGE_BITS)
            if page is not None:
                out[pos:pos + take] = page[off:off + take]
            pos += take
        return bytes(out)

    def write(self, addr: int, data: bytes):
        """Store ``data`` at ``addr``."""
        pos, n = 0, len(data)
        while pos < n:
            a = addr + pos
            off = a & (PAGE - 1)
            take = min(n - pos, PAGE - off)
            page = self._pages.get(a >> PAGE_BITS)
            if page is None:
                page = self._pages[a >> PAGE_BITS] = bytearray(PAGE)
            page[off:off + take] = data[pos:pos + take]
            pos += take

    def _write_lanes(self, addr: int, data: int, strb: int, nbytes: int):
        """Write the bytes of the little-endian word ``data`` (``nbytes``) at ``addr`` whose strobe is set."""
        if strb == (1 << nbytes) - 1:
            self.write(addr, data.to_bytes(nbytes, "little"))
            return
        for j in range(nbytes):
            if strb >> j & 1:
                self.write(addr + j, bytes([(data >> 8 * j) & 0xFF]))

    # ---- counters over the ports -----------------------------------------------------------------
    r_beats = _total("r_beats")
    w_beats = _total("w_beats")
    read_bytes = _total("read_bytes")
    write_bytes = _total("write_bytes")
    reads = _total("reads")
    writes = _total("writes")
    errors = _total("errors")
    switches = _total("switches")
    outstanding = _total("outstanding")
    outstanding_sum = _total("outstanding_sum")
    counted_cycles = _total("counted_cycles")

    @property
    def max_outstanding(self) -> int:
        return max((p.max_outstanding for p in self.ports), default=0)

    @property
    def mean_outstanding(self) -> float:
        return self.outstanding_sum / max(1, self.counted_cycles)

    @property
    def cycle(self) -> int:
        return self.ports[0].cycle if self.ports else 0


class AxiPort:
    """One AXI4 slave port of an :class:`AxiMemory` (create it with :meth:`AxiMemory.add_port`)."""

    def __init__(self, mem: AxiMemory, dut, prefix: str, clk, *, data_bytes: int, latency: int,
                 bytes_per_cycle: float | None, error_ranges, eager_wready: bool, rng, ready_prob: float,
                 valid_prob: float, interleave: bool):
        if data_bytes <= 0 or data_bytes & (data_bytes - 1):
            raise ValueError(f"data_bytes = {data_bytes} must be a power of two")
        if bytes_per_cycle is not None and bytes_per_cycle <= 0:
            raise ValueError(f"bytes_per_cycle = {bytes_per_cycle} must be positive")
        if rng is None and (ready_prob < 1 or valid_prob < 1 or interleave):
            raise ValueError("ready_prob / valid_prob < 1 and interleave need an rng")
        self.mem, self.prefix, self.clk, self.D = mem, prefix, clk, data_bytes
        self.latency = max(1, int(latency))
        self.rate = bytes_per_cycle
        self.error_ranges = list(error_ranges)
        self.eager_wready, self.interleave = eager_wready, interleave
        self.rng, self.ready_prob, self.valid_prob = rng, ready_prob, valid_prob
        self.sig = {name: getattr(dut, f"{prefix}_{name}") for name in _SIGNALS}
        for name in _OPTIONAL:
            self.sig[name] = getattr(dut, f"{prefix}_{name}", None)
        self.cycle = 0
        self.r_beats = self.w_beats = self.reads = self.writes = self.errors = self.switches = 0
        self.outstanding = self.max_outstanding = self.outstanding_sum = self.counted_cycles = 0
        self._ar_ready = self._aw_ready = rng is None
        self._w_ready = eager_wready and rng is None
        for name in ("arready", "awready"):
            self.sig[name].value = int(self._ar_ready)
        self.sig["wready"].value = int(self._w_ready)
        for name in ("rvalid", "bvalid", "rresp", "bresp", "rlast", "rdata", "rid", "bid"):
            self.sig[name].value = 0
        cocotb.start_soon(self._run())

    @property
    def read_bytes(self) -> int:
        return self.r_beats * self.D

    @property
    def write_bytes(self) -> int:
        return self.w_beats * self.D

    @property
    def mean_outstanding(self) -> float:
        return self.outstanding_sum / max(1, self.counted_cycles)

    def _bad(self, b: _Burst) -> bool:
        lo, hi = b.addr, b.end()
        return any(lo < hi_ and hi > lo_ for lo_, hi_ in self.error_ranges)

    def _burst(self, ch: str) -> _Burst:
        sig = self.sig
        size = int(sig[f"{ch}size"].value) if sig[f"{ch}size"] is not None else (self.D - 1).bit_length()
        b = _Burst(int(sig[f"{ch}addr"].value), int(sig[f"{ch}len"].value) + 1, size,
                   int(sig[f"{ch}id"].value), False)
        b.err = self._bad(b)
        return b

    def _due(self, queue, cycle: int) -> list:
        """What may be offered now: the oldest entry if due, or (interleave) the oldest of each ID if due."""
        if not self.interleave:
            return [queue[0]] if queue and queue[0].due <= cycle else []
        seen, cands = set(), []
        for b in queue:
            if b.id not in seen:
                seen.add(b.id)
                if b.due <= cycle:
                    cands.append(b)
        return cands

    async def _run(self):
        sig, D, mem, rng = self.sig, self.D, self.mem, self.rng
        rate = self.rate
        limited = rate is not None
        cap = max(2 * D, rate) if limited else 0
        tokens = cap
        full = (1 << D) - 1
        reads: list[_Burst] = []                  # open read bursts, oldest first
        aws: collections.deque = collections.deque()    # AWs waiting for (the rest of) their W beats
        early: collections.deque = collections.deque()  # W beats taken before their AW (eager_wready)
        bs: list[_Burst] = []                     # writes waiting for their B, oldest first
        r_cur = b_cur = prev_r = None
        rvalid = bvalid = False
        clk = self.clk

        def take_w(cycle):
            """Apply W beats to their AWs while both are there."""
            while aws and early:
                data, strb, last = early.popleft()
                b = aws[0]
                if not b.err:
                    mem._write_lanes(b.beat_addr() // D * D, data, strb, D)
                b.k += 1
                assert bool(last) == (b.k == b.beats), f"{self.prefix}: WLAST does not match AWLEN"
                if last:
                    aws.popleft()
                    if mem.counting:
                        self.writes += 1
                        self.errors += b.err
                    b.due = cycle + self.latency - 1
                    bs.append(b)

        while True:
            await RisingEdge(clk)
            self.cycle += 1
            cycle = self.cycle
            counting = mem.counting
            # ---- transfers of this edge
            if self._ar_ready and int(sig["arvalid"].value):
                b = self._burst("ar")
                b.due = cycle + self.latency - 1
                reads.append(b)
                self.outstanding += 1
                self.reads += counting
            if self._aw_ready and int(sig["awvalid"].value):
                aws.append(self._burst("aw"))
                if early:
                    take_w(cycle)
            if self._w_ready and int(sig["wvalid"].value):
                if limited:
                    tokens -= D
                self.w_beats += counting
                strb = int(sig["wstrb"].value) if sig["wstrb"] is not None else full
                early.append((int(sig["wdata"].value), strb, int(sig["wlast"].value)))
                take_w(cycle)
            if r_cur is not None and int(sig["rready"].value):
                if limited:
                    tokens -= D
                if counting:
                    self.r_beats += 1
                    if prev_r is not None and prev_r is not r_cur and prev_r.k < prev_r.beats:
                        self.switches += 1
                prev_r = r_cur
                r_cur.k += 1
                if r_cur.k == r_cur.beats:
                    reads.remove(r_cur)
                    self.outstanding -= 1
                    self.errors += counting and r_cur.err
                r_cur = None
            if b_cur is not None and int(sig["bready"].value):
                bs.remove(b_cur)
                b_cur = None
            if counting:
                self.counted_cycles += 1
                self.outstanding_sum += self.outstanding
            self.max_outstanding = max(self.max_outstanding, self.outstanding if counting else 0)
            if limited:
                tokens = min(cap, tokens + rate)
            # ---- drive the next cycle (a raised valid is held until its transfer)
            if r_cur is None and (not limited or tokens >= D):
                cands = self._due(reads, cycle)
                if cands and (rng is None or rng.random() < self.valid_prob):
                    r_cur = rng.choice(cands) if self.interleave else cands[0]
                    sig["rdata"].value = 0 if r_cur.err else int.from_bytes(
                        mem.read(r_cur.beat_addr() // D * D, D), "little")
                    sig["rresp"].value = SLVERR if r_cur.err else OKAY
                    sig["rid"].value = r_cur.id
                    sig["rlast"].value = int(r_cur.k == r_cur.beats - 1)
            if rvalid != (r_cur is not None):
                rvalid = r_cur is not None
                sig["rvalid"].value = int(rvalid)
            if b_cur is None:
                cands = self._due(bs, cycle)
                if cands and (rng is None or rng.random() < self.valid_prob):
                    b_cur = rng.choice(cands) if self.interleave else cands[0]
                    sig["bid"].value = b_cur.id
                    sig["bresp"].value = SLVERR if b_cur.err else OKAY
            if bvalid != (b_cur is not None):
                bvalid = b_cur is not None
                sig["bvalid"].value = int(bvalid)
            if rng is not None:
                self._ar_ready = rng.random() < self.ready_prob
                self._aw_ready = rng.random() < self.ready_prob
                sig["arready"].value = int(self._ar_ready)
                sig["awready"].value = int(self._aw_ready)
            w_ready = ((self.eager_wready or bool(aws))
                       and (not limited or tokens >= (2 * D if r_cur is not None else D))
                       and (rng is None or rng.random() < self.ready_prob))
            if w_ready != self._w_ready:
                self._w_ready = w_ready
                sig["wready"].value = int(w_ready)
