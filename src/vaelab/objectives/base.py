"""The shared ELBO step that every objective builds on.

loss = recon + regularizer, by default regularizer = beta * kl, with
recon = E_batch[-log p(x|z)] summed over pixels and kl = E_batch[KL(q(z|x) || p(z))] summed
over latent dimensions, so beta is in the papers' units (nats). Subclasses change the KL
term by overriding ``regularizer``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaelab.objectives.kl import kl_normal
from vaelab.objectives.likelihoods import make_likelihood


@dataclass
class VAEOutput:
    """What one forward pass produces: posterior parameters, the sample, decoder logits."""

    mu: torch.Tensor
    logvar: torch.Tensor | None  # None for a deterministic autoencoder
    z: torch.Tensor
    logits: torch.Tensor


class Objective:
    """recon + beta * KL, with the parts returned for logging.

    ``variational`` says whether the encoder outputs a posterior variance; a deterministic
    objective gets ``logvar = None`` and ``z = mu``.
    """

    variational: bool = True

    def __init__(self, likelihood: str = "bernoulli") -> None:
        self.likelihood = make_likelihood(likelihood)

    def __call__(self, x: torch.Tensor, out: VAEOutput, beta: float) -> dict[str, torch.Tensor]:
        """Loss and its parts, each averaged over the batch; ``kl_per_dim`` is ``[D]``."""
        recon = self.likelihood.nll(x, out.logits).mean()
        kl_per_dim = kl_normal(out.mu, out.logvar).mean(0)
        parts = {"recon": recon, "kl": kl_per_dim.sum(), "kl_per_dim": kl_per_dim}
        penalty, logs = self.regularizer(out, parts, beta)
        return {**parts, **logs, "loss": recon + penalty}

    def regularizer(
        self, out: VAEOutput, parts: dict[str, torch.Tensor], beta: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The term added to the reconstruction, and extra values to log: here beta * KL."""
        return beta * parts["kl"], {}
