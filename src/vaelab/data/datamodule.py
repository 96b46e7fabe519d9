"""One LightningDataModule for every image source: uint8 in memory, seeded splits, batches
by indexing. Images stay uint8 until the module turns each batch into floats (x / 255)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vaelab.data.base import DataError, ImageSource
from vaelab.data.loader import IndexedImages, KeyedBatches, ResumableLoader, ShuffledBatches
from vaelab.data.pairs import PairedImages, check_pair_k
from vaelab.data.storage import StreamedImages, allocate_uint8, is_device, place
from vaelab.data.transforms import FIT_MODES, fit_uint8

__all__ = ["ImageDataModule"]

log = logging.getLogger(__name__)

LOAD_CHUNK_BYTES = 64 << 20  # source images read, resized and binarised this much at a time


def _kind(channels: int) -> str:
    """What ``channels`` per pixel are called: grey, colour, or a count."""
    return {1: "grey", 3: "colour"}.get(channels, f"{channels} values a pixel")


class ImageDataModule(L.LightningDataModule):
    """Splits ``source`` (or a seeded ``subset`` of it) into train / val / test.

    ``subset``: None for all images, an int for that many, a float in (0, 1] for a fraction.
    ``image_size``: the side images are brought to by ``fit`` (``resize`` or ``pad``).
    ``binarize``: threshold at mid-grey to 0 / 255 (then ``likelihood`` must be bernoulli).
    ``device``: ``cuda`` keeps the whole set on the GPU when there is room, else the CPU.
    ``max_memory_gb``: a larger set is memory-mapped from an unnamed file in ``spill_dir``,
    or read batch by batch when the source is ``streamed``.
    ``pairs``: training batches are pairs ``[B, 2, C, H, W]``, the second image sharing all
    but a few factors with the first (``vaelab.data.pairs``; Ada-GVAE sets it); ``pair_k``:
    how many factors change (-1: random per pair). Validation and test stay single images.
    ``source_settings``: the source's settings that a data yaml shows at its top level for
    the command line (``data.path``, ``data.variant``), passed to the source by interpolation.
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
        binarize: bool = False,
        fit: str = "resize",
        device: str = "cpu",
        max_memory_gb: float = 8.0,
        spill_dir: str | Path | None = None,
        seed: int = 0,
        num_workers: int = 0,
        pairs: bool = False,
        pair_k: int = -1,
        **source_settings: object,
    ) -> None:
        super().__init__()
        self.source = source
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.subset, self.val_fraction, self.test_fraction = subset, val_fraction, test_fraction
        self.image_size, self.channels, self.likelihood = image_size, channels, likelihood
        self.binarize, self.fit, self.device = binarize, fit, device
        self.max_memory_gb, self.spill_dir = max_memory_gb, spill_dir
        self.seed, self.num_workers = seed, num_workers
        self.pairs, self.pair_k = pairs, pair_k
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
            return max(1, round(self.subset * n))
        return min(int(self.subset), n)

    def check_available(self) -> None:
        """Raise ``DataError`` when the source is missing or does not fit these settings."""
        self.source.check_available()
        name, channels = self.source.title, self.source.image_shape[0]
        if channels != self.channels:
            raise DataError(
                f"data.channels is {self.channels} but the images of {name} have {channels} "
                f"channel{'s' if channels != 1 else ''} ({_kind(channels)}); set "
                f"data.channels={channels}."
            )
        if (self.binarize or self.source.binary) and self.likelihood != "bernoulli":
            why = "data.binarize=true" if self.binarize else "black and white as published"
            raise DataError(
                f"The images of {name} are binary here ({why}), so "
                f"data.likelihood must be bernoulli, not {self.likelihood}."
            )
        if not is_device(self.device):
            raise DataError(f"data.device must be cpu, cuda or cuda:<index>, got {self.device!r}.")
        if self.fit not in FIT_MODES:
            raise DataError(f"data.fit must be one of {', '.join(FIT_MODES)}, got {self.fit!r}.")
        if self.pairs:
            check_pair_k(self.pair_k, self.source)
        train = self.split_sizes()["train"]
        subset = "null" if self.subset is None else self.subset  # as the config writes it
        if train < self.batch_size:
            more = "raise data.subset or lower data.batch_size"
            if self.subset_size() == len(self.source):  # every image is used already
                more = "lower data.batch_size (or data.val_fraction / data.test_fraction)"
            raise DataError(
                f"the training split has {train} images of {name} (data.subset={subset}, "
                f"val/test fractions {self.val_fraction}/{self.test_fraction}), fewer than one "
                f"batch of data.batch_size={self.batch_size}, so no step could train; {more}."
            )

    def split_sizes(self) -> dict[str, int]:
        """Images in each split: val and test take their fractions (at least 1 each)."""
        used = self.subset_size()
        n_val = max(1, round(self.val_fraction * used))
        n_test = max(1, round(self.test_fraction * used))
        return {"train": max(0, used - n_val - n_test), "val": n_val, "test": n_test}

    def setup(self, stage: str | None = None) -> None:
        """Load the images once; ``split_indices`` hold source indices of each split."""
        if self.images is not None:
            return
        self.check_available()
        chosen, order = self._draw()
        self.images = place(self._load(chosen, whole=len(chosen) == len(self.source)), self.device)
        self._split(chosen, order)

    def share_images(self, loaded: ImageDataModule) -> bool:
        """Use the images ``loaded`` holds when this module would load the same ones (the
        members of a stack: same data, other seeds), and draw only this module's own splits.
        False, with nothing changed, when the images would differ (a seeded subset)."""
        chosen, order = self._draw()
        if loaded.images is None or not np.array_equal(chosen, loaded._chosen):
            return False
        self.images = loaded.images
        self._split(chosen, order)
        return True

    def _draw(self) -> tuple[np.ndarray, np.ndarray]:
        """The seeded draws: source indices used (sorted) and their order for the splits."""
        n, used = len(self.source), self.subset_size()
        rng = np.random.default_rng(self.seed)
        chosen = np.arange(n) if used == n else np.sort(rng.choice(n, used, replace=False))
        return chosen, rng.permutation(used)

    def _split(self, chosen: np.ndarray, order: np.ndarray) -> None:
        self._chosen = chosen
        sizes = self.split_sizes()
        n_val, n_test = sizes["val"], sizes["test"]
        positions = {
            "val": order[:n_val],
            "test": order[n_val : n_val + n_test],
            "train": order[n_val + n_test :],
        }
        self._positions = {k: np.sort(v) for k, v in positions.items()}
        self.split_indices = {k: chosen[v] for k, v in self._positions.items()}

    def _load(self, chosen: np.ndarray, whole: bool) -> torch.Tensor:
        """uint8 ``[len(chosen), C, S, S]``, read and transformed chunk by chunk into one
        preallocated tensor (or memory map): peak memory is the result plus one chunk."""
        c, h, w = self.source.image_shape
        shape = (len(chosen), c, self.image_size, self.image_size)
        same = (h, w) == (self.image_size, self.image_size) and not self.binarize
        fits = math.prod(shape) <= self.max_memory_gb * 2**30
        if whole and same and fits:
            return self.source.images(None)
        if self.source.streamed and not fits:
            log.info(
                "The images of %s take %.1f GiB > data.max_memory_gb=%s: read batch by batch",
                self.source.name, math.prod(shape) / 2**30, self.max_memory_gb,
            )  # fmt: skip
            self.source.prepare_streaming()
            return StreamedImages(self.source, chosen, self._fit, shape[1:])
        out = allocate_uint8(shape, self.max_memory_gb, self.spill_dir)
        chunk = max(1, LOAD_CHUNK_BYTES // (c * h * w))
        for start in range(0, len(chosen), chunk):
            block = self.source.images(chosen[start : start + chunk])
            out[start : start + len(block)] = self._fit(block)
        return out

    def _fit(self, images: torch.Tensor) -> torch.Tensor:
        """Source images brought to ``image_size`` by ``fit`` (and binarised)."""
        return fit_uint8(images, self.image_size, self.fit, self.binarize)

    def split_images(self, split: str, n: int | None = None) -> torch.Tensor:
        """uint8 images of one split on the CPU: all, or ``n`` spread evenly (for figures)."""
        assert self.images is not None, "call setup() first"
        rows = self._positions[split]
        if n is not None and n < len(rows):
            rows = rows[np.linspace(0, len(rows) - 1, n).round().astype(int)]
        return self.images[torch.from_numpy(rows).to(self.images.device)].cpu()

    def source_images(self, indices: np.ndarray) -> torch.Tensor:
        """uint8 images of source indices as the model sees them (fitted like the training
        images): rows of the loaded images when they hold the whole source, else read."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.images is not None and len(self.images) == len(self.source):
            return self.images[torch.from_numpy(indices).to(self.images.device)]
        return self._fit(self.source.images(indices))

    def split_labels(self, split: str) -> np.ndarray | None:
        """The source's labels ``[n, L]`` of one split's images (None when it has none)."""
        return self.source.labels(self.split_indices[split])

    def _shard(self) -> tuple[int, int]:
        """``(rank, world_size)`` of this process in the attached trainer's DDP group."""
        trainer = self.trainer
        return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)

    def split_batches(
        self,
        split: str,
        batch_size: int,
        shuffle: bool,
        batches_class: type[ShuffledBatches] = ShuffledBatches,
    ) -> tuple[IndexedImages, ShuffledBatches]:
        """One split's images and its batches of positions (seeded by ``seed``). Training
        batches are sharded over DDP ranks; every rank evaluates all of val / test, so those
        values are the same as on one device. ``batches_class``: ``KeyedBatches`` for pairs."""
        assert self.images is not None, "call setup() first"
        rows = self._positions[split]
        rank, world_size = self._shard() if shuffle else (0, 1)
        if batch_size % world_size:
            raise DataError(
                f"data.batch_size={batch_size} is the global batch and must be a multiple of "
                f"the {world_size} training processes."
            )
        batches = batches_class(
            len(rows),
            batch_size,
            shuffle,
            self.seed,
            drop_last=shuffle,
            rank=rank,
            world_size=world_size,
        )
        return IndexedImages(self.images, rows), batches

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        images, batches = self.split_batches(split, batch_size, shuffle)
        return self.loader(images, batches, shuffle)

    def loader(self, images: Dataset, batches: Sampler, shuffle: bool) -> DataLoader:
        """A loader of whole batches (``batches`` yields the indices of each): resumable
        mid-epoch for training."""
        assert self.images is not None, "call setup() first"
        on_cpu = self.images.device.type == "cpu"
        loader_class = ResumableLoader if shuffle else DataLoader
        return loader_class(
            images,
            sampler=batches,
            batch_size=None,
            num_workers=self.num_workers if on_cpu else 0,  # workers cannot share GPU memory
            pin_memory=on_cpu and torch.cuda.is_available(),
            # A generator of its own: DataLoader draws a seed from it for every new iterator,
            # which would otherwise move the global random state that training samples ε from.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader(*self.training_set(), shuffle=True)

    def training_set(self) -> tuple[Dataset, ShuffledBatches]:
        """The training images and their batches: single images, or with ``pairs`` the pairs
        ``[B, 2, C, H, W]`` of ``vaelab.data.pairs`` (resumable as ever)."""
        if not self.pairs:
            return self.split_batches("train", self.batch_size, shuffle=True)
        images, batches = self.split_batches("train", self.batch_size, True, KeyedBatches)
        paired = PairedImages(
            images,
            self.split_indices["train"],
            self.source,  # type: ignore[arg-type] - check_available made sure it has factors
            self.source_images,
            self.pair_k,
            self.seed,
        )
        return paired, batches

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)
