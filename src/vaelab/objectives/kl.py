"""Closed-form KL divergence of a diagonal Gaussian posterior to the standard normal prior."""

from __future__ import annotations

import torch


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per example and dimension, ``[B, D]``, in nats.

    KL_j = -0.5 * (1 + logvar_j - mu_j^2 - exp(logvar_j)); computed in float32.
    """
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())
