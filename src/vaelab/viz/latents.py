"""Per-dimension scores of the codes of a batch, and the 2-D coordinates of a latent scatter.

A variational model's dimensions are scored by their average closed-form KL over the batch,

    KL_j = mean_b -0.5 (1 + logvar_bj - mu_bj^2 - exp(logvar_bj))   (nats),

a deterministic AE's (logvar None) by the variance of mu_j across the batch.
"""

from __future__ import annotations

import numpy as np
import torch

from vaelab.objectives.kl import kl_normal
from vaelab.viz.settings import SCATTER_METHODS


def dim_scores(mu: torch.Tensor, logvar: torch.Tensor | None) -> tuple[np.ndarray, str]:
    """``(scores [D], name)``: mean KL per dimension ("KL"), or the variance of mu ("var")."""
    if logvar is None:
        return mu.double().var(0, unbiased=False).numpy(), "var"
    return kl_normal(mu, logvar).double().mean(0).numpy(), "KL"


def order_dims(scores: np.ndarray, max_dims: int | None = None) -> np.ndarray:
    """Dimension indices by decreasing score (ties by index), at most ``max_dims`` of them."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    return order if max_dims is None else order[:max_dims]


def scatter_coordinates(
    mu: torch.Tensor, logvar: torch.Tensor | None, method: str = "kl"
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """``(xy [N, 2], axis names, dims)`` for a scatter of the mean codes.

    ``kl``: the two dimensions with the highest score (``dims`` holds them, highest first);
    ``pca``: mu projected on its two principal axes (``dims`` None). Both keep N(0, I) a
    standard normal in the plane, so the prior's contours can be drawn over either. With a
    single latent dimension the second coordinate is 0.
    """
    codes = mu.double().numpy()
    if method == "kl":
        scores, name = dim_scores(mu, logvar)
        dims = order_dims(scores, 2)
        xy = np.zeros((len(codes), 2))
        xy[:, : len(dims)] = codes[:, dims]
        names = [f"z{d} ({name} {scores[d]:.2f})" for d in dims] + ["0"] * (2 - len(dims))
        return xy, names, dims
    if method == "pca":
        centred = codes - codes.mean(0)
        axes = np.linalg.svd(centred, full_matrices=False)[2][:2]
        xy = np.zeros((len(codes), 2))
        xy[:, : len(axes)] = codes @ axes.T
        return xy, ["PC 1 of mu", "PC 2 of mu"], None
    raise ValueError(f"unknown scatter method {method!r}; choose one of {SCATTER_METHODS}")
