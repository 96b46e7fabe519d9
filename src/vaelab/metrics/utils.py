"""Shared pieces of the disentanglement metrics (disentanglement_lib's conventions).

Codes are the posterior means ``mu(x)``, shape ``[N, D]`` (one row per image); factors are
integer classes ``[N, K]``. Latents are discretised into 20 equal-width bins over each
latent's own range; mutual information and entropy are in nats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vaelab.metrics.settings import NUM_BINS

Encode = Callable[[torch.Tensor], Any]
"""``x [B, C, H, W] float in [0, 1] -> (mu, logvar)`` or just ``mu`` (tensor or array)."""

ENCODE_BATCH = 2048


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator from a seed (or the Generator itself)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


@torch.no_grad()
def encode_images(encode: Encode, images: torch.Tensor) -> np.ndarray:
    """Mean codes ``[B, D]`` (float64) of uint8 images ``[B, C, H, W]``: mu(images / 255)."""
    out = encode(images.float().div_(255.0))
    mu = out[0] if isinstance(out, tuple | list) else out
    mu = mu.detach().cpu().numpy() if isinstance(mu, torch.Tensor) else np.asarray(mu)
    return mu.astype(np.float64).reshape(len(images), -1)


def discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Bin each latent into ``num_bins`` equal-width bins over its own range ``[min, max]``;
    integer bins ``0..num_bins-1`` (the maximum goes in the last bin), shape ``[N, D]``.
    Same as disentanglement_lib's ``np.digitize(x, np.histogram(x, num_bins)[1][:-1]) - 1``."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], num_bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1]) - 1
    return out


def mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Discrete MI in nats from the joint histogram of two label vectors ``[N]``:
    I(a; b) = sum_ab p(a, b) log(p(a, b) / (p(a) p(b)))."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    nb = int(b.max()) + 1 if len(b) else 1
    joint = np.bincount(a * nb + b, minlength=(int(a.max()) + 1) * nb).reshape(-1, nb)
    p = joint / joint.sum()
    outer = p.sum(1, keepdims=True) * p.sum(0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / outer[nz])))


def discrete_mutual_info(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """MI matrix ``m[i, j] = I(code_i; factor_j)`` in nats, ``[D, K]``, for discrete codes."""
    d, k = codes.shape[1], factors.shape[1]
    return np.array([[mutual_info(codes[:, i], factors[:, j]) for j in range(k)] for i in range(d)])


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Empirical entropy H(factor_j) in nats of each column, ``[K]``."""
    out = []
    for column in np.asarray(factors).T:
        p = np.unique(column, return_counts=True)[1] / len(column)
        out.append(-np.sum(p * np.log(p)))
    return np.array(out)


def standardize(
    train: np.ndarray, test: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x - mean_train) / std_train`` per latent (a constant latent is only centred)."""
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, None if test is None else (test - mean) / std
