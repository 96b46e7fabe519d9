"""Latent traversals: each dimension of a base image's code varied over a range, the others
held, decoded to mean images; as a PNG grid (rows = dimensions by decreasing KL, columns =
steps) and as an animated GIF whose frame t shows every dimension at step t.

Ranges: ``fixed`` = linspace(lo, hi); ``quantiles`` = Φ⁻¹ of linspace(q, 1 - q) of N(0, 1);
``fitted`` = mean_j ± k · std_j of the codes of a batch, per dimension; ``auto`` = fixed for
a variational model, fitted for an AE (whose codes follow no prior). A quantized latent
(QLAE, Tripod) steps through its codebook instead: column k shows each dimension's k-th value.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from vaelab.viz.common import evaluating, save_figure
from vaelab.viz.grids import PAD, show_grid, to_grid
from vaelab.viz.settings import TRAVERSAL_RANGES as RANGES

GIF_MIN_SIDE = 48  # each image of a GIF frame is scaled up (nearest) to at least this side


def traversal_values(
    mu: torch.Tensor,
    steps: int,
    kind: str = "fixed",
    limits: tuple[float, float] = (-2.5, 2.5),
    quantile: float = 0.05,
    spread: float = 2.0,
    variational: bool = True,
    codebook: torch.Tensor | None = None,
) -> torch.Tensor:
    """The values ``[D, steps]`` each dimension takes; ``mu [N, D]`` are codes of a batch.
    With a ``codebook [D, K]`` (a quantized latent), its sorted values: K steps, whatever the
    range and ``steps`` asked."""
    if codebook is not None:
        return codebook.detach().float().cpu().sort(-1).values
    d = mu.shape[1]
    if kind == "auto":
        kind = "fixed" if variational else "fitted"
    if kind == "fixed":
        return torch.linspace(*limits, steps).repeat(d, 1)
    if kind == "quantiles":
        p = torch.linspace(quantile, 1 - quantile, steps, dtype=torch.float64)
        return torch.distributions.Normal(0.0, 1.0).icdf(p).float().repeat(d, 1)
    if kind == "fitted":
        mean, std = mu.float().mean(0), mu.float().std(0, unbiased=False)
        t = torch.linspace(-spread, spread, steps)
        return mean[:, None] + std[:, None] * t[None, :]
    raise ValueError(f"unknown traversal range {kind!r}; choose one of {RANGES}")


def traverse(
    module, base_codes: torch.Tensor, dims: np.ndarray, values: torch.Tensor
) -> torch.Tensor:
    """Mean images ``[B, len(dims), steps, C, H, W]``: for base code b and dimension dims[r],
    z = base_codes[b] with z[dims[r]] = values[dims[r], s]."""
    b, steps = len(base_codes), values.shape[1]
    dims_t = torch.as_tensor(np.asarray(dims), dtype=torch.long)
    z = base_codes[:, None, None, :].repeat(1, len(dims_t), steps, 1)
    for r, d in enumerate(dims_t):
        z[:, r, :, d] = values[d]
    with evaluating(module):
        images = module.objective.likelihood.mean(module.decode(z.flatten(0, 2).to(module.device)))
    return images.cpu().view(b, len(dims_t), steps, *images.shape[1:])


def save_traversal(
    images: torch.Tensor, dims: np.ndarray, scores: np.ndarray, score_name: str, path: str | Path
) -> Path:
    """A PNG of ``traverse``'s output: one panel per base image, rows labelled with their
    dimension and score (e.g. ``z3  KL 1.25``)."""
    b, rows, steps, _, h, _ = images.shape
    fig, axes = plt.subplots(1, b, figsize=(b * (steps * 0.45 + 0.3) + 1.2, rows * 0.45 + 0.8))
    for i, ax in enumerate(np.atleast_1d(axes)):
        show_grid(ax, images[i].flatten(0, 1), steps, f"base image {i}")
        if i == 0:
            for r, d in enumerate(dims):
                y = PAD + r * (h + PAD) + h / 2
                ax.text(
                    -2,
                    y,
                    f"z{d}  {score_name} {scores[d]:.2f}",
                    ha="right",
                    va="center",
                    fontsize=7,
                )
    fig.tight_layout()
    return save_figure(fig, path)


def gif_frames(images: torch.Tensor) -> list[Image.Image]:
    """One RGB frame per step: base images in rows, dimensions in columns, and a bar along
    the bottom that grows with the step (so no two frames are alike)."""
    _, rows, steps, _, h, w = images.shape
    scale = max(1, -(-GIF_MIN_SIDE // max(h, w)))
    frames = []
    for s in range(steps):
        grid = (to_grid(images[:, :, s].flatten(0, 1), rows) * 255).round().byte()
        bar = torch.zeros(3, 3, grid.shape[2], dtype=torch.uint8)
        bar[:, :, : round(grid.shape[2] * (s + 1) / steps)] = 255
        array = torch.cat([grid, bar], 1).permute(1, 2, 0).numpy()
        frame = Image.fromarray(np.ascontiguousarray(array))
        frames.append(frame.resize((frame.width * scale, frame.height * scale), Image.NEAREST))
    return frames


def save_traversal_gif(images: torch.Tensor, path: str | Path, frame_ms: int = 150) -> Path:
    """An animated, looping GIF of ``traverse``'s output with one frame per step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first, *rest = gif_frames(images)
    first.save(path, save_all=True, append_images=rest, duration=frame_ms, loop=0)
    return path
