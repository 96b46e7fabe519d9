"""Progress of a long evaluation step: a rich bar on a terminal, log lines elsewhere.

On a terminal the bar redraws in place and disappears when done; when the output is a file
(a log, nohup, a cluster job) a line is logged at every tenth of the work instead, so the
log shows how far the step got. Either way the caller logs one closing line with the time.
"""

from __future__ import annotations

import logging
import sys
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = logging.getLogger("vaelab.metrics")

LOG_STEPS = 10  # log lines per step when the output is not a terminal


class ProgressReport:
    """``with ProgressReport("encoding", total) as p: ... p.advance(n)``."""

    def __init__(self, description: str, total: int, unit: str = "items") -> None:
        self.description, self.total, self.unit = description, max(int(total), 1), unit
        self.done, self._next_log, self._start = 0, 1, 0.0
        self._bar: Progress | None = None

    def __enter__(self) -> ProgressReport:
        self._start = time.perf_counter()
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
        if reached >= self._next_log:  # one line however many tenths this step crossed
            rate = self.done / max(time.perf_counter() - self._start, 1e-9)
            log.info(
                "%s: %d%% (%s of %s %s, %s/s)", self.description, 100 * self.done // self.total,
                f"{self.done:,}", f"{self.total:,}", self.unit, f"{rate:,.0f}",
            )  # fmt: skip
            self._next_log = reached + 1

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
