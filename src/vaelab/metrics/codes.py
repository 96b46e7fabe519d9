"""Where the metrics get their codes: the mean code ``mu(x)`` of an image, by image index.

``Codes`` is any ``indices [N] -> codes [N, D]`` (float64) function. Two implement it:

- ``DirectCodes`` renders and encodes the images of each request (the metric functions'
  default when called on their own);
- ``CodeTable`` holds the codes of a set of indices, each image encoded once: the suite
  first gathers every index its metrics will read, encodes the distinct ones (or the whole
  data set in order, when most of it is needed) in large inference-mode batches on the
  model's device, and every metric then reads rows of the table.

Both give the same codes for an encoder that maps each image to one code, so the metric
values are the same on either path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.progress import ProgressReport
from vaelab.metrics.utils import ENCODE_BATCH, Encode, encode_images

log = logging.getLogger(__name__)

Images = Callable[[np.ndarray], torch.Tensor]
"""``indices [N] -> uint8 images [N, C, H, W]`` as the model sees them."""

FULL_PASS_FRACTION = 0.5  # encode the whole data set in order when this much of it is needed
# Images per forward pass by device. On the 2-core CPU the conv encoder runs at ~12,600
# images/s in batches of 64 and ~4,700 in batches of 1,024 (oneDNN picks other kernels).
TABLE_BATCH = {"cpu": 64, "cuda": 4096}


class Codes(Protocol):
    def __call__(self, indices: np.ndarray) -> np.ndarray: ...


class DirectCodes:
    """Codes encoded on request, ``batch_size`` images at a time."""

    def __init__(
        self,
        source: GroundTruthSource,
        encode: Encode,
        batch_size: int = ENCODE_BATCH,
        images: Images | None = None,
    ) -> None:
        self.encode, self.batch_size = encode, batch_size
        self.images = images or source.images

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        chunks = [
            encode_images(self.encode, self.images(indices[start : start + self.batch_size]))
            for start in range(0, len(indices), self.batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, 0))


class CodeTable:
    """Codes ``[M, D]`` of the sorted distinct image indices ``[M]`` (all images when
    ``indices`` is None); reading an index that was not encoded is an error."""

    def __init__(self, codes: np.ndarray, indices: np.ndarray | None = None) -> None:
        self.codes, self.indices = codes, indices

    def __len__(self) -> int:
        return len(self.codes)

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if self.indices is None:
            rows = indices
        else:
            rows = np.searchsorted(self.indices, indices)
            rows = np.minimum(rows, len(self.indices) - 1)
            if not np.array_equal(self.indices[rows], indices):
                raise KeyError("the code table was asked for an image it did not encode")
        return self.codes[rows].astype(np.float64)


def sample_codes(
    source: GroundTruthSource,
    encode: Encode,
    num_points: int,
    rng: np.random.Generator,
    batch_size: int = ENCODE_BATCH,
    images: Images | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` uniformly drawn factor rows ``[N, K]`` and their mean codes ``[N, D]``,
    encoded directly (``images``: as ``DirectCodes``); returns ``(codes, factors)``."""
    factors = source.sample_factors(num_points, rng)
    codes = DirectCodes(source, encode, batch_size, images)(source.index_of(factors))
    return codes, factors


@torch.inference_mode()
def encode_table(
    num_images: int,
    needed: np.ndarray,
    encode: Encode,
    images: Images,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> CodeTable:
    """Encode every distinct index in ``needed`` once: the whole data set (``num_images``)
    in order when more than ``FULL_PASS_FRACTION`` of it is needed, else the sorted
    distinct indices. ``device``: where the float images go (the model's device);
    ``batch_size``: images per forward pass (None: ``TABLE_BATCH`` of the device)."""
    kind = torch.device(device).type if device is not None else "cpu"
    batch_size = batch_size or TABLE_BATCH.get(kind, TABLE_BATCH["cpu"])
    distinct = np.unique(np.asarray(needed, dtype=np.int64))
    whole = len(distinct) > FULL_PASS_FRACTION * num_images
    order = None if whole else distinct
    total = num_images if whole else len(distinct)
    what = f"all {total:,} images" if whole else f"{total:,} distinct images"
    progress = ProgressReport(f"encoding {what}", total, unit="images")
    codes = None
    start = time.perf_counter()
    with progress:
        for lo in range(0, total, batch_size):
            hi = min(lo + batch_size, total)
            chunk = np.arange(lo, hi) if order is None else order[lo:hi]
            x = images(chunk)
            if device is not None:
                x = x.to(device, non_blocking=True)
            out = encode(x.float().div_(255.0))
            mu = out[0] if isinstance(out, tuple | list) else out
            mu = torch.as_tensor(mu).detach().reshape(len(chunk), -1).cpu().numpy()
            if codes is None:  # float32 codes keep their precision; float64 ones stay float64
                codes = np.empty((total, mu.shape[1]), np.result_type(mu.dtype, np.float32))
            codes[lo:hi] = mu
            progress.advance(hi - lo)
    seconds = time.perf_counter() - start
    log.info("encoded %s in %.1f s (%s images/s)", what, seconds, f"{total / seconds:,.0f}")
    return CodeTable(np.zeros((0, 0), np.float32) if codes is None else codes, order)
