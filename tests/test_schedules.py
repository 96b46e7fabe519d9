"""Every schedule's value at chosen steps."""

from __future__ import annotations

import pytest

from vaelab.schedules import Constant, Cyclical, Linear


def test_constant():
    assert [Constant(4)(t) for t in (0, 10, 10**6)] == [4.0, 4.0, 4.0]


def test_linear_warm_up():
    s = Linear(start=0.0, end=4.0, steps=100)
    assert [s(t) for t in (0, 25, 50, 100, 5000)] == [0.0, 1.0, 2.0, 4.0, 4.0]
    assert Linear(end=1.0, steps=10, start=2.0)(5) == pytest.approx(1.5)


def test_cyclical_rises_over_ratio_of_each_cycle_then_holds():
    s = Cyclical(end=1.0, total_steps=400, cycles=4, ratio=0.5)  # period 100, rise over 50
    assert [s(t) for t in (0, 25, 50, 75, 99, 100, 125, 399)] == pytest.approx(
        [0.0, 0.5, 1.0, 1.0, 1.0, 0.0, 0.5, 1.0]
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: Linear(end=1, steps=0),
        lambda: Cyclical(end=1, total_steps=10, ratio=0),
        lambda: Cyclical(end=1, total_steps=-1),
        lambda: Cyclical(end=1, total_steps=10, cycles=0),
    ],
)
def test_bad_schedule_settings_are_errors(make):
    with pytest.raises(ValueError):
        make()
