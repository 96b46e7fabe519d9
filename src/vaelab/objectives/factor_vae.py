"""FactorVAE (Kim & Mnih 2018): loss = recon + β · KL + γ · TC, with the total correlation
TC = KL(q(z) || Π_d q(z_d)) estimated by a discriminator D that tells samples of q(z) from
samples of Π_d q(z_d) (each dimension permuted independently across the batch):

    TC ≈ E_q(z)[logit_joint(z) − logit_permuted(z)]   (the density-ratio trick).

D is an MLP of 6 layers of 1000 units with leaky ReLU (0.2), trained with Adam (lr 1e-4,
betas (0.5, 0.9)) on detached codes, so its step never changes the encoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vaelab.objectives.base import Objective, Parts, VAEOutput

JOINT, PERMUTED = 0, 1


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each column of ``z [B, D]`` shuffled independently: a sample of Π_d q(z_d)."""
    batch, dims = z.shape
    order = torch.argsort(torch.rand(batch, dims, generator=generator).to(z.device), dim=0)
    return torch.gather(z, 0, order)


def discriminator(latent_dim: int, hidden: int = 1000, layers: int = 6) -> nn.Sequential:
    """MLP latent -> hidden (x layers, leaky ReLU 0.2) -> 2 logits (joint, permuted)."""
    modules: list[nn.Module] = []
    width = latent_dim
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    return nn.Sequential(*modules, nn.Linear(width, 2))


class FactorVAE(Objective):
    """recon + β KL + γ TC, TC from the discriminator; see ``auxiliary_loss`` for D's step."""

    has_auxiliary_network = True

    def __init__(
        self,
        latent_dim: int,
        likelihood: str = "bernoulli",
        gamma: float = 35.0,
        hidden: int = 1000,
        layers: int = 6,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
    ) -> None:
        super().__init__(likelihood)
        if gamma < 0:
            raise ValueError(f"factor_vae needs gamma >= 0, got {gamma}")
        self.gamma, self.lr, self.betas = gamma, lr, tuple(betas)
        self.discriminator = discriminator(latent_dim, hidden, layers)

    def regularizer(
        self, out: VAEOutput, parts: Parts, beta: float, step: int
    ) -> tuple[torch.Tensor, Parts]:
        logits = self.discriminator(out.z.float())
        tc = (logits[:, JOINT] - logits[:, PERMUTED]).mean()
        return beta * parts["kl"] + self.gamma * tc, {"tc": tc}

    def auxiliary_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=self.betas)

    def auxiliary_loss(self, out: VAEOutput) -> tuple[torch.Tensor, Parts]:
        """Cross-entropy of D on detached q(z) samples (label joint) and their permutation."""
        z = out.z.detach().float()
        z_perm = permute_dims(z)
        logits = self.discriminator(torch.cat([z, z_perm]))
        labels = torch.cat([torch.full((len(z),), JOINT), torch.full((len(z),), PERMUTED)])
        labels = labels.to(z.device)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        return loss, {"disc_loss": loss.detach(), "disc_accuracy": accuracy}
