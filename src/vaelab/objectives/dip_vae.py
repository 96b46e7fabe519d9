"""DIP-VAE (Kumar et al. 2018): loss = recon + β · KL + λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)².

Variant I:  C = Cov_batch[mu].
Variant II: C = Cov_batch[mu] + diag(E_batch[σ²])  (the covariance of the aggregate posterior).
By default λ_d = 10 λ_od for I and λ_d = λ_od for II, as in Locatello et al. (2019).
"""

from __future__ import annotations

import torch

from vaelab.objectives.base import Objective, Parts, VAEOutput

VARIANTS = ("i", "ii")


def dip_covariance(mu: torch.Tensor, logvar: torch.Tensor, variant: str) -> torch.Tensor:
    """The matrix C the DIP penalty pushes towards the identity, ``[D, D]``."""
    centred = mu.float() - mu.float().mean(0, keepdim=True)
    cov = centred.T @ centred / len(mu)
    if variant == "ii":
        cov = cov + torch.diag(logvar.float().exp().mean(0))
    return cov


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)²."""
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * off.pow(2).sum() + lambda_d * (diag - 1).pow(2).sum()


class DIPVAE(Objective):
    """β · KL plus the DIP penalty on the covariance of the codes."""

    batchable = True

    uses_batch_statistics = True

    def __init__(
        self,
        likelihood: str = "bernoulli",
        variant: str = "i",
        lambda_od: float = 10.0,
        lambda_d: float | None = None,
    ) -> None:
        super().__init__(likelihood)
        variant = str(variant).lower()
        if variant not in VARIANTS:
            raise ValueError(f"dip_vae variant must be one of {VARIANTS}, got {variant!r}")
        self.variant, self.lambda_od = variant, lambda_od
        self.lambda_d = (
            lambda_d if lambda_d is not None else lambda_od * (10 if variant == "i" else 1)
        )

    def regularizer(
        self, out: VAEOutput, parts: Parts, beta: float, step: int
    ) -> tuple[torch.Tensor, Parts]:
        penalty = dip_penalty(
            dip_covariance(out.mu, out.logvar, self.variant), self.lambda_od, self.lambda_d
        )
        return beta * parts["kl"] + penalty, {"dip_penalty": penalty}
