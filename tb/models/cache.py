"""Independent reference model of one L2 slice: set-associative, write-back, write-allocate, true LRU.

Pure Python; never imports from ``rtl/``. It predicts, for each request of an in-order trace issued
one at a time, whether it hits, whether it evicts a valid line and whether that line was dirty
(a write-back). Replacement: the first invalid way of the set if any, else the least recently used
line. A write marks its line dirty. An ALLOC (claim a line without fetching it, ``alloc()``) is a
write for hit, miss, eviction and LRU: it marks its line dirty. ``flush()`` writes back every dirty
line (lines stay valid); ``invalidate()`` writes them back and empties the cache.

The data lives in :class:`ShadowMemory` (byte address -> latest byte written, ``alloc`` zeroes a
line): what every read must return, whatever the cache holds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Access:
    hit: bool
    evict: bool  # a valid line was replaced
    writeback: bool  # ... and it was dirty


class LruCacheModel:
    def __init__(self, sets: int, ways: int, line_bytes: int):
        if sets < 1 or sets & (sets - 1) or ways < 1 or line_bytes < 1 or line_bytes & (line_bytes - 1):
            raise ValueError("LruCacheModel: sets and line_bytes must be powers of two, ways >= 1")
        self.sets, self.ways, self.line_bytes = sets, ways, line_bytes
        # per set: list of [line, dirty], most recently used last
        self.lines: list[list[list]] = [[] for _ in range(sets)]
        self.stats = dict(accesses=0, hits=0, misses=0, evictions=0, writebacks=0, flush_writebacks=0)

    def _set(self, line: int) -> list:
        return self.lines[line % self.sets]

    def access(self, addr: int, write: bool = False) -> Access:
        line = addr // self.line_bytes
        s = self._set(line)
        self.stats["accesses"] += 1
        for i, entry in enumerate(s):
            if entry[0] == line:
                s.append(s.pop(i))
                entry[1] |= write
                self.stats["hits"] += 1
                return Access(True, False, False)
        self.stats["misses"] += 1
        evict = wb = False
        if len(s) == self.ways:
            old = s.pop(0)
            evict, wb = True, old[1]
            self.stats["evictions"] += 1
            self.stats["writebacks"] += int(wb)
        s.append([line, write])
        return Access(False, evict, wb)

    def alloc(self, addr: int) -> Access:
        """ALLOC of the line holding ``addr``: counted and replaced exactly like a write."""
        return self.access(addr, write=True)

    def contains(self, addr: int) -> bool:
        line = addr // self.line_bytes
        return any(e[0] == line for e in self._set(line))

    def dirty_lines(self) -> list[int]:
        return sorted(e[0] for s in self.lines for e in s if e[1])

    def flush(self) -> int:
        n = 0
        for s in self.lines:
            for e in s:
                n += int(e[1])
                e[1] = False
        self.stats["flush_writebacks"] += n
        return n

    def invalidate(self) -> int:
        n = self.flush()
        self.lines = [[] for _ in range(self.sets)]
        return n


class ShadowMemory:
    """Byte-addressed shadow of what every read must return: the latest bytes written."""

    def __init__(self, init=None):
        self.bytes: dict[int, int] = {}
        self.init = init or (lambda a: 0)

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.bytes.get(a, self.init(a)) for a in range(addr, addr + n))

    def write(self, addr: int, data: bytes, mask: int | None = None):
        for i, b in enumerate(data):
            if mask is None or (mask >> i) & 1:
                self.bytes[addr + i] = b

    def alloc(self, addr: int, line_bytes: int):
        """ALLOC: every byte of the line holding ``addr`` becomes 0."""
        self.write(addr - addr % line_bytes, bytes(line_bytes))
