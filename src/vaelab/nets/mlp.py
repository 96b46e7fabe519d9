"""The MIT 6.S191 tutorial's MLP: x -> 400 -> (mu, logvar) of size 20, and back.

Encoder: h = ReLU(W1 x + b1); mu = W21 h + b21; logvar = W22 h + b22.
Decoder: logits = W4 ReLU(W3 z + b3) + b4.  With 784 inputs: 652,824 parameters.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLPEncoder(nn.Module):
    """Flattens ``[B, C, H, W]`` to ``(mu, logvar)``; ``logvar`` is None when deterministic."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        hidden: int = 400,
        latent_dim: int = 20,
        variational: bool = True,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(math.prod(image_shape), hidden)
        self.fc_mu = nn.Linear(hidden, latent_dim)
        self.fc_logvar = nn.Linear(hidden, latent_dim) if variational else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = torch.relu(self.fc1(x.flatten(1)))
        logvar = self.fc_logvar(h) if self.fc_logvar is not None else None
        return self.fc_mu(h), logvar


class MLPDecoder(nn.Module):
    """Maps ``z [B, D]`` to logits of shape ``[B, C, H, W]``."""

    def __init__(
        self, image_shape: tuple[int, int, int], hidden: int = 400, latent_dim: int = 20
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.fc3 = nn.Linear(latent_dim, hidden)
        self.fc4 = nn.Linear(hidden, math.prod(image_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc4(torch.relu(self.fc3(z))).view(-1, *self.image_shape)
