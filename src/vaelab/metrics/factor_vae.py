"""FactorVAE score (Kim & Mnih 2018), as in disentanglement_lib.

Global variances ``s_d^2`` (ddof = 1) of the mean codes of ``num_variance_estimate`` images;
latents with ``s_d < prune_threshold`` (0.05) are dropped. One vote: draw a factor k, a batch
of ``batch_size`` factor rows sharing the class of factor k, and take
``d* = argmin_d Var_batch(mu_d) / s_d^2`` over the active latents; the vote is (k, d*).
The majority-vote classifier maps each latent d to ``argmax_k votes[k, d]``; accuracy is the
fraction of votes it gets right, on ``num_train`` training votes and ``num_eval`` fresh ones.

The variance sample and the vote batches are drawn first (image indices, independent of the
codes) and their codes read afterwards from any ``Codes``; votes are vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.codes import Codes, DirectCodes
from vaelab.metrics.utils import ENCODE_BATCH, Encode, as_rng


@dataclass(frozen=True)
class VoteDraw:
    """Image indices ``[P, B]`` of the P vote batches and the fixed factor of each ``[P]``."""

    indices: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class FactorVAEDraw:
    """The variance sample ``[V]`` and the training and evaluation votes."""

    variance: np.ndarray
    train: VoteDraw
    evaluation: VoteDraw


def draw_votes(
    source: GroundTruthSource, num_points: int, rng: np.random.Generator, batch_size: int = 64
) -> VoteDraw:
    """For each vote a factor k and a batch of factor rows sharing the class of factor k."""
    labels = rng.integers(0, len(source.factor_sizes), num_points)
    fixed = np.repeat(labels, batch_size)
    factors = source.sample_factors(num_points * batch_size, rng)
    first = factors[np.arange(0, len(factors), batch_size), labels]  # each batch's first row
    factors = source.share_factor(factors, fixed, np.repeat(first, batch_size), rng)
    indices = source.index_of(factors).reshape(num_points, batch_size)
    return VoteDraw(indices, labels)


def draw_factor_vae(
    source: GroundTruthSource,
    rng: np.random.Generator,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
) -> FactorVAEDraw:
    """Everything the score reads, in disentanglement_lib's order of draws."""
    variance = source.index_of(source.sample_factors(num_variance_estimate, rng))
    train = draw_votes(source, num_train, rng, batch_size)
    return FactorVAEDraw(variance, train, draw_votes(source, num_eval, rng, batch_size))


def count_votes(
    draw: VoteDraw,
    codes: Codes,
    global_variances: np.ndarray,
    active: np.ndarray,
    num_factors: int,
) -> np.ndarray:
    """Vote counts ``[K, D]``: how often fixing factor k made latent d (among the active
    ones) the least variable relative to its global variance."""
    num_points, batch_size = draw.indices.shape
    z = codes(draw.indices.reshape(-1)).reshape(num_points, batch_size, -1)
    local = z.var(axis=1, ddof=1)
    active_dims = np.flatnonzero(active)
    argmin = active_dims[np.argmin(local[:, active] / global_variances[active], axis=1)]
    votes = np.zeros((num_factors, len(global_variances)), dtype=np.int64)
    np.add.at(votes, (draw.labels, argmin), 1)
    return votes


def factor_vae_votes(
    source: GroundTruthSource,
    encode: Encode,
    num_points: int,
    rng: np.random.Generator,
    global_variances: np.ndarray,
    active: np.ndarray,
    batch_size: int = 64,
    encode_batch: int = ENCODE_BATCH,
) -> np.ndarray:
    """Vote counts ``[K, D]`` of ``num_points`` fresh votes, encoding the images directly."""
    draw = draw_votes(source, num_points, rng, batch_size)
    codes = DirectCodes(source, encode, encode_batch)
    return count_votes(draw, codes, global_variances, active, len(source.factor_sizes))


def majority_vote_accuracy(votes: np.ndarray, classifier: np.ndarray) -> float:
    """Fraction of votes ``[K, D]`` for which ``classifier[d]`` is the voted factor."""
    return float(votes[classifier, np.arange(votes.shape[1])].sum() / max(votes.sum(), 1))


def factor_vae_from_draws(
    draw: FactorVAEDraw, codes: Codes, num_factors: int, prune_threshold: float = 0.05
) -> dict[str, float]:
    """``{"train_accuracy", "eval_accuracy", "num_active_dims"}``; 0 accuracies when every
    latent is pruned. (disentanglement_lib reports ``len(mask)``; this counts active dims.)"""
    global_variances = codes(draw.variance).var(axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    args = (codes, global_variances, active, num_factors)
    train_votes = count_votes(draw.train, *args)
    classifier = np.argmax(train_votes, axis=0)
    eval_votes = count_votes(draw.evaluation, *args)
    return {
        "train_accuracy": majority_vote_accuracy(train_votes, classifier),
        "eval_accuracy": majority_vote_accuracy(eval_votes, classifier),
        "num_active_dims": float(active.sum()),
    }


def factor_vae_score(
    source: GroundTruthSource,
    encode: Encode,
    seed: int | np.random.Generator | None = 0,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
    encode_batch: int = ENCODE_BATCH,
) -> dict[str, float]:
    """The FactorVAE score of ``encode``'s mean codes (see ``factor_vae_from_draws``)."""
    draw = draw_factor_vae(
        source, as_rng(seed), batch_size, num_train, num_eval, num_variance_estimate
    )
    codes = DirectCodes(source, encode, encode_batch)
    return factor_vae_from_draws(draw, codes, len(source.factor_sizes), prune_threshold)
