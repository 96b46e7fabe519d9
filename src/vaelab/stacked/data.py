"""The data of a stack: each member's own splits and batch order (by its seed), the images
loaded once when every member uses the same ones. A training batch is ``[K, B, C, H, W]``:
member k's batch ``i`` of the epoch, exactly the batch its single run would see."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vaelab.data import ImageDataModule
from vaelab.data.loader import ShuffledBatches


class StackedImages(Dataset):
    """``dataset[(i_1, ..., i_K)] -> stack(images_k[i_k])``: one batch per member (of images,
    or of pairs)."""

    def __init__(self, members: Sequence[Dataset]) -> None:
        self.members = list(members)

    def __len__(self) -> int:
        return len(self.members[0])

    def __getitem__(self, indices: Sequence[Any]) -> torch.Tensor:
        return torch.stack([m[i] for m, i in zip(self.members, indices, strict=True)])


class StackedBatches(Sampler):
    """The members' ``ShuffledBatches`` walked together: batch i of every member at once.
    The epoch and the place in it are shared, so a stack resumes like one run."""

    def __init__(self, members: Sequence[ShuffledBatches]) -> None:
        self.members = list(members)
        if len({len(m) for m in self.members}) != 1:
            raise ValueError("the members of a stack need the same number of batches an epoch")

    @property
    def epoch(self) -> int:
        return self.members[0].epoch

    def set_epoch(self, epoch: int) -> None:
        for m in self.members:
            m.set_epoch(epoch)

    def resume_at(self, epoch: int, batches_done: int) -> None:
        for m in self.members:
            m.resume_at(epoch, batches_done)

    def start_batch(self) -> int:
        return self.members[0].start_batch()

    def __len__(self) -> int:
        return len(self.members[0])

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        return zip(*self.members, strict=True)


class StackedData(L.LightningDataModule):
    """Wraps the members' ``ImageDataModule``s (built from their own configs)."""

    def __init__(self, members: Sequence[ImageDataModule]) -> None:
        super().__init__()
        self.members = list(members)

    def setup(self, stage: str | None = None) -> None:
        """Load the images once for the members that use the same ones (the stack's members
        share their data config but the seed, so only a seeded subset can differ)."""
        loaded: list[ImageDataModule] = []
        for member in self.members:
            if member.images is None and not any(member.share_images(o) for o in loaded):
                member.setup(stage)
                loaded.append(member)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        parts = [m.split_batches(split, batch_size, shuffle) for m in self.members]
        images = StackedImages([p[0] for p in parts])
        return self.members[0].loader(images, StackedBatches([p[1] for p in parts]), shuffle)

    def train_dataloader(self) -> DataLoader:
        parts = [m.training_set() for m in self.members]  # single images, or pairs
        images = StackedImages([p[0] for p in parts])
        return self.members[0].loader(images, StackedBatches([p[1] for p in parts]), True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.members[0].eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.members[0].eval_batch_size, shuffle=False)
