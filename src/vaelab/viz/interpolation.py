"""Interpolations between the mean codes of two images, decoded to mean images.

linear: z(t) = (1 - t) a + t b;  slerp: z(t) = sin((1 - t) ω) / sin ω · a + sin(t ω) / sin ω · b
with cos ω = a·b / (|a| |b|) (linear where ω is near 0); t = 0 .. 1 in ``steps`` steps.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from vaelab.viz.common import as_float, encode_means, evaluating, save_figure
from vaelab.viz.grids import show_grid
from vaelab.viz.settings import INTERPOLATION_METHODS as METHODS


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points ``[T, D]`` on the segment from ``a [D]`` to ``b [D]`` at fractions ``t [T]``."""
    return (1 - t)[:, None] * a + t[:, None] * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points ``[T, D]`` on the great-circle path from ``a`` to ``b`` (radii interpolated by
    the same weights), falling back to ``lerp`` for (anti)parallel or zero vectors."""
    a64, b64, t64 = a.double(), b.double(), t.double()
    cos = torch.dot(a64, b64) / (a64.norm() * b64.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega < 1e-6 or torch.pi - omega < 1e-6:
        return lerp(a, b, t)
    wa = torch.sin((1 - t64) * omega) / torch.sin(omega)
    wb = torch.sin(t64 * omega) / torch.sin(omega)
    return (wa[:, None] * a64 + wb[:, None] * b64).to(a.dtype)


def interpolate(
    module, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 10, method: str = "linear"
) -> torch.Tensor:
    """Mean images ``[steps, C, H, W]`` along the path from mu(x_a) to mu(x_b)."""
    if method not in METHODS:
        raise ValueError(f"unknown interpolation {method!r}; choose one of {METHODS}")
    mu, _ = encode_means(module, torch.stack([as_float(x_a), as_float(x_b)]))
    path = (lerp if method == "linear" else slerp)(mu[0], mu[1], torch.linspace(0, 1, steps))
    with evaluating(module):
        return module.objective.likelihood.mean(module.decode(path.to(module.device))).cpu()


def save_interpolations(
    module, images: torch.Tensor, path: str | Path, steps: int = 10, method: str = "linear"
) -> Path:
    """A PNG with one row per pair (images 2i, 2i + 1): image a, the path, image b."""
    x = as_float(images)
    pairs = len(x) // 2
    if pairs < 1:
        raise ValueError("interpolations need at least two images")
    rows = [
        torch.cat(
            [
                x[2 * i, None],
                interpolate(module, x[2 * i], x[2 * i + 1], steps, method),
                x[2 * i + 1, None],
            ]
        )
        for i in range(pairs)
    ]
    fig, ax = plt.subplots(figsize=((steps + 2) * 0.6 + 0.4, pairs * 0.6 + 0.7))
    title = f"{method} interpolation of the mean codes: image a, {steps} steps, image b"
    show_grid(ax, torch.cat(rows), steps + 2, title)
    fig.tight_layout()
    return save_figure(fig, path)
