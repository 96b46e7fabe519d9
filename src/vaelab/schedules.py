"""Schedules for β (and the capacity C of the annealed VAE): a callable ``step -> float``."""

from __future__ import annotations


class Constant:
    """value(t) = value for every step t."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, step: int) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"Constant({self.value})"


class Linear:
    """Warm-up: value(t) = start + (end − start) · min(t / steps, 1)."""

    def __init__(self, end: float, steps: int, start: float = 0.0) -> None:
        if steps <= 0:
            raise ValueError(f"a linear schedule needs steps > 0, got {steps}")
        self.start, self.end, self.steps = float(start), float(end), int(steps)

    def __call__(self, step: int) -> float:
        return self.start + (self.end - self.start) * min(step / self.steps, 1.0)

    def __repr__(self) -> str:
        return f"Linear({self.start} -> {self.end} over {self.steps} steps)"


class Cyclical:
    """Fu et al. (2019): ``cycles`` cycles over ``total_steps``; in each cycle the value rises
    linearly from start to end over the first ``ratio`` of the cycle, then stays at end.

    value(t) = start + (end − start) · min(τ / ratio, 1),  τ = (t mod P) / P,  P = total / cycles.
    """

    def __init__(
        self, end: float, total_steps: int, cycles: int = 4, ratio: float = 0.5, start: float = 0.0
    ) -> None:
        if total_steps <= 0 or cycles < 1 or not 0 < ratio <= 1:
            raise ValueError(
                f"a cyclical schedule needs total_steps > 0, cycles >= 1 and 0 < ratio <= 1, got "
                f"{total_steps}, {cycles}, {ratio}"
            )
        self.start, self.end = float(start), float(end)
        self.period = total_steps / cycles
        self.ratio = float(ratio)

    def __call__(self, step: int) -> float:
        tau = (step % self.period) / self.period
        return self.start + (self.end - self.start) * min(tau / self.ratio, 1.0)

    def __repr__(self) -> str:
        return f"Cyclical({self.start} -> {self.end}, period {self.period}, ratio {self.ratio})"
