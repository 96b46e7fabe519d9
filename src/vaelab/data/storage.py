"""Where a data set's uint8 images live: host memory, a memory-mapped file when they do not
fit ``max_memory_gb``, or GPU memory when ``device`` asks for it and there is room."""

from __future__ import annotations

import logging
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

GPU_HEADROOM_BYTES = 2 << 30  # left free on the GPU for the model and its activations


def allocate_uint8(
    shape: tuple[int, ...], max_memory_gb: float, spill_dir: str | Path | None = None
) -> torch.Tensor:
    """An uninitialised uint8 tensor of ``shape``: in memory when it takes at most
    ``max_memory_gb`` GiB, else backed by an unnamed temporary file in ``spill_dir`` (the
    file has no name on disk, so nothing is left behind when the process ends)."""
    nbytes = math.prod(shape)
    if nbytes <= max_memory_gb * 2**30:
        return torch.empty(shape, dtype=torch.uint8)
    folder = None if spill_dir is None else Path(spill_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    log.info(
        "The images take %.1f GiB > data.max_memory_gb=%s: memory-mapping them in %s",
        nbytes / 2**30,
        max_memory_gb,
        folder or tempfile.gettempdir(),
    )
    with tempfile.TemporaryFile(dir=folder) as handle:
        array = np.memmap(handle, dtype=np.uint8, mode="w+", shape=shape)
    return torch.from_numpy(array)


def is_device(device: str) -> bool:
    """Whether ``device`` names a place ``place`` knows: ``cpu``, ``cuda`` or ``cuda:<i>``."""
    return re.fullmatch(r"cpu|cuda(:\d+)?", str(device)) is not None


def place(images: torch.Tensor, device: str) -> torch.Tensor:
    """``images`` on ``device`` (``cpu`` or ``cuda[:i]``) when possible; a GPU without room
    or without CUDA keeps them on the CPU, with one log line saying why."""
    if not is_device(device):
        raise ValueError(f"data.device must be cpu or cuda[:index], got {device!r}")
    target = torch.device(device)
    if target.type == "cpu":
        return images
    if not torch.cuda.is_available():
        log.warning("data.device=%s but CUDA is not available: images stay in CPU memory", device)
        return images
    free, _ = torch.cuda.mem_get_info(target)
    needed = images.numel() + GPU_HEADROOM_BYTES
    if needed > free:
        log.warning(
            "data.device=%s but the images (%.1f GiB) do not fit the GPU's %.1f GiB free "
            "memory with headroom: images stay in CPU memory",
            device,
            images.numel() / 2**30,
            free / 2**30,
        )
        return images
    return images.to(target)
