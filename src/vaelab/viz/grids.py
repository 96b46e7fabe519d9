"""Image grids made with torchvision and laid out with matplotlib."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid


def _show(ax: plt.Axes, images: torch.Tensor, nrow: int, title: str) -> None:
    grid = make_grid(images.float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=0.5)
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")


def save_reconstructions_and_samples(
    module, images: torch.Tensor, path: str | Path, n_samples: int = 32, seed: int = 0
) -> Path:
    """One PNG: inputs over their mean reconstructions, and decodes of z ~ N(0, I).

    ``images`` are uint8 ``[N, C, H, W]``; a row of N inputs sits above their reconstructions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    x = images.to(module.device).float() / 255.0
    recon = module.reconstruct(x)
    samples = module.sample(n_samples, generator=torch.Generator().manual_seed(seed))
    n = len(x)
    width = max(6.0, n * 0.6)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(width, width * 4 / n + 1.0), gridspec_kw={"height_ratios": [2, 2]}
    )
    _show(top, torch.cat([x, recon]), n, "reconstructions: inputs (top row), outputs (bottom row)")
    kind = "z ~ N(0, I)" if module.objective.variational else "z ~ N(0, I) (an AE has no prior)"
    _show(bottom, samples, n_samples // 2, f"samples: decodes of {kind}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
