"""The shared ELBO step that every objective builds on.

loss = recon + regularizer, by default regularizer = beta * kl, with
recon = E_batch[-log p(x|z)] summed over pixels and kl = E_batch[KL(q(z|x) || p(z))] summed
over latent dimensions, so beta is in the papers' units (nats). Each objective changes
the KL term by overriding ``regularizer`` and logs the parts it computes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from vaelab.objectives.kl import kl_normal
from vaelab.objectives.likelihoods import make_likelihood

Parts = dict[str, torch.Tensor]


@dataclass
class VAEOutput:
    """What one forward pass produces: posterior parameters, the sample, decoder logits.

    With a quantizer (QLAE, Tripod) ``mu`` is the continuous code z_c and ``z`` the
    straight-through quantized code the decoder saw; ``decode`` is the decoder, for objectives
    that probe it at other codes (Tripod's Hessian penalty)."""

    mu: torch.Tensor
    logvar: torch.Tensor | None  # None for a deterministic autoencoder
    z: torch.Tensor
    logits: torch.Tensor
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None


class Objective(nn.Module):
    """recon + beta * KL, with the parts returned for logging.

    ``variational`` says whether the encoder outputs a posterior variance; a deterministic
    objective gets ``logvar = None`` and ``z = mu``. An nn.Module so that objectives with
    networks of their own (FactorVAE's discriminator) are saved and moved with the model.
    """

    variational: bool = True
    has_auxiliary_network: bool = False
    # The regularizer reads statistics of the whole batch (an estimate of q(z), Cov[mu]):
    # under DDP it is given the global batch, gathered with gradients (VAEModule).
    uses_batch_statistics: bool = False
    # The loss draws random numbers from the global stream in training (Tripod's Hessian
    # probes): a stack draws them from each member's own stream.
    draws_in_training: bool = False
    # ``forward`` is tensor arithmetic of its inputs and β alone (no draws, no network of its
    # own, no branch on a tensor's value): a stack whose members have equal settings computes
    # all their losses in one vmapped call (vaelab.stacked.module).
    batchable: bool = False

    def __init__(self, likelihood: str = "bernoulli") -> None:
        super().__init__()
        self.likelihood = make_likelihood(likelihood)
        # A quantized latent (vaelab.objectives.quantize), set by QLAE and Tripod: VAEModule
        # encodes through it, samples its codebooks and trains its parameters.
        self.quantizer: nn.Module | None = None

    def model_parameters(self) -> list[nn.Parameter]:
        """The objective's parameters trained by the main optimizer (a quantizer's codebooks);
        an auxiliary network's are not among them."""
        return [] if self.quantizer is None else list(self.quantizer.parameters())

    def setup(self, dataset_size: int) -> None:
        """Told the number of training images before training (β-TCVAE's estimators use it)."""

    def forward(
        self,
        x: torch.Tensor,
        out: VAEOutput,
        beta: float,
        step: int = 0,
        whole_batch: VAEOutput | None = None,
    ) -> Parts:
        """Loss and its parts, each averaged over the batch; ``kl_per_dim`` is ``[D]``.
        ``whole_batch``: under DDP, the codes of the global batch (every rank's ``out``), which
        the regularizer then reads instead of this rank's slice."""
        recon = self.likelihood.nll(x, out.logits).mean()
        kl_per_dim = kl_normal(out.mu, out.logvar).mean(0)
        parts = {"recon": recon, "kl": kl_per_dim.sum(), "kl_per_dim": kl_per_dim}
        penalty, logs = self.regularizer(whole_batch or out, parts, beta, step)
        return {**parts, **logs, "loss": recon + penalty}

    def regularizer(
        self, out: VAEOutput, parts: Parts, beta: float, step: int
    ) -> tuple[torch.Tensor, Parts]:
        """The term added to the reconstruction, and extra values to log: here beta * KL."""
        return beta * parts["kl"], {}

    def auxiliary_optimizer(self) -> torch.optim.Optimizer | None:
        """An optimizer for the objective's own network, stepped after the VAE's; None here."""
        return None

    def auxiliary_loss(self, out: VAEOutput) -> tuple[torch.Tensor, Parts]:
        """The loss of the objective's own network on detached codes, and values to log."""
        raise NotImplementedError(f"{type(self).__name__} has no network of its own")
