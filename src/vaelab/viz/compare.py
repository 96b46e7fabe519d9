"""The tutorial's AE-vs-VAE figure: decodes of z ~ N(0, I) from each model side by side,
and each model's mean codes with the N(0, I) contours. An AE's codes need not lie where the
prior puts its mass, so its prior samples are mostly not digits; a VAE's do, and are."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from vaelab.viz.common import encode_means, save_figure
from vaelab.viz.grids import samples, show_grid
from vaelab.viz.latents import scatter_coordinates
from vaelab.viz.scatter import plot_scatter


def ae_vs_vae_figure(
    ae_module,
    vae_module,
    images: torch.Tensor,
    labels: np.ndarray | None,
    path: str | Path,
    n_samples: int = 36,
    seed: int = 0,
    label_name: str = "label",
) -> Path:
    """A 2 x 2 PNG: top, prior samples of the AE and the VAE (same z for both); bottom, the
    mean codes of ``images`` coloured by ``labels`` on each model's top-2 dimensions (by
    variance for the AE, by KL for the VAE) with N(0, I) contours, each framed to show its
    codes and the 3σ circle."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 10), gridspec_kw={"height_ratios": [1, 1.2]})
    nrow = int(np.ceil(np.sqrt(n_samples)))
    coords = []
    for col, (name, module) in enumerate((("AE", ae_module), ("VAE", vae_module))):
        show_grid(
            axes[0, col], samples(module, n_samples, seed), nrow, f"{name}: decodes of z ~ N(0, I)"
        )
        mu, logvar = encode_means(module, images)
        xy, names, _ = scatter_coordinates(mu, logvar, "kl")
        plot_scatter(axes[1, col], xy, labels, names, f"{name}: mean codes", label_name)
        coords.append(xy)
    for ax, xy in zip(axes[1], coords, strict=True):
        shown = np.concatenate([xy, [[-3.2, -3.2], [3.2, 3.2]]])  # the 3σ circle stays in view
        lo, hi = np.percentile(shown, 0.5, axis=0), np.percentile(shown, 99.5, axis=0)
        half = 0.55 * max(hi - lo)
        centre = (hi + lo) / 2
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
    fig.suptitle("AE vs VAE: same networks, same latent size; only the KL term differs")
    fig.tight_layout()
    return save_figure(fig, path)
