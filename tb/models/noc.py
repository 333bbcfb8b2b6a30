"""Reference model of the mesh NoC: geometry, XY routes and trees, traffic patterns.

Pure Python, independent of ``rtl/``: nodes are numbered row-major (``node = y * width + x``),
XY routing moves along X first, then along Y. A multicast is delivered along the union of the XY
routes from the source to each destination (the XY tree), so it crosses each link of that union
exactly once.
"""

from __future__ import annotations

import random

PATTERNS = ("uniform", "transpose", "bitcomp", "hotspot", "multicast")


class MeshModel:
    def __init__(self, width: int, height: int):
        if width < 1 or height < 1:
            raise ValueError(f"mesh {width} x {height}: both sides must be at least 1")
        self.width, self.height = width, height
        self.nodes = width * height

    def xy(self, node: int) -> tuple[int, int]:
        return node % self.width, node // self.width

    def node(self, x: int, y: int) -> int:
        return y * self.width + x

    def hops(self, src: int, dst: int) -> int:
        (sx, sy), (dx, dy) = self.xy(src), self.xy(dst)
        return abs(sx - dx) + abs(sy - dy)

    def xy_path(self, src: int, dst: int) -> list[tuple[int, int]]:
        """Directed links (from node, to node) of the XY route from ``src`` to ``dst``."""
        (x, y), (dx, dy) = self.xy(src), self.xy(dst)
        links = []
        while x != dx:
            nx = x + (1 if dx > x else -1)
            links.append((self.node(x, y), self.node(nx, y)))
            x = nx
        while y != dy:
            ny = y + (1 if dy > y else -1)
            links.append((self.node(x, y), self.node(x, ny)))
            y = ny
        return links

    def xy_tree(self, src: int, dests) -> set[tuple[int, int]]:
        """Links of the XY multicast tree from ``src`` to every node in ``dests``."""
        tree: set[tuple[int, int]] = set()
        for d in dests:
            tree.update(self.xy_path(src, d))
        return tree

    def farthest(self, src: int) -> int:
        return max(range(self.nodes), key=lambda d: (self.hops(src, d), d))

    def mask_nodes(self, mask: int) -> list[int]:
        return [n for n in range(self.nodes) if mask >> n & 1]

    # Traffic patterns (destination of a unicast packet generated at ``src``).
    def destination(self, pattern: str, src: int, rng: random.Random, hotspot_fraction: float = 0.25) -> int:
        if pattern == "uniform":
            return rng.randrange(self.nodes)          # includes the source, as BookSim does
        if pattern == "transpose":
            if self.width != self.height:
                raise ValueError("transpose traffic needs a square mesh")
            x, y = self.xy(src)
            return self.node(y, x)
        if pattern == "bitcomp":
            return self.nodes - 1 - src               # = ~src for a power-of-two node count
        if pattern == "hotspot":
            if rng.random() < hotspot_fraction:
                return self.node(self.width // 2, self.height // 2)
            return rng.randrange(self.nodes)
        raise ValueError(f"unknown unicast pattern {pattern!r}; "
                         "allowed: uniform, transpose, bitcomp, hotspot")


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares ``y = a * x + b`` over (x, y) points; returns (a, b)."""
    n = len(points)
    if n == 0:
        return 0.0, 0.0
    sx = sum(p[0] for p in points)
    sy = sum(p[1] for p in points)
    sxx = sum(p[0] * p[0] for p in points)
    sxy = sum(p[0] * p[1] for p in points)
    den = n * sxx - sx * sx
    if den == 0:
        return 0.0, sy / n
    a = (n * sxy - sx * sy) / den
    return a, (sy - a * sx) / n


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    s = sorted(values)
    if not s:
        return 0.0
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return float(s[k])
