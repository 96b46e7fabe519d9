"""Schedules for β (and, later, the capacity C): a callable ``step -> float``."""

from __future__ import annotations


class Constant:
    """value(t) = value for every step t."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, step: int) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"Constant({self.value})"
