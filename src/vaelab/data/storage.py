"""Where a data set's uint8 images live: host memory, a memory-mapped file when they do not
fit ``max_memory_gb``, GPU memory when ``device`` asks for it and there is room, or nowhere:
read from a ``streamed`` source batch by batch (``StreamedImages``)."""

from __future__ import annotations

import logging
import math
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

Fit = Callable[[torch.Tensor], torch.Tensor]

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
    if isinstance(images, StreamedImages):
        log.warning("data.device=%s but the images are read batch by batch: they stay on the "
                    "CPU and each batch is moved", device)  # fmt: skip
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


class StreamedImages:
    """``images[rows] = fit(source.images(chosen[rows]))``: a source's images read when a
    batch asks for them (its memory map, or rendered) instead of copied in whole; indexes
    like a uint8 CPU tensor ``[len(chosen), C, S, S]``."""

    device = torch.device("cpu")

    def __init__(self, source, chosen: np.ndarray, fit: Fit, shape: tuple[int, ...]) -> None:
        self.source, self.chosen, self.fit = source, np.asarray(chosen, dtype=np.int64), fit
        self.shape = (len(self.chosen), *shape)

    def __len__(self) -> int:
        return len(self.chosen)

    def numel(self) -> int:
        return math.prod(self.shape)

    def __getitem__(self, rows: torch.Tensor | np.ndarray) -> torch.Tensor:
        rows = rows.cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows)
        return self.fit(self.source.images(self.chosen[rows]))
