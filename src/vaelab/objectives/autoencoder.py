"""Deterministic autoencoder: loss = recon, z = mu, no KL and no prior to sample from."""

from __future__ import annotations

import torch

from vaelab.objectives.base import Objective, Parts, VAEOutput


class Autoencoder(Objective):
    """loss = -log p(x|z): BCE summed over pixels (Bernoulli) or MSE / 2 + const (Gaussian)."""

    batchable = True

    variational = False

    def forward(
        self,
        x: torch.Tensor,
        out: VAEOutput,
        beta: float,
        step: int = 0,
        whole_batch: VAEOutput | None = None,
    ) -> Parts:
        """Reconstruction only; β (and the rest of the batch) have no effect."""
        recon = self.likelihood.nll(x, out.logits).mean()
        zero = recon.new_zeros(())
        return {"loss": recon, "recon": recon, "kl": zero, "kl_per_dim": out.mu.new_zeros(0)}
