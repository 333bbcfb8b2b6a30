"""Reusable verification components for ``amaranth.lib.stream`` ports under cocotb.

An Amaranth stream port named ``x`` appears in the Verilog as ``x__valid``, ``x__ready`` and
``x__payload`` (the payload layout flattened into one vector, first field in the low bits).

* :class:`StreamDriver` drives a stream into the DUT with random gaps in ``valid``.
* :class:`StreamMonitor` records every transfer (valid and ready high on a rising edge).
* :class:`BackPressure` drives ``ready`` of a DUT output at random.
* :class:`Scoreboard` compares what a monitor sees against expected values, in order or per key.
* :func:`pack` / :func:`unpack` turn dicts into payload integers for a field-width list.

All randomness comes from a ``random.Random`` that the testbench seeds from the test's seed
(:func:`rng_for`, :func:`test_seed`), so that a failing run is replayed with ``SEED=N``.
"""

from __future__ import annotations

import collections
import random

import cocotb
from cocotb.triggers import RisingEdge


def pack(fields: list[tuple[str, int]], values: dict) -> int:
    """Pack ``values`` into an integer; ``fields`` lists (name, width) from the low bit up."""
    word, shift = 0, 0
    for fname, width in fields:
        v = int(values.get(fname, 0))
        word |= (v & ((1 << width) - 1)) << shift
        shift += width
    return word


def unpack(fields: list[tuple[str, int]], word: int) -> dict:
    out, shift = {}, 0
    for fname, width in fields:
        out[fname] = (word >> shift) & ((1 << width) - 1)
        shift += width
    return out


def layout_fields(layout) -> list[tuple[str, int]]:
    """(name, width) list, low bit first, for an ``amaranth.lib.data.StructLayout``."""
    items = sorted(((f.offset, name, f.width) for name, f in layout), key=lambda t: t[0])
    return [(name, width) for _, name, width in items]


def rng_for(tag: str = "") -> random.Random:
    """A ``random.Random`` seeded from the running test's seed (:func:`test_seed`) and a tag, so
    that sources differ."""
    return random.Random(f"{test_seed()}:{tag}")


PACKAGE_PREFIX = "tessera."


def test_seed() -> int:
    """The running test's seed, independent of where the testbenches are installed.

    cocotb seeds each test with ``COCOTB_RANDOM_SEED + int(sha1(full name))`` (``cocotb.RANDOM_SEED``
    during the test), and a test's full name includes its module's import path. The testbenches
    moved from ``tb.*`` to ``tessera.tb.*`` when Tessera became one package; so that ``SEED=N``
    keeps replaying the stimulus it always did (the DMA bug's seeds, the published NoC figures),
    the seed is derived from the full name without the ``tessera.`` prefix. Outside a test (or if
    the running test cannot be identified) it is ``cocotb.RANDOM_SEED`` itself."""
    import hashlib
    import os
    import sys

    seed = cocotb.RANDOM_SEED
    base = os.environ.get("COCOTB_RANDOM_SEED")
    if base is None:
        return seed

    def digest(name: str) -> int:
        return int(hashlib.sha1(name.encode()).hexdigest(), 16)

    for module_name in os.environ.get("COCOTB_TEST_MODULES", "").split(","):
        module = sys.modules.get(module_name.strip())
        for obj in vars(module).values() if module else ():      # cocotb's tests (TestGenerator)
            name, where = getattr(obj, "name", None), getattr(obj, "module", None)
            full = f"{where}.{name}"
            if isinstance(name, str) and isinstance(where, str) and int(base) + digest(full) == seed:
                return int(base) + digest(full.removeprefix(PACKAGE_PREFIX))
    return seed


