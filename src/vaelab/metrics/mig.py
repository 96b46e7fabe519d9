"""Mutual Information Gap (Chen et al. 2018), as in disentanglement_lib.

With each latent discretised into 20 equal-width bins and m[i, j] = I(z_i; v_j) in nats,

    MIG = mean_j (m_(1)j - m_(2)j) / H(v_j),

where m_(1)j >= m_(2)j are the two largest entries of column j.
"""

from __future__ import annotations

import numpy as np

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.utils import (
    NUM_BINS,
    Encode,
    as_rng,
    discrete_entropy,
    discrete_mutual_info,
    discretize,
    sample_codes,
)


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = NUM_BINS) -> float:
    """MIG of mean codes ``[N, D]`` (D >= 2) with factor classes ``[N, K]``."""
    m = discrete_mutual_info(discretize(codes, num_bins), factors)
    top = np.sort(m, axis=0)[::-1]
    entropy = discrete_entropy(factors)
    gap = np.divide(top[0] - top[1], entropy, out=np.zeros_like(entropy), where=entropy > 0)
    return float(np.mean(gap))


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
