"""Small models and data for the figure tests: an MLP VAE / AE on 8x8 images, an encoder
whose latents carry known amounts of information, and a 32-image ground-truth source."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from vaelab.data import ImageDataModule
from vaelab.data.base import GroundTruthSource
from vaelab.module import VAEModule
from vaelab.nets import MLPDecoder, MLPEncoder
from vaelab.objectives import Autoencoder, BetaVAE
from vaelab.schedules import Constant
from vaelab.viz import common, compare, grids, heatmaps, interpolation, scatter, traversal

SHAPE = (1, 8, 8)


class Bars(GroundTruthSource):
    """8x8 images of one vertical bar: factor ``x`` (column 0..7) and ``height`` (1..4 rows
    from the bottom, two pixels each)."""

    name = "bars"
    binary = True
    factor_names = ("x", "height")
    factor_sizes = (8, 4)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return SHAPE

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        indices = np.arange(len(self)) if indices is None else np.asarray(indices)
        out = torch.zeros(len(indices), *SHAPE, dtype=torch.uint8)
        for n, (x, h) in enumerate(self.factors_of(indices)):
            out[n, 0, 8 - 2 * (h + 1) :, x] = 255
        return out


class ScaledEncoder(nn.Module):
    """mu = scales * (P (x - 0.5)) with a fixed projection P; logvar = 0 (None for an AE).
    The mean KL of dimension j is 0.5 E[mu_j^2] (+0), so it grows with scales[j]^2."""

    def __init__(self, scales: list[float], variational: bool = True) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(64, len(scales), generator=g) / 8)
        self.register_buffer("scales", torch.tensor(scales))
        self.variational = variational

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        mu = ((x.flatten(1) - 0.5) @ self.proj) * self.scales
        return mu, torch.zeros_like(mu) if self.variational else None


def make_module(
    latent_dim: int = 3, variational: bool = True, encoder: nn.Module | None = None
) -> VAEModule:
    """A VAE (or AE) with small MLP nets on 8x8 images."""
    torch.manual_seed(0)
    return VAEModule(
        encoder=encoder or MLPEncoder(SHAPE, 32, latent_dim, variational=variational),
        decoder=MLPDecoder(SHAPE, 32, latent_dim),
        objective=BetaVAE() if variational else Autoencoder(),
        beta_schedule=Constant(1.0),
        optimizer=partial(torch.optim.Adam, lr=1e-2),
        latent_dim=latent_dim,
    )


def bars_datamodule() -> ImageDataModule:
    dm = ImageDataModule(
        Bars(),
        batch_size=8,
        eval_batch_size=16,
        image_size=8,
        val_fraction=0.25,
        test_fraction=0.25,
    )
    dm.setup()
    return dm


@pytest.fixture
def bars() -> ImageDataModule:
    return bars_datamodule()


@pytest.fixture
def figures(monkeypatch) -> dict:
    """Every matplotlib figure saved by vaelab.viz, by file name, kept for inspection."""
    kept: dict = {}
    original = common.save_figure

    def keep(fig, path):
        saved = original(fig, path)
        kept[saved.name] = fig
        return saved

    for module in (grids, traversal, interpolation, scatter, heatmaps, compare):
        monkeypatch.setattr(module, "save_figure", keep)
    return kept