class StreamDriver:
    """Drive ``<prefix>__valid`` / ``__payload`` from a queue, honouring ``__ready``.

    ``idle_prob`` is the probability of leaving ``valid`` low in a cycle when data is waiting.
    ``valid`` never depends on ``ready``: once raised it stays high until the transfer.
    """

    def __init__(self, dut, prefix: str, clk, *, idle_prob: float = 0.0, rng: random.Random | None = None):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk = clk
        self.idle_prob = idle_prob
        self.rng = rng or rng_for(prefix)
        self.queue: collections.deque[int] = collections.deque()
        self.sent = 0
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send_nowait(self, payload: int):
        self.queue.append(payload)

    def extend(self, payloads):
        self.queue.extend(payloads)

    @property
    def idle(self) -> bool:
        return not self.queue and not int(self.valid.value)

    async def wait_idle(self):
        while not self.idle:
            await RisingEdge(self.clk)

    async def _run(self):
        busy = False
        while True:
            await RisingEdge(self.clk)
            if busy and int(self.ready.value):
                self.sent += 1
                busy = False
            if not busy:
                if self.queue and (self.idle_prob <= 0 or self.rng.random() >= self.idle_prob):
                    self.payload.value = self.queue.popleft()
                    self.valid.value = 1
                    busy = True
                else:
                    self.valid.value = 0


class StreamMonitor:
    """Record every transfer on ``<prefix>``; optionally call ``callback(payload, cycle)``."""

    def __init__(self, dut, prefix: str, clk, callback=None):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk = clk
        self.callback = callback
        self.items: collections.deque[int] = collections.deque()
        self.count = 0
        self.cycle = 0
        self.first_cycle: int | None = None
        self.last_cycle: int | None = None
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            if int(self.valid.value) and int(self.ready.value):
                word = int(self.payload.value)
                self.count += 1
                if self.first_cycle is None:
                    self.first_cycle = self.cycle
                self.last_cycle = self.cycle
                if self.callback is not None:
                    self.callback(word, self.cycle)
                else:
                    self.items.append(word)


class BackPressure:
    """Drive ``<prefix>__ready`` high with probability ``ready_prob`` each cycle (1.0: always)."""

    def __init__(self, dut, prefix: str, clk, *, ready_prob: float = 1.0, rng: random.Random | None = None):
        self.ready = getattr(dut, f"{prefix}__ready")
        self.clk = clk
        self.ready_prob = ready_prob
        self.rng = rng or rng_for(prefix + ":bp")
        self.ready.value = 1 if ready_prob >= 1.0 else 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            self.ready.value = 1 if self.ready_prob >= 1.0 or self.rng.random() < self.ready_prob else 0


class Scoreboard:
    """Check observed items against expectations, in order per key (one key by default).

    ``compare(expected, observed)`` returns an error string or ``None``; the default compares
    for equality. Mismatches are collected (the first ``max_report`` are kept) and
    :meth:`check` raises ``AssertionError`` if any occurred or expectations remain.
    """

    def __init__(self, name: str, compare=None, max_report: int = 10, fmt=hex):
        self.name = name
        self.expected: dict[object, collections.deque] = collections.defaultdict(collections.deque)
        self.compare = compare or (lambda e, o: None if e == o else f"expected {fmt(e)}, got {fmt(o)}")
        self.errors: list[str] = []
        self.error_count = 0
        self.matched = 0
        self.max_report = max_report

    def expect(self, item, key=None):
        self.expected[key].append(item)

    def observe(self, item, key=None):
        queue = self.expected[key]
        if not queue:
            self._error(f"unexpected item {item!r} (key {key!r})")
            return
        exp = queue.popleft()
        msg = self.compare(exp, item)
        if msg:
            self._error(f"item {self.matched + self.error_count} (key {key!r}): {msg}")
        else:
            self.matched += 1

    def _error(self, msg: str):
        self.error_count += 1
        if len(self.errors) < self.max_report:
            self.errors.append(msg)

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self.expected.values())

    def check(self):
        problems = list(self.errors)
        if self.pending:
            problems.append(f"{self.pending} expected items never arrived")
        if self.error_count or self.pending:
            raise AssertionError(
                f"scoreboard {self.name}: {self.error_count} mismatches, {self.matched} matched\n  "
                + "\n  ".join(problems)
            )
