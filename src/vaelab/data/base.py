"""What every data set gives the pipeline, and what data with ground-truth factors adds.

An ``ImageSource`` is a fixed, indexable collection of uint8 images ``[N, C, H, W]`` with
values in 0..255; the float image a model sees is ``x = images / 255``.

A ``GroundTruthSource`` also knows the factors of variation that generated each image.
Its images are the full Cartesian product of the factor classes, in row-major order, so
``index = sum_k classes[k] * stride[k]`` with ``stride[k] = prod(sizes[k + 1:])``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

from vaelab.errors import ConfigError


class DataError(ConfigError):
    """A data set cannot be used as configured (missing or corrupt files, wrong shapes).

    A ``ConfigError``, so the entry point reports it in one paragraph with exit status 2."""


class ImageSource(ABC):
    """A fixed set of uint8 images ``[N, C, H, W]`` that can be read by index.

    ``binary``: every pixel is 0 or 255 (then only the Bernoulli likelihood fits).
    ``label_names``: what each column of ``labels()`` means (class, attributes, factors)."""

    name: str = "images"
    binary: bool = False
    # images(indices) is cheap per batch (a memory map, or rendered on demand): a set larger
    # than data.max_memory_gb is then read batch by batch rather than copied to a spill file
    streamed: bool = False
    label_names: Sequence[str] = ()

    @property
    def title(self) -> str:
        """How messages name the data set: its ``name``, or where the user's own data is."""
        return self.name

    @property
    def has_factors(self) -> bool:
        """Whether the images come with ground-truth factors (a ``GroundTruthSource``)."""
        return False

    @property
    @abstractmethod
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""

    @abstractmethod
    def __len__(self) -> int: ...

    def check_available(self) -> None:  # noqa: B027 - nothing to check for in-memory sources
        """Raise ``DataError`` (before any training) when the data cannot be read.

        Sources that read files check here that they exist and look right."""

    @abstractmethod
    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        """uint8 images ``[len(indices), C, H, W]``; all of them when ``indices`` is None."""

    def prepare_streaming(self) -> None:  # noqa: B027 - most sources read batches as they are
        """Called once before a ``streamed`` source is read batch by batch: make those reads
        cheap (e.g. write a cache of what each batch would otherwise compute)."""

    def labels(self, indices: np.ndarray | None = None) -> np.ndarray | None:
        """int64 labels ``[N, L]`` (columns named by ``label_names``), or None without any."""
        return None


class GroundTruthSource(ImageSource):
    """Images indexed by the classes of independent factors of variation."""

    factor_names: Sequence[str]
    factor_sizes: Sequence[int]

    @property
    def has_factors(self) -> bool:
        return True

    @property
    def label_names(self) -> Sequence[str]:  # type: ignore[override]
        return tuple(self.factor_names)

    def labels(self, indices: np.ndarray | None = None) -> np.ndarray:
        """The factor classes ``[N, K]`` of each image."""
        return self.factors_of(np.arange(len(self)) if indices is None else indices)

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes))

    @property
    def strides(self) -> np.ndarray:
        """Row-major strides: ``stride[k] = prod(sizes[k + 1:])``."""
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)

    def index_of(self, classes: np.ndarray) -> np.ndarray:
        """Image index of each row of factor classes ``[N, K] -> [N]``."""
        classes = np.asarray(classes, dtype=np.int64)
        if classes.ndim != 2 or classes.shape[1] != len(self.factor_sizes):
            raise ValueError(
                f"expected factor classes of shape [N, {len(self.factor_sizes)}], "
                f"got {classes.shape}"
            )
        if (classes < 0).any() or (classes >= np.asarray(self.factor_sizes)).any():
            raise ValueError(f"factor classes out of range for sizes {list(self.factor_sizes)}")
        return classes @ self.strides

    def factors_of(self, indices: np.ndarray) -> np.ndarray:
        """Factor classes of each image index ``[N] -> [N, K]``."""
        indices = np.asarray(indices, dtype=np.int64)
        return (indices[:, None] // self.strides[None, :]) % np.asarray(self.factor_sizes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows of factor classes drawn uniformly and independently, ``[n, K]``."""
        return np.stack([rng.integers(0, size, n) for size in self.factor_sizes], axis=1)

    @property
    def binned_factors(self) -> tuple[str, ...]:
        """Factors of real values binned into classes (none, here)."""
        return ()

    @property
    def is_grid(self) -> bool:
        """Whether every combination of the factors' classes has an image (always, here)."""
        return True

    def share_factor(
        self, factors: np.ndarray, fixed: np.ndarray, values: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Rows like ``factors`` ``[N, K]`` whose factor ``fixed[i]`` has class ``values[i]``
        (the column set; ``rng`` is for sources whose rows do not form a grid)."""
        out = np.array(factors, dtype=np.int64, copy=True)
        out[np.arange(len(out)), fixed] = values
        return out

    def images_of(self, classes: np.ndarray) -> torch.Tensor:
        """uint8 images for rows of factor classes ``[N, K] -> [N, C, H, W]``."""
        return self.images(self.index_of(classes))
