"""A β-VAE objective whose loss is NaN on chosen training calls: a poisoned batch for tests."""

from __future__ import annotations

import torch

from vaelab.objectives import BetaVAE


class PoisonedBetaVAE(BetaVAE):
    """BetaVAE, except that training calls number ``poison_calls`` (0-based) give NaN."""

    def __init__(self, poison_calls: list[int], likelihood: str = "bernoulli") -> None:
        super().__init__(likelihood)
        self.poison_calls, self.calls = set(poison_calls), 0

    def forward(self, x, out, beta, step=0, whole_batch=None):
        parts = super().forward(x, out, beta, step, whole_batch)
        if self.training:
            if self.calls in self.poison_calls:
                nan = torch.tensor(float("nan"))
                parts = {**parts, "recon": parts["recon"] * nan, "loss": parts["loss"] * nan}
            self.calls += 1
        return parts
