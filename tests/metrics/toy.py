"""A tiny ground-truth source whose images spell out the factor classes, and encoders
with known structure on top of it."""

from __future__ import annotations

import numpy as np
import torch

from vaelab.data.base import GroundTruthSource

STEP = 10  # pixel value per class


class ToySource(GroundTruthSource):
    """Images ``[N, 1, 1, K]``: pixel k is ``STEP * class_k``."""

    name = "toy"
    factor_names = ("a", "b", "c")
    factor_sizes = (4, 5, 6)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 1, len(self.factor_sizes))

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        indices = np.arange(len(self)) if indices is None else np.asarray(indices)
        pixels = self.factors_of(indices) * STEP
        return torch.from_numpy(pixels.astype(np.uint8)).view(len(indices), 1, 1, -1)


def factors_of(x: torch.Tensor) -> torch.Tensor:
    """Factor classes (float) back from float images ``x = images / 255``."""
    return torch.round(x.flatten(1) * 255.0 / STEP)


def identity_encoder(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A perfectly disentangled code: z_k = class_k (standardised-ish), logvar 0."""
    z = factors_of(x) / 2.0
    return z, torch.zeros_like(z)


def mixing_encoder(seed: int = 0):
    """A random rotation of the standardised factors: every latent sees every factor."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = torch.from_numpy(q).float()
    sizes = torch.tensor(ToySource.factor_sizes).float()

    def encode(x: torch.Tensor) -> torch.Tensor:
        v = factors_of(x) / (sizes - 1) - 0.5
        return v @ q.T

    return encode


def noise_encoder(dim: int = 3, seed: int = 0):
    """Codes independent of the image."""
    gen = torch.Generator().manual_seed(seed)

    def encode(x: torch.Tensor) -> torch.Tensor:
        return torch.randn(len(x), dim, generator=gen)

    return encode


def duplicate_encoder(x: torch.Tensor) -> torch.Tensor:
    """Factor a in two noisy copies (each alone imperfect), b and c in one latent each."""
    v = factors_of(x)
    noise = 0.3 * torch.randn(len(v), 2)
    return torch.stack([v[:, 0] + noise[:, 0], v[:, 0] + noise[:, 1], v[:, 1], v[:, 2]], 1)
