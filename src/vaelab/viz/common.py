"""Helpers every figure uses: evaluation mode without gradients, uint8 -> float images, the
mean codes of a batch, and saving a matplotlib figure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn

DPI = 100


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """``module.eval()`` and ``torch.no_grad()`` inside; the training mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def as_float(images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """x = images / 255 for uint8 images (float images pass through), on ``device``."""
    x = images.to(device)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def encode_means(module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(mu, logvar)`` of q(z|x) for uint8 or float images, on the CPU (logvar None for an AE)."""
    with evaluating(module):
        mu, logvar = module.encode(as_float(images, module.device))
    return mu.float().cpu(), None if logvar is None else logvar.float().cpu()


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (folders made as needed) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
