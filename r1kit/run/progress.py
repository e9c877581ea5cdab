"""Progress of a long job that has no Lightning progress bar (rejection sampling, eval,
``python -m r1kit score``): counts, rate, elapsed time and ETA.

On a terminal the line is redrawn in place (at most every ``min_interval`` seconds); elsewhere
(a log file, SLURM's output, a pipe) it is printed as one line each time another
``every_percent`` of the job is done, so logs get a few lines rather than thousands of carriage
returns. ``enabled=False`` prints nothing: stages pass ``progress_enabled(cfg.trainer)`` (off
with ``trainer.enable_progress_bar=false``, as Lightning's bar is) and only rank 0 reports.
"""

from __future__ import annotations

import sys
import time


def progress_enabled(trainer_cfg: dict, *, is_global_zero: bool = True) -> bool:
    """Whether a stage reports progress: rank 0 only, unless ``trainer.enable_progress_bar``
    is false (Lightning's own default is true)."""
    return is_global_zero and trainer_cfg.get("enable_progress_bar") is not False


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """``advance(n, **counts)`` after each piece of work: ``n`` more of the ``total`` units
    done, and any other running counts (``kept=12``; ``counters`` names those shown from the
    start, at 0) added up and shown beside them.
    ``close()`` (or leaving the ``with`` block) prints the final line."""

    def __init__(self, total: int, *, label: str, unit: str = "items", counters=(),
                 enabled: bool = True, stream=None, every_percent: int = 10,
                 min_interval: float = 0.5, clock=time.monotonic):
        self.total, self.label, self.unit = max(int(total), 0), label, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.total > 0
        self.every_percent, self.min_interval, self.clock = every_percent, min_interval, clock
        self.done, self.counts = 0, dict.fromkeys(counters, 0)
        self.started = self.clock()
        self._drawn_at = None  # terminal: when the line was last redrawn
        self._logged_step = 0  # logs: how many every_percent steps have been printed
        self._closed = False
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty())
        if self.enabled and not self.terminal:  # logs: say what started, with its size
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def advance(self, n: int = 1, **counts: int) -> None:
        self.done = min(self.done + n, self.total)
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + value
        if not self.enabled:
            return
        if self.terminal:
            now = self.clock()
            if self._drawn_at is None or now - self._drawn_at >= self.min_interval \
                    or self.done == self.total:
                self._drawn_at = now
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
            return
        step = (100 * self.done // self.total) // self.every_percent
        if step > self._logged_step:  # one line however many steps this advance crossed
            self._logged_step = step
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        """``label: done/total unit (pct) · count n · rate/s · elapsed · ETA``."""
        elapsed = self.clock() - self.started
        percent = 100 * self.done / self.total if self.total else 100.0
        parts = [f"{self.label}: {self.done}/{self.total} {self.unit} ({percent:.0f}%)"]
        parts += [f"{name} {value}" for name, value in self.counts.items()]
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts.append(f"{rate:.3g} {self.unit}/s" if rate else f"- {self.unit}/s")
        parts.append(f"elapsed {_clock(elapsed)}")
        if self.done < self.total:
            parts.append(f"ETA {_clock((self.total - self.done) / rate)}" if rate else "ETA -")
        return " · ".join(parts)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.enabled and self.terminal and self._drawn_at is not None:
            self.stream.write("\r" + self.line() + "\x1b[K\n")  # keep the final line
            self.stream.flush()
