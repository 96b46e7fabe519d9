"""Batches drawn by indexing an in-memory uint8 tensor: one gather per batch, no collate.

A ``DataLoader(IndexedImages(images, rows), sampler=ShuffledBatches(...), batch_size=None)`` hands
each array of indices to ``IndexedImages.__getitem__``, which gathers the batch at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class IndexedImages(Dataset):
    """``dataset[i] -> images[rows[i]]`` for a whole batch of ``i`` in one tensor gather.

    ``rows`` selects a split of ``images`` without copying it; on a GPU the gather runs
    there, so batches never cross PCIe. ``torch_gather``: gather with torch on the images'
    device (default: on any device but the CPU, where numpy's gather, on a view sharing the
    tensor's memory, is several times faster for batches of small uint8 images)."""

    def __init__(
        self, images: torch.Tensor, rows: np.ndarray, torch_gather: bool | None = None
    ) -> None:
        self.images, self.rows = images, np.asarray(rows, dtype=np.int64)
        if torch_gather is None:
            torch_gather = images.device.type != "cpu"
        self._array = None
        if not torch_gather:  # a StreamedImages reads its rows itself
            self._array = images.numpy() if isinstance(images, torch.Tensor) else images
        self._device_rows = (
            torch.as_tensor(self.rows, device=images.device) if torch_gather else None
        )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, indices: list[int] | np.ndarray) -> torch.Tensor:
        if self._array is not None:
            batch = self._array[self.rows[np.asarray(indices)]]
            return batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch)
        positions = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return self.images[self._device_rows[positions]]


class ShuffledBatches(Sampler[np.ndarray]):
    """Index batches over ``range(n)``: a permutation seeded by ``(seed, epoch)`` when
    ``shuffle``, else in order. ``set_epoch`` (called by Lightning) changes the permutation,
    so the data order depends only on the seed and the epoch.

    Sharded over ``world_size`` ranks (DDP), ``batch_size`` is the global batch: every rank
    walks the same global batches and takes the ``rank``-th of ``world_size`` equal
    contiguous slices of each, so the ranks see disjoint images, the same number of batches,
    and together exactly the batches of one process (``batch_size`` must divide evenly)."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank} of {world_size}")
        if batch_size % world_size:
            raise ValueError(
                f"the global batch size {batch_size} must be a multiple of the number of "
                f"processes {world_size}, so that every process takes an equal share"
            )
        if world_size > 1 and not drop_last:
            raise ValueError("sharded batches need drop_last=True (equal batches on all ranks)")
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.seed, self.drop_last, self.epoch = seed, drop_last, 0
        self.rank, self.world_size = rank, world_size
        self._resume: tuple[int, int] | None = None  # (epoch, batches already done in it)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Make the next pass over ``epoch`` start after its first ``batches_done`` batches."""
        self.epoch, self._resume = epoch, (epoch, batches_done)

    def start_batch(self) -> int:
        """Where the next pass starts: after the batches done before a resume, else 0."""
        resume = self._resume
        return resume[1] if resume is not None and resume[0] == self.epoch else 0

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, positions in self.numbered():
            yield positions

    def numbered(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(i, positions)`` of each batch of the pass: ``i`` its place in the epoch."""
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        start, self._resume = self.start_batch(), None
        share = self.batch_size // self.world_size
        for i in range(start, len(self)):
            first = i * self.batch_size + self.rank * share
            yield i, order[first : first + share]


class BatchKey(NamedTuple):
    """Where a batch is in the training stream: ``epoch``, its place ``batch`` in the epoch,
    and the ``offset`` of this rank's slice in the global batch of ``batch_size``. Draws made
    for a batch from ``(seed, epoch, batch)`` are then the same on resume and on any number
    of DDP ranks (each takes its slice of one draw for the global batch)."""

    epoch: int
    batch: int
    offset: int
    batch_size: int


class KeyedBatches(ShuffledBatches):
    """``ShuffledBatches`` that hand out ``(BatchKey, positions)``: for datasets that draw
    random numbers per batch (``vaelab.data.pairs``)."""

    def __iter__(self) -> Iterator[tuple[BatchKey, np.ndarray]]:  # type: ignore[override]
        offset = self.rank * (self.batch_size // self.world_size)
        for i, positions in self.numbered():
            yield BatchKey(self.epoch, i, offset, self.batch_size), positions


class ResumableLoader(DataLoader):
    """A DataLoader over ``ShuffledBatches`` whose place in the epoch goes into checkpoints
    (Lightning saves any loader with ``state_dict``/``load_state_dict``), so a run resumed
    mid-epoch sees the same batches, in the same order, as one never interrupted.

    Lightning asks for the next batch only after ``on_train_batch_end`` (where checkpoints
    are written) for loaders of known length, so the batches handed out are the batches done;
    tests/test_reliability.py checks this against an uninterrupted run."""

    def __iter__(self) -> Iterator[torch.Tensor]:
        self._handed = self.sampler.start_batch()
        for batch in super().__iter__():
            self._handed += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches_done": getattr(self, "_handed", 0)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.sampler.resume_at(state_dict["epoch"], state_dict["batches_done"])
