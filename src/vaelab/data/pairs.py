"""Pairs of images that share all but a few factors: the weak supervision of Ada-GVAE.

Locatello et al. (ICML 2020), "Weakly-Supervised Disentanglement Without Compromises", as
disentanglement_lib draws them (``methods/weak/train_weak_lib.py``, ``simple_dynamics``):
for each pair, with K the number of factors that vary (more than one class),

    k_obs = k                      when k >= 1,
    k_obs ~ Uniform{1, ..., K - 1} when k = -1 (the paper's setting: k random per pair),
    n     = 1 or k_obs, each with probability 1/2   (``random_state.choice([1, k_obs])``),

and n factors, chosen uniformly without replacement, are given new classes. So
P(n = 1) = 1/2 + 1/(2(K - 1)) and P(n = j) = 1/(2(K - 1)) for j = 2, ..., K - 1 when k = -1.

One difference, stated: disentanglement_lib redraws a chosen factor uniformly over all its
classes, so it keeps its class with probability 1/size; here the new class is uniform over
the *other* classes, so the second image shares exactly K - n factors with the first.

The first image of a pair is the training image of the usual data order; its partner is
read from the whole source (it may be a validation or test image, as in the reference,
which draws both from all images). Sources whose factor combinations do not form a grid
redraw the new classes of a pair whose combination has no image (``MAX_REDRAWS`` times);
a pair that still has none keeps the first image twice (n = 0).

The random numbers of a batch come from ``(seed, epoch, batch)`` alone, drawn for the
global batch (each DDP rank takes its slice), so a resumed run sees the same pairs (and, on
grid sources, any number of ranks sees those of one process; a non-grid source's redraws
are drawn per rank).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from vaelab.data.base import DataError, GroundTruthSource, ImageSource
from vaelab.data.loader import BatchKey, IndexedImages

PAIR_STREAM = 0x9A1C  # a third word in the seed: the pair draws never repeat the data order's
MAX_REDRAWS = 20


def varying_factors(sizes: np.ndarray) -> np.ndarray:
    """Which factors have more than one class (only those can change)."""
    return np.asarray(sizes) > 1


def check_pair_k(k: int, source: ImageSource) -> None:
    """``DataError`` unless ``source`` has factors and ``k`` is -1 or 1..K."""
    if not source.has_factors:
        raise DataError(
            f"data.pairs=true (model ada_gvae) trains on pairs of images that share all but a "
            f"few ground-truth factors, but {source.title} has no factors of variation; choose "
            f"a data set with factors (dsprites, shapes3d, mpi3d, cars3d, smallnorb, factors)."
        )
    n_varying = int(varying_factors(source.factor_sizes).sum())
    if n_varying < 2:
        raise DataError(
            f"{source.title} has {n_varying} factor{'s' if n_varying != 1 else ''} with more "
            f"than one class; pairs that share some factors and differ in others need at least 2."
        )
    if k != -1 and not 1 <= k <= n_varying:
        raise DataError(
            f"data.pair_k must be -1 (a random number of changed factors per pair) or "
            f"between 1 and the {n_varying} factors of {source.title} that vary, got {k}."
        )


def draw_changes(
    n_pairs: int, sizes: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(changed [n, K] bool, shift [n, K])``: which factors change in each pair and by
    how many classes (1..size - 1, uniform), as the module docstring states."""
    sizes = np.asarray(sizes, dtype=np.int64)
    varying = varying_factors(sizes)
    n_varying = int(varying.sum())
    k_obs = rng.integers(1, max(n_varying - 1, 1) + 1, n_pairs) if k == -1 else np.full(n_pairs, k)
    n_changed = np.where(rng.random(n_pairs) < 0.5, 1, k_obs)
    keys = rng.random((n_pairs, len(sizes)))
    keys[:, ~varying] = np.inf
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    changed = rank < n_changed[:, None]
    return changed, draw_shift(n_pairs, sizes, rng)


def draw_shift(n_pairs: int, sizes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform in 1..size - 1 for each factor (1 for a factor of one class, never changed)."""
    spread = np.maximum(np.asarray(sizes) - 1, 1)
    return 1 + (rng.random((n_pairs, len(sizes))) * spread).astype(np.int64)


def partner_factors(
    factors: np.ndarray,
    changed: np.ndarray,
    shift: np.ndarray,
    sizes: np.ndarray,
    rng: np.random.Generator | None = None,
    exists: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Factors ``[n, K]`` of the second images: ``factors`` with the ``changed`` ones moved
    ``shift`` classes on (mod size). ``exists(rows) -> bool [n]`` (non-grid sources) says
    which rows have an image; the others get new shifts from ``rng``, and after
    ``MAX_REDRAWS`` keep ``factors`` unchanged."""
    factors = np.asarray(factors, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    out = np.where(changed, (factors + shift) % sizes, factors)
    if exists is None:
        return out
    assert rng is not None, "redraws need a generator"
    for _ in range(MAX_REDRAWS):
        missing = np.flatnonzero(~exists(out))
        if len(missing) == 0:
            return out
        moved = (factors[missing] + draw_shift(len(missing), sizes, rng)) % sizes
        out[missing] = np.where(changed[missing], moved, factors[missing])
    missing = ~exists(out)
    out[missing] = factors[missing]
    return out


class PairedImages(Dataset):
    """``dataset[(key, positions)] -> uint8 [B, 2, C, H, W]``: the training images at
    ``positions`` and their partners.

    ``first``: the training images; ``source_indices``: their indices in ``source``;
    ``read``: uint8 images of source indices as the model sees them (fitted)."""

    def __init__(
        self,
        first: IndexedImages,
        source_indices: np.ndarray,
        source: GroundTruthSource,
        read: Callable[[np.ndarray], torch.Tensor],
        k: int,
        seed: int,
    ) -> None:
        self.first, self.source_indices, self.source = first, np.asarray(source_indices), source
        self.read, self.k, self.seed = read, k, seed
        self.sizes = np.asarray(source.factor_sizes, dtype=np.int64)
        self._known: np.ndarray | None = None
        if not source.is_grid:
            every = source.factors_of(np.arange(len(source)))
            self._known = np.unique(every @ source.strides)

    def __len__(self) -> int:
        return len(self.first)

    def _exists(self, rows: np.ndarray) -> np.ndarray:
        assert self._known is not None
        return np.isin(rows @ self.source.strides, self._known)

    def partners(self, key: BatchKey, positions: np.ndarray) -> np.ndarray:
        """Source indices of the partners of the training images at ``positions``."""
        rng = np.random.default_rng([self.seed, PAIR_STREAM, key.epoch, key.batch])
        changed, shift = draw_changes(key.batch_size, self.sizes, self.k, rng)
        mine = slice(key.offset, key.offset + len(positions))
        factors = self.source.factors_of(self.source_indices[positions])
        exists = None if self._known is None else self._exists
        second = partner_factors(factors, changed[mine], shift[mine], self.sizes, rng, exists)
        return self.source.index_of(second)

    def __getitem__(self, item: tuple[BatchKey, np.ndarray]) -> torch.Tensor:
        key, positions = item
        first = self.first[positions]
        second = self.read(self.partners(key, np.asarray(positions)))
        return torch.stack([first, second.to(first.device)], dim=1)
