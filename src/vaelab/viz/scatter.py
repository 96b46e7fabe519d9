"""A 2-D scatter of the mean codes of a batch coloured by a label, with the circles where
N(0, I) has 1, 2 and 3 standard deviations (its density contours)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from vaelab.viz.common import encode_means, save_figure
from vaelab.viz.latents import dim_scores, scatter_coordinates

MAX_LEGEND_CLASSES = 12  # more distinct labels than this get a colour bar instead


def plot_prior_contours(ax: plt.Axes, radii: tuple[float, ...] = (1.0, 2.0, 3.0)) -> None:
    """Dashed circles of radius 1, 2, 3: the contours of the N(0, I) density in the plane."""
    theta = np.linspace(0, 2 * np.pi, 200)
    for r in radii:
        ax.plot(r * np.cos(theta), r * np.sin(theta), "k--", lw=0.8, alpha=0.6)
    ax.plot([], [], "k--", lw=0.8, label="N(0, I): 1, 2, 3 σ")


def plot_scatter(
    ax: plt.Axes,
    xy: np.ndarray,
    labels: np.ndarray | None,
    axis_names: list[str],
    title: str,
    label_name: str = "label",
    prior: bool = True,
) -> None:
    """Points ``xy [N, 2]`` coloured by integer ``labels [N]`` (one colour if None)."""
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.7)
    else:
        classes = np.unique(labels)
        if len(classes) <= MAX_LEGEND_CLASSES:
            cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
            for i, c in enumerate(classes):
                p = xy[labels == c]
                ax.scatter(p[:, 0], p[:, 1], s=6, alpha=0.7, color=cmap(i), label=f"{c}")
        else:
            points = ax.scatter(xy[:, 0], xy[:, 1], c=labels, s=6, alpha=0.7, cmap="viridis")
            plt.colorbar(points, ax=ax, label=label_name)
    if prior:
        plot_prior_contours(ax)
    if (labels is not None and len(np.unique(labels)) <= MAX_LEGEND_CLASSES) or prior:
        ax.legend(
            fontsize=6,
            markerscale=2,
            title=label_name if labels is not None else None,
            title_fontsize=7,
            loc="upper right",
        )
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal", adjustable="box")


def save_latent_scatter(
    module,
    images: torch.Tensor,
    path: str | Path,
    labels: np.ndarray | None = None,
    label_name: str = "label",
    method: str = "kl",
) -> tuple[Path, np.ndarray | None]:
    """A PNG of the mean codes of ``images``; returns the path and the dimensions shown
    (the top two by KL, or by variance for an AE; None for ``method="pca"``)."""
    mu, logvar = encode_means(module, images)
    xy, names, dims = scatter_coordinates(mu, logvar, method)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    what = "top-2 dims" if method == "kl" else "PCA"
    plot_scatter(ax, xy, labels, names, f"mean codes ({what}) by {label_name}", label_name)
    fig.tight_layout()
    return save_figure(fig, path), dims


def save_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor | None, path: str | Path) -> Path:
    """A bar chart of ``dim_scores(mu, logvar)`` of a batch's codes: the mean KL of each
    dimension in nats (a dimension near 0 is unused: its posterior is the prior), or for an
    AE (logvar None) the variance of mu."""
    scores, name = dim_scores(mu, logvar)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.3 * len(scores) + 1.5), 3))
    ax.bar(np.arange(len(scores)), scores, color="tab:blue")
    ax.set_xticks(np.arange(len(scores)))
    ax.set_xticklabels([f"z{d}" for d in range(len(scores))], fontsize=7, rotation=90)
    unit = "mean KL (nats)" if name == "KL" else "variance of mu (an AE has no KL)"
    ax.set_ylabel(unit, fontsize=9)
    total = f", total {scores.sum():.1f} nats" if name == "KL" else ""
    ax.set_title(f"{name} per latent dimension ({len(mu)} images{total})", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
