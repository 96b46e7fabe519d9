"""Capacity-annealed β-VAE (Burgess et al. 2018): loss = recon + γ · |KL − C(t)|.

C(t) rises linearly from 0 to ``c_max`` nats over ``c_steps`` steps and γ is a constant
(``gamma``, disentanglement_lib's name; 1000 in the paper), so the KL is held near the
capacity C instead of pushed to zero. The annealing is C's, not a weight's: the β passed by
the training loop is not used (the config refuses a β schedule or a β other than γ).
"""

from __future__ import annotations

import torch

from vaelab.objectives.base import Objective, Parts, VAEOutput
from vaelab.schedules import Linear


class AnnealedVAE(Objective):
    """recon + γ |KL − C(t)| with C(t) = c_max · min(t / c_steps, 1)."""

    batchable = True

    def __init__(
        self,
        likelihood: str = "bernoulli",
        gamma: float = 1000.0,
        c_max: float = 25.0,
        c_steps: int = 100_000,
    ) -> None:
        super().__init__(likelihood)
        if c_max < 0 or c_steps <= 0 or gamma < 0:
            raise ValueError(
                f"annealed_vae needs gamma >= 0, c_max >= 0 and c_steps > 0, "
                f"got {gamma}, {c_max}, {c_steps}"
            )
        self.gamma = gamma
        self.capacity = Linear(start=0.0, end=c_max, steps=c_steps)

    def regularizer(
        self, out: VAEOutput, parts: Parts, beta: float, step: int
    ) -> tuple[torch.Tensor, Parts]:
        capacity = self.capacity(step)
        penalty = self.gamma * (parts["kl"] - capacity).abs()
        return penalty, {"capacity": parts["kl"].new_tensor(capacity)}
