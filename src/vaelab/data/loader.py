"""Batches drawn by indexing an in-memory uint8 tensor: one gather per batch, no collate.

A ``DataLoader(IndexedImages(images, rows), sampler=ShuffledBatches(...), batch_size=None)`` hands
each array of indices to ``IndexedImages.__getitem__``, which gathers the batch at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class IndexedImages(Dataset):
    """``dataset[i] -> images[rows[i]]`` for a whole batch of ``i`` in one tensor gather.

    ``rows`` selects a split of ``images`` without copying it; on a GPU the gather runs
    there, so batches never cross PCIe."""

    def __init__(self, images: torch.Tensor, rows: np.ndarray) -> None:
        self.images, self.rows = images, np.asarray(rows, dtype=np.int64)
        # On the CPU, numpy's gather (on a view sharing the tensor's memory) is several times
        # faster than torch's for batches of small uint8 images.
        on_cpu = images.device.type == "cpu"
        self._array = images.numpy() if on_cpu else None
        self._device_rows = None if on_cpu else torch.as_tensor(self.rows, device=images.device)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, indices: list[int] | np.ndarray) -> torch.Tensor:
        if self._array is not None:
            return torch.from_numpy(self._array[self.rows[np.asarray(indices)]])
        positions = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return self.images[self._device_rows[positions]]


class ShuffledBatches(Sampler[np.ndarray]):
    """Index batches over ``range(n)``: a permutation seeded by ``(seed, epoch)`` when
    ``shuffle``, else in order. ``set_epoch`` (called by Lightning) changes the permutation,
    so the data order depends only on the seed and the epoch."""

    def __init__(
        self, n: int, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False
    ) -> None:
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.seed, self.drop_last, self.epoch = seed, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def __iter__(self) -> Iterator[np.ndarray]:
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        for i in range(len(self)):
            yield order[i * self.batch_size : (i + 1) * self.batch_size]
