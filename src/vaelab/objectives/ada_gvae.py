"""Ada-GVAE and Ada-ML-VAE (Locatello et al., ICML 2020, "Weakly-Supervised Disentanglement
Without Compromises"), as disentanglement_lib's ``methods/weak/weak_vae.py`` computes them.

For a pair (x1, x2) with posteriors q_i = N(mu_i, var_i), per latent dimension j:

    delta_j = var1_j / var2_j + (mu2_j - mu1_j)^2 / var2_j - 1 + logvar2_j - logvar1_j
            = 2 KL(q1_j || q2_j)                               (``compute_kl``: twice the KL)

Two equal-width bins over [min_j delta_j, max_j delta_j] of each pair
(``tf.histogram_fixed_width_bins(delta, [min, max], nbins=2)``):
bin_j = clip(floor(2 * ((delta_j - min) / (max - min))), 0, 1). The dimensions of the
lower bin (bin 0) are taken as shared and get the averaged posterior in both images; those
of the upper bin (from the midpoint (min + max) / 2 on) keep their own. When every delta_j is
equal, (delta - min) / (max - min) is NaN, TF's bin is not 1, and every dimension is averaged.

    GVAE  (``averaging=gvae``): mu = (mu1 + mu2) / 2,  var = (var1 + var2) / 2
    ML-VAE (``averaging=ml``):  var = 2 var1 var2 / (var1 + var2),
                                mu = (mu1 / var1 + mu2 / var2) * var / 2
    (ML-VAE's is the product of the two Gaussians with its variance doubled: precisions
    averaged, mean precision-weighted.)

The mask is a discrete choice: no gradient flows through it. The loss is the mean of the two
images' β-VAE losses, each on its own (averaged where shared) posterior:

    loss = (recon_1 + recon_2) / 2 + β (KL_1 + KL_2) / 2,
    KL_i = E_batch sum_j KL(N(mu'_i, var'_i) || N(0, 1)).

On single images (validation, test) it is the β-VAE's loss, so val/elbo is the usual ELBO.
"""

from __future__ import annotations

import torch

from vaelab.objectives.base import Objective, Parts, VAEOutput

AVERAGINGS = ("gvae", "ml")


def pair_divergence(
    mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor, logvar2: torch.Tensor
) -> torch.Tensor:
    """delta = 2 KL(N(mu1, var1) || N(mu2, var2)) per example and dimension, ``[B, D]``."""
    var1, var2 = logvar1.exp(), logvar2.exp()
    return var1 / var2 + (mu2 - mu1).pow(2) / var2 - 1 + logvar2 - logvar1


def shared_dimensions(divergence: torch.Tensor) -> torch.Tensor:
    """bool ``[B, D]``: the dimensions in the lower of two equal-width bins over each row's
    [min, max] (all of them when the row is constant)."""
    low = divergence.amin(1, keepdim=True)
    high = divergence.amax(1, keepdim=True)
    upper = torch.floor(2.0 * ((divergence - low) / (high - low))).clamp(0, 1) == 1
    return ~upper  # a NaN bin (high == low) is not the upper bin, as in TF


def averaged_posterior(
    mu1: torch.Tensor,
    logvar1: torch.Tensor,
    mu2: torch.Tensor,
    logvar2: torch.Tensor,
    averaging: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, logvar)`` of the pair's shared posterior: GVAE's mean or ML-VAE's product."""
    var1, var2 = logvar1.exp(), logvar2.exp()
    if averaging == "gvae":
        return 0.5 * mu1 + 0.5 * mu2, torch.log(0.5 * var1 + 0.5 * var2)
    var = 2 * var1 * var2 / (var1 + var2)
    return (mu1 / var1 + mu2 / var2) * var * 0.5, torch.log(var)


class AdaGVAE(Objective):
    """β-VAE on pairs whose shared posteriors are averaged (adaptive choice of the shared
    dimensions); ``averaging``: ``gvae`` (Ada-GVAE) or ``ml`` (Ada-ML-VAE)."""

    def __init__(self, likelihood: str = "bernoulli", averaging: str = "gvae") -> None:
        super().__init__(likelihood)
        if averaging not in AVERAGINGS:
            raise ValueError(f"averaging must be one of {AVERAGINGS}, got {averaging!r}")
        self.averaging = averaging

    def aggregate(
        self, mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor, logvar2: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Each image's posterior ``(mu, logvar)`` after averaging, and the shared mask."""
        with torch.no_grad():
            shared = shared_dimensions(pair_divergence(mu1, logvar1, mu2, logvar2))
        mu, logvar = averaged_posterior(mu1, logvar1, mu2, logvar2, self.averaging)
        first = (torch.where(shared, mu, mu1), torch.where(shared, logvar, logvar1))
        second = (torch.where(shared, mu, mu2), torch.where(shared, logvar, logvar2))
        return first, second, shared

    def pair_loss(
        self,
        x1: torch.Tensor,
        out1: VAEOutput,
        x2: torch.Tensor,
        out2: VAEOutput,
        beta: float,
        step: int = 0,
    ) -> Parts:
        """Every part (loss, recon, kl, kl_per_dim) as the mean of the two images' parts;
        ``out_i`` holds image i's averaged posterior, its sample and its decoder logits."""
        parts1 = self(x1, out1, beta, step)
        parts2 = self(x2, out2, beta, step)
        return {key: 0.5 * parts1[key] + 0.5 * parts2[key] for key in parts1}
