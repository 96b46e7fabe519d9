"""Mutual Information Gap (Chen et al. 2018), as in disentanglement_lib.

With each latent discretised into 20 equal-width bins and m[i, j] = I(z_i; v_j) in nats,

    MIG = mean_j (m_(1)j - m_(2)j) / H(v_j),

where m_(1)j >= m_(2)j are the two largest entries of column j.
"""

from __future__ import annotations

import numpy as np

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.codes import sample_codes
from vaelab.metrics.settings import NUM_BINS
from vaelab.metrics.utils import (
    Encode,
    as_rng,
    discrete_entropy,
    discrete_mutual_info,
    discretize,
)


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = NUM_BINS) -> float:
    """MIG of mean codes ``[N, D]`` with factor classes ``[N, K]``."""
    mi = discrete_mutual_info(discretize(codes, num_bins), factors)
    return mig_from_mi(mi, discrete_entropy(factors))


def mig_from_mi(mi: np.ndarray, entropy: np.ndarray) -> float:
    """MIG of an MI matrix ``[D, K]`` and the factors' entropies ``[K]`` (a single latent
    has a gap of its whole MI)."""
    top = np.sort(mi, axis=0)[::-1]
    gap = top[0] - (top[1] if len(top) > 1 else 0.0)
    return float(np.mean(np.divide(gap, entropy, out=np.zeros_like(entropy), where=entropy > 0)))


def mig_score(
    source: GroundTruthSource,
    encode: Encode,
    seed: int | np.random.Generator | None = 0,
    num_train: int = 10_000,
    num_bins: int = NUM_BINS,
) -> float:
    """MIG on the mean codes of ``num_train`` random images of ``source``."""
    codes, factors = sample_codes(source, encode, num_train, as_rng(seed))
    return mig_from_codes(codes, factors, num_bins)
