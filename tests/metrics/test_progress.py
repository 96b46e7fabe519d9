"""The evaluation's progress report: log lines at tenths off a terminal (at most one per
interval), a bar on one."""

from __future__ import annotations

import logging
import re
import sys

import pytest

from vaelab.metrics import progress as progress_module
from vaelab.metrics.progress import ProgressReport

LINE = re.compile(r"^encoding: (\d+)% \(([\d,]+) of ([\d,]+) images, ([\d,]+)/s\)$")


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "vaelab.metrics"]


@pytest.fixture
def no_terminal(monkeypatch):
    """Output to a file, and every tenth a line (no minimum interval; tested on its own)."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.setattr(progress_module, "LOG_INTERVAL_S", 0.0)


def test_off_a_terminal_one_line_per_tenth_then_none_at_the_end(caplog, no_terminal):
    caplog.set_level(logging.INFO, logger="vaelab.metrics")
    with ProgressReport("encoding", 2_000, unit="images") as p:
        for _ in range(20):
            p.advance(100)
    said = lines(caplog)
    assert said[0] == "encoding ..."
    progress = [LINE.match(s) for s in said[1:]]
    assert all(progress), said
    # 10 %, 20 %, ..., 90 %: the caller says when it is done, so 100 % is never a line
    assert [int(m[1]) for m in progress] == list(range(10, 100, 10))
    assert [m[2] for m in progress] == [f"{n:,}" for n in range(200, 2_000, 200)]
    assert {m[3] for m in progress} == {"2,000"}
    assert all(int(m[4].replace(",", "")) > 0 for m in progress)
    assert p.done == 2_000


def test_a_step_across_several_tenths_logs_one_line(caplog, no_terminal):
    caplog.set_level(logging.INFO, logger="vaelab.metrics")
    with ProgressReport("encoding", 100, unit="images") as p:
        p.advance(5)  # below the first tenth: nothing
        assert lines(caplog) == ["encoding ..."]
        p.advance(40)  # 45 %: crosses 10 %..40 % at once
        p.advance(4)  # 49 %: still within the 40 % tenth
        p.advance(1)  # 50 %
        p.advance(50)  # 100 %: crosses 60 %..90 % at once
    assert [LINE.match(s)[1] for s in lines(caplog)[1:]] == ["45", "50", "100"]


def test_the_rate_is_work_over_elapsed_time_and_the_unit_defaults_to_items(
    caplog, no_terminal, monkeypatch
):
    clock = iter([100.0, 100.5, 102.0])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="vaelab.metrics")
    with ProgressReport("scoring", 1_000) as p:
        p.advance(200)  # at 100.5 s: 200 in 0.5 s
        p.advance(600)  # at 102 s: 800 in 2 s
    assert lines(caplog)[1:] == [
        "scoring: 20% (200 of 1,000 items, 400/s)",
        "scoring: 80% (800 of 1,000 items, 400/s)",
    ]


def test_lines_come_at_most_one_per_interval_so_a_short_step_writes_none(
    caplog, no_terminal, monkeypatch
):
    monkeypatch.setattr(progress_module, "LOG_INTERVAL_S", 5.0)
    clock = iter([100.0, 101.0, 106.0, 107.0, 111.0, 112.0])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="vaelab.metrics")
    with ProgressReport("encoding", 100, unit="images") as p:  # starts at 100 s
        p.advance(20)  # 101 s: 1 s after the start, no line
        p.advance(10)  # 106 s: 30 %, the first line
        p.advance(20)  # 107 s: 50 %, 1 s after it: none
        p.advance(5)  # 111 s: 55 %, 5 s after it: a line (a tenth reached since the last)
        p.advance(5)  # 112 s: 60 %, 1 s after it: none
    assert [LINE.match(s)[1] for s in lines(caplog)[1:]] == ["30", "55"]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: 0.0)  # no time passes
    caplog.clear()
    with ProgressReport("encoding", 100, unit="images") as p:
        for _ in range(10):
            p.advance(10)
    assert lines(caplog) == ["encoding ..."]


def test_an_empty_total_counts_as_one_item(caplog, no_terminal):
    caplog.set_level(logging.INFO, logger="vaelab.metrics")
    report = ProgressReport("encoding", 0, unit="images")
    assert report.total == 1
    with report as p:
        p.advance(0)
    assert lines(caplog) == ["encoding ..."]


def test_on_a_terminal_a_bar_counts_and_nothing_is_logged(caplog, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    caplog.set_level(logging.INFO, logger="vaelab.metrics")
    started, stopped = [], []
    real = progress_module.Progress

    class Watched(real):
        def start(self):
            started.append(self)
            super().start()

        def stop(self):
            stopped.append(self)
            super().stop()

    monkeypatch.setattr(progress_module, "Progress", Watched)
    with ProgressReport("encoding", 300, unit="images") as p:
        p.advance(100)
        p.advance(200)
        (task,) = started[0].tasks
        assert (task.description, task.total, task.completed) == ("encoding", 300, 300)
        assert not stopped
    assert stopped == started and len(started) == 1
    columns = started[0].columns
    assert [type(c).__name__ for c in columns] == [
        "TextColumn", "BarColumn", "MofNCompleteColumn", "TimeRemainingColumn",
    ]  # fmt: skip
    assert columns[0].text_format == "{task.description}"
    assert started[0].live.transient  # the bar disappears once done
    assert lines(caplog) == []
