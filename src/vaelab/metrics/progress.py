"""Progress of a long evaluation step: a rich bar on a terminal, log lines elsewhere.

On a terminal the bar redraws in place and disappears when done; when the output is a file
(a log, nohup, a cluster job) a line is logged at a tenth of the work instead, at most one
every ``LOG_INTERVAL_S`` seconds, so the log shows how far a long step got and a short one
writes no progress lines. Either way the caller logs one closing line with the time.
"""

from __future__ import annotations

import logging
import sys
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = logging.getLogger("vaelab.metrics")

LOG_STEPS = 10  # log lines per step at most when the output is not a terminal
LOG_INTERVAL_S = 5.0  # seconds at least between two of them (and after the start)


class ProgressReport:
    """``with ProgressReport("encoding", total) as p: ... p.advance(n)``."""

    def __init__(self, description: str, total: int, unit: str = "items") -> None:
        self.description, self.total, self.unit = description, max(int(total), 1), unit
        self.done, self._next_log, self._start, self._last_line = 0, 1, 0.0, 0.0
        self._bar: Progress | None = None

    def __enter__(self) -> ProgressReport:
        self._start = self._last_line = time.perf_counter()
        if sys.stderr.isatty():
            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), transient=True,
            )  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        else:
            log.info("%s ...", self.description)
        return self

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            return
        reached = min(LOG_STEPS - 1, self.done * LOG_STEPS // self.total)
        if reached < self._next_log:
            return
        now = time.perf_counter()
        if now - self._last_line >= LOG_INTERVAL_S:  # one line however many tenths crossed
            rate = self.done / max(now - self._start, 1e-9)
            log.info(
                "%s: %d%% (%s of %s %s, %s/s)", self.description, 100 * self.done // self.total,
                f"{self.done:,}", f"{self.total:,}", self.unit, f"{rate:,.0f}",
            )  # fmt: skip
            self._next_log, self._last_line = reached + 1, now

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
