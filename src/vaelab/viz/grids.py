"""Image grids made with torchvision and laid out with matplotlib: reconstructions and samples."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

from vaelab.viz.common import as_float, evaluating, save_figure

PAD = 2  # pixels between the images of a grid


def to_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """A ``[3, H', W']`` float grid in [0, 1] of ``images [N, C, H, W]``, ``nrow`` per row."""
    return make_grid(images.float().cpu().clamp(0, 1), nrow=nrow, padding=PAD, pad_value=0.5)


def show_grid(ax: plt.Axes, images: torch.Tensor, nrow: int, title: str = "") -> torch.Tensor:
    """Draw ``to_grid(images, nrow)`` on ``ax`` without axes; returns the grid."""
    grid = to_grid(images, nrow)
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return grid


def samples(module, n: int, seed: int = 0) -> torch.Tensor:
    """Mean images ``[n, C, H, W]`` decoded from n draws of z ~ N(0, I) (seeded generator)."""
    with evaluating(module):
        return module.sample(n, generator=torch.Generator().manual_seed(seed)).cpu()


def reconstructions(module, images: torch.Tensor) -> torch.Tensor:
    """Mean reconstructions E[x | z = mu(x)] ``[N, C, H, W]`` of uint8 or float images."""
    with evaluating(module):
        return module.reconstruct(as_float(images, module.device)).cpu()


def sample_title(module) -> str:
    if getattr(module, "codebook", lambda: None)() is not None:
        return "samples: decodes of z_j uniform over latent j's codebook"
    kind = "z ~ N(0, I)" if module.objective.variational else "z ~ N(0, I) (an AE has no prior)"
    return f"samples: decodes of {kind}"


def save_reconstructions(module, images: torch.Tensor, path: str | Path) -> Path:
    """One PNG: a row of inputs over a row of their mean reconstructions."""
    x = as_float(images)
    n = len(x)
    width = max(6.0, n * 0.6)
    fig, ax = plt.subplots(figsize=(width, width * 2 / n + 0.6))
    show_grid(ax, torch.cat([x, reconstructions(module, x)]), n, "inputs (top), reconstructions")
    fig.tight_layout()
    return save_figure(fig, path)


def save_samples(module, path: str | Path, n: int = 32, seed: int = 0) -> Path:
    """One PNG: decodes of ``n`` draws of z ~ N(0, I), 8 per row."""
    nrow = min(8, n)
    rows = -(-n // nrow)
    fig, ax = plt.subplots(figsize=(nrow * 0.8 + 0.4, rows * 0.8 + 0.6))
    show_grid(ax, samples(module, n, seed), nrow, sample_title(module))
    fig.tight_layout()
    return save_figure(fig, path)


def save_reconstructions_and_samples(
    module, images: torch.Tensor, path: str | Path, n_samples: int = 32, seed: int = 0
) -> Path:
    """One PNG: inputs over their mean reconstructions, and decodes of z ~ N(0, I).

    ``images`` are uint8 ``[N, C, H, W]``; a row of N inputs sits above their reconstructions.
    """
    x = as_float(images)
    n = len(x)
    width = max(6.0, n * 0.6)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(width, width * 4 / n + 1.0), gridspec_kw={"height_ratios": [2, 2]}
    )
    recon = reconstructions(module, x)
    show_grid(
        top, torch.cat([x, recon]), n, "reconstructions: inputs (top row), outputs (bottom row)"
    )
    show_grid(
        bottom, samples(module, n_samples, seed), max(1, n_samples // 2), sample_title(module)
    )
    fig.tight_layout()
    return save_figure(fig, path)
