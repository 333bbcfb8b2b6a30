"""Progress of a long simulation that suits the output: a tqdm bar on a terminal, a plain line
every half minute in a log (no carriage-return frames)."""

from __future__ import annotations

import sys
import time


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()


class Progress:
    """Progress of a long simulation: a tqdm bar on a terminal; otherwise one plain line every
    ``every`` seconds (no carriage-return frames in logs). ``update(n)`` sets the count done;
    ``total`` is an estimate, raised if the count passes it."""

    def __init__(self, label: str, total: int, unit: str = "cycles", every: float = 30.0, stream=None):
        self.label, self.total, self.unit, self.every = label, max(1, int(total)), unit, every
        self.stream = stream or sys.stderr
        self.t0 = self.shown = time.monotonic()
        self.n = 0
        self.bar = None
        if is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="cyc", desc=label, unit_scale=True, leave=False,
                            mininterval=0.5, file=self.stream)

    def rate(self) -> float:
        return self.n / max(time.monotonic() - self.t0, 1e-9)

    def update(self, n: int):
        self.n = n
        self.total = max(self.total, n)
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.n = n
            self.bar.set_postfix_str(f"{self.rate():,.0f} sim cycles/s", refresh=False)
            self.bar.refresh()
            return
        now = time.monotonic()
        if now - self.shown >= self.every:
            self.shown = now
            print(f"[tessera] {self.label}: {n:,} of ~{self.total:,} {self.unit} "
                  f"({n / self.total:.0%}), {self.rate():,.0f} {self.unit}/s", file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
