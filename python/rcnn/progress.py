"""Progress lines for long loops: count, percentage, rate and time left."""
from __future__ import annotations

import time


def format_seconds(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    def __init__(self, total: int, start: int = 0) -> None:
        self.total = total
        self.start = start
        self.t0 = time.monotonic()

    def line(self, done: int) -> str:
        elapsed = time.monotonic() - self.t0
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else 0.0
        width = 20
        filled = int(width * done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        return (f"[{bar}] {done}/{self.total} ({100 * done / max(self.total, 1):.0f}%) "
                f"{rate:.2f}/s, {format_seconds(elapsed)} elapsed, {format_seconds(left)} left")
