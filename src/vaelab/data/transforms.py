"""uint8 image transforms applied once when a data set is loaded: resize, pad, binarise.

All take and return uint8 ``[N, C, H, W]`` with values 0..255."""

from __future__ import annotations

import torch
import torch.nn.functional as F

FIT_MODES = ("resize", "pad")


def resize_uint8(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize to ``[N, C, size, size]``: area averaging when shrinking, bilinear otherwise."""
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8)
    mode = "area" if size < images.shape[-1] else "bilinear"
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].float()
        resized = F.interpolate(block, size=(size, size), mode=mode)
        out[start : start + chunk] = resized.round().clamp(0, 255).to(torch.uint8)
    return out


def pad_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Centre the images on a black ``size x size`` canvas (cropping the centre of a side
    longer than ``size``), e.g. MNIST's 28x28 digits to 32x32 without changing pixels."""
    h, w = images.shape[-2:]
    top, left = (size - h) // 2, (size - w) // 2
    out = torch.zeros((len(images), images.shape[1], size, size), dtype=torch.uint8)
    src_rows = slice(max(0, -top), max(0, -top) + min(h, size))
    src_cols = slice(max(0, -left), max(0, -left) + min(w, size))
    dst_rows = slice(max(0, top), max(0, top) + min(h, size))
    dst_cols = slice(max(0, left), max(0, left) + min(w, size))
    out[..., dst_rows, dst_cols] = images[..., src_rows, src_cols]
    return out


def binarize_uint8(images: torch.Tensor) -> torch.Tensor:
    """0 below mid-grey (128), 255 from there up."""
    return (images >= 128).to(torch.uint8).mul_(255)


def fit_uint8(images: torch.Tensor, size: int, mode: str, binarize: bool) -> torch.Tensor:
    """Bring images to ``size x size`` by ``mode`` (``resize`` or ``pad``), then binarise."""
    if images.shape[-2:] != (size, size):
        images = resize_uint8(images, size) if mode == "resize" else pad_uint8(images, size)
    return binarize_uint8(images) if binarize else images
