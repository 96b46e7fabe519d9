"""One LightningDataModule for every image source: uint8 in memory, seeded splits, batches
by indexing. Images stay uint8 until the module turns each batch into floats (x / 255)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from vaelab.data.base import ImageSource
from vaelab.data.loader import IndexedImages, ShuffledBatches


def resize_uint8(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 ``[N, C, H, W]`` to ``[N, C, size, size]`` (area/bilinear), in chunks."""
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8)
    mode = "area" if size < images.shape[-1] else "bilinear"
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].float()
        resized = F.interpolate(block, size=(size, size), mode=mode)
        out[start : start + chunk] = resized.round().clamp(0, 255).to(torch.uint8)
    return out


class ImageDataModule(L.LightningDataModule):
    """Splits ``source`` (or a seeded ``subset`` of it) into train / val / test.

    ``subset``: None for all images, an int for that many, a float in (0, 1] for a fraction.
    """

    def __init__(
        self,
        source: ImageSource,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        subset: int | float | None = None,
        val_fraction: float = 0.01,
        test_fraction: float = 0.01,
        image_size: int = 64,
        channels: int = 1,
        likelihood: str = "bernoulli",
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.source = source
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.subset, self.val_fraction, self.test_fraction = subset, val_fraction, test_fraction
        self.image_size, self.channels, self.likelihood = image_size, channels, likelihood
        self.seed, self.num_workers = seed, num_workers
        self.images: torch.Tensor | None = None
        self.split_indices: dict[str, np.ndarray] = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def subset_size(self) -> int:
        """How many images of the source this module uses."""
        n = len(self.source)
        if self.subset is None:
            return n
        if isinstance(self.subset, float):
            return max(1, int(round(self.subset * n)))
        return min(int(self.subset), n)

    def setup(self, stage: str | None = None) -> None:
        """Load the images once; ``split_indices`` hold source indices of each split."""
        if self.images is not None:
            return
        n, used = len(self.source), self.subset_size()
        rng = np.random.default_rng(self.seed)
        chosen = np.arange(n) if used == n else np.sort(rng.choice(n, used, replace=False))
        images = self.source.images(None if used == n else chosen)
        if images.shape[1] != self.channels:
            raise ValueError(
                f"data.channels is {self.channels} but {self.source.name} has "
                f"{images.shape[1]} channels"
            )
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = resize_uint8(images, self.image_size)
        self.images = images
        order = rng.permutation(used)
        n_val = max(1, int(round(self.val_fraction * used)))
        n_test = max(1, int(round(self.test_fraction * used)))
        positions = {
            "val": order[:n_val],
            "test": order[n_val : n_val + n_test],
            "train": order[n_val + n_test :],
        }
        self._positions = {k: np.sort(v) for k, v in positions.items()}
        self.split_indices = {k: chosen[v] for k, v in self._positions.items()}

    def split_images(self, split: str, n: int | None = None) -> torch.Tensor:
        """uint8 images of one split: all, or ``n`` spread evenly over it (for figures)."""
        assert self.images is not None, "call setup() first"
        rows = self._positions[split]
        if n is not None and n < len(rows):
            rows = rows[np.linspace(0, len(rows) - 1, n).round().astype(int)]
        return self.images[torch.from_numpy(rows)]

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        assert self.images is not None, "call setup() first"
        rows = self._positions[split]
        batches = ShuffledBatches(len(rows), batch_size, shuffle, self.seed, drop_last=shuffle)
        return DataLoader(
            IndexedImages(self.images, rows),
            sampler=batches,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)
