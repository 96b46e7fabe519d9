"""Factors given as a table, one row per image, that need not form a full grid.

A ``FactorTable`` turns the values of K named factors of N images into classes: a column of
whole numbers keeps one class per distinct value; a column of other real values is split
into ``bins`` equal-width bins (the empty ones dropped) and listed in ``binned``.

When every combination of classes occurs (``is_grid``; SmallNORB's instances, several images
per combination, still form one), draws are those of the built-in grids: each factor's class
uniform and independent. Otherwise the draws come from the observed images: a row of the
table uniformly, and "the same class of factor k" draws an observed row with that class.
``index_of`` maps a row of classes to an image that has it; when several do, the one taken
depends on the row and its position in the query (a hash), so a draw of many rows spreads
over the images of each combination and the same draw always reads the same images.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np

from vaelab.data.base import GroundTruthSource

MAX_COMBINATIONS = 2**62  # keys of class combinations are int64 mixed-radix numbers


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread uint64 hash of uint64 ``x``."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class FactorTable:
    """Classes ``[N, K]`` of the factors of N images, from values ``[N, K]``."""

    def __init__(self, values: np.ndarray, names: Sequence[str], bins: int = 20) -> None:
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != len(names) or len(values) == 0:
            raise ValueError(f"expected factor values [N, {len(names)}], got {values.shape}")
        if bins < 2:
            raise ValueError(f"need at least 2 bins for continuous factors, got {bins}")
        self.names, self.bins = tuple(names), bins
        self.binned: tuple[str, ...] = ()
        self.classes = np.empty(values.shape, dtype=np.int64)
        for k, name in enumerate(self.names):
            self.classes[:, k] = self._classes_of(values[:, k].astype(np.float64), name)
        self.sizes = tuple(int(c.max()) + 1 for c in self.classes.T)
        if np.prod(np.asarray(self.sizes, dtype=np.float64)) >= MAX_COMBINATIONS:
            raise ValueError(
                f"the factors' classes {list(self.sizes)} have more combinations than a table "
                f"can index; use fewer factors or data.factor_bins"
            )
        sizes = np.asarray(self.sizes, dtype=np.int64)
        self.strides = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)
        keys = self.classes @ self.strides
        self._order = np.argsort(keys, kind="stable")
        self._keys, self._starts, counts = np.unique(
            keys[self._order], return_index=True, return_counts=True
        )
        self._counts = counts
        self.is_grid = len(self._keys) == int(np.prod(sizes))
        # rows sorted by each factor's class, for draws that hold one factor fixed
        self._by_factor = [np.argsort(c, kind="stable") for c in self.classes.T]
        self._factor_starts = [
            np.searchsorted(c[o], np.arange(s + 1)) for c, o, s in
            zip(self.classes.T, self._by_factor, self.sizes, strict=True)
        ]  # fmt: skip

    def _classes_of(self, column: np.ndarray, name: str) -> np.ndarray:
        if not np.isfinite(column).all():
            raise ValueError(f"factor {name!r} has missing or infinite values")
        if (column == np.round(column)).all():
            return np.unique(column, return_inverse=True)[1].reshape(-1)
        self.binned = (*self.binned, name)
        edges = np.linspace(column.min(), column.max(), self.bins + 1)[1:-1]
        return np.unique(np.digitize(column, edges), return_inverse=True)[1].reshape(-1)

    def __len__(self) -> int:
        return len(self.classes)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows of classes: independent uniform classes on a grid, else observed rows."""
        if self.is_grid:
            return np.stack([rng.integers(0, size, n) for size in self.sizes], axis=1)
        return self.classes[rng.integers(0, len(self), n)]

    def share_factor(
        self, factors: np.ndarray, fixed: np.ndarray, values: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Rows like ``factors`` whose factor ``fixed[i]`` has class ``values[i]``: on a grid
        the column is set; otherwise row i is an observed row drawn among those with it."""
        if self.is_grid:
            out = np.array(factors, dtype=np.int64, copy=True)
            out[np.arange(len(out)), fixed] = values
            return out
        fixed, values = np.asarray(fixed), np.asarray(values)
        rows = np.empty(len(fixed), dtype=np.int64)
        for k in range(len(self.sizes)):
            mine = np.flatnonzero(fixed == k)
            starts = self._factor_starts[k][values[mine]]
            counts = self._factor_starts[k][values[mine] + 1] - starts
            if (counts == 0).any():
                raise ValueError(f"factor {self.names[k]!r} has no image of a requested class")
            picks = starts + (rng.random(len(mine)) * counts).astype(np.int64)
            rows[mine] = self._by_factor[k][picks]
        return self.classes[rows]

    def index_of(self, classes: np.ndarray) -> np.ndarray:
        """An image index for each row of classes ``[N, K]``; a combination no image has is
        a ``ValueError``."""
        classes = np.asarray(classes, dtype=np.int64)
        if classes.ndim != 2 or classes.shape[1] != len(self.sizes):
            raise ValueError(f"expected factor classes [N, {len(self.sizes)}], got {classes.shape}")
        if (classes < 0).any() or (classes >= np.asarray(self.sizes)).any():
            raise ValueError(f"factor classes out of range for sizes {list(self.sizes)}")
        keys = classes @ self.strides
        found = np.searchsorted(self._keys, keys).clip(0, len(self._keys) - 1)
        if (self._keys[found] != keys).any():
            missing = classes[np.flatnonzero(self._keys[found] != keys)[0]].tolist()
            raise ValueError(f"no image has the factor classes {missing}")
        counts = self._counts[found]
        position = np.arange(len(keys), dtype=np.uint64)
        member = _mix(keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + position)
        offset = (member % counts.astype(np.uint64)).astype(np.int64)
        return self._order[self._starts[found] + np.where(counts > 1, offset, 0)]


class TableSource(GroundTruthSource):
    """A ``GroundTruthSource`` whose factors come from a ``FactorTable``: subclasses read
    their images and return the table from ``load_table`` (called once, after the files
    were checked)."""

    _table: FactorTable | None = None

    @abstractmethod
    def load_table(self) -> FactorTable:
        """The factor table of the images, row i for image i."""

    @property
    def table(self) -> FactorTable:
        self.check_available()  # which may load the table itself
        if self._table is None:
            self._table = self.load_table()
        return self._table

    @property
    def factor_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.table.names

    @property
    def factor_sizes(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.table.sizes

    @property
    def is_grid(self) -> bool:
        return self.table.is_grid

    @property
    def binned_factors(self) -> tuple[str, ...]:
        return self.table.binned

    def __len__(self) -> int:
        return len(self.table)

    def factors_of(self, indices: np.ndarray) -> np.ndarray:
        return self.table.classes[np.asarray(indices, dtype=np.int64)]

    def index_of(self, classes: np.ndarray) -> np.ndarray:
        return self.table.index_of(classes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.table.sample(n, rng)

    def share_factor(
        self, factors: np.ndarray, fixed: np.ndarray, values: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        return self.table.share_factor(factors, fixed, values, rng)
