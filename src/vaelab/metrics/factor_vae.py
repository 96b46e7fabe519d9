"""FactorVAE score (Kim & Mnih 2018), as in disentanglement_lib.

Global variances ``s_d^2`` (ddof = 1) of the mean codes of ``num_variance_estimate`` images;
latents with ``s_d < prune_threshold`` (0.05) are dropped. One vote: draw a factor k, a batch
of ``batch_size`` factor rows sharing the class of factor k, and take
``d* = argmin_d Var_batch(mu_d) / s_d^2`` over the active latents; the vote is (k, d*).
The majority-vote classifier maps each latent d to ``argmax_k votes[k, d]``; accuracy is the
fraction of votes it gets right, on ``num_train`` training votes and ``num_eval`` fresh ones.

All batches are drawn up front and encoded in large chunks; votes are vectorised.
"""

from __future__ import annotations

import numpy as np

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.utils import ENCODE_BATCH, Encode, as_rng, represent, sample_codes


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
    """Vote counts ``[K, D]``: how often fixing factor k made latent d (among the active
    ones) the least variable relative to its global variance."""
    k = len(source.factor_sizes)
    labels = rng.integers(0, k, num_points)
    factors = source.sample_factors(num_points * batch_size, rng).reshape(num_points, -1, k)
    rows = np.arange(num_points)
    factors[rows, :, labels] = factors[rows, 0, labels][:, None]
    codes = represent(source, encode, factors.reshape(-1, k), encode_batch)
    local = codes.reshape(num_points, batch_size, -1).var(axis=1, ddof=1)
    active_dims = np.flatnonzero(active)
    argmin = active_dims[np.argmin(local[:, active] / global_variances[active], axis=1)]
    votes = np.zeros((k, len(global_variances)), dtype=np.int64)
    np.add.at(votes, (labels, argmin), 1)
    return votes


def majority_vote_accuracy(votes: np.ndarray, classifier: np.ndarray) -> float:
    """Fraction of votes ``[K, D]`` for which ``classifier[d]`` is the voted factor."""
    return float(votes[classifier, np.arange(votes.shape[1])].sum() / max(votes.sum(), 1))


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
    """``{"train_accuracy", "eval_accuracy", "num_active_dims"}``; 0 accuracies when every
    latent is pruned. (disentanglement_lib reports ``len(mask)``; this counts active dims.)"""
    rng = as_rng(seed)
    codes, _ = sample_codes(source, encode, num_variance_estimate, rng, encode_batch)
    global_variances = codes.var(axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    args = (global_variances, active, batch_size, encode_batch)
    train_votes = factor_vae_votes(source, encode, num_train, rng, *args)
    classifier = np.argmax(train_votes, axis=0)
    eval_votes = factor_vae_votes(source, encode, num_eval, rng, *args)
    return {
        "train_accuracy": majority_vote_accuracy(train_votes, classifier),
        "eval_accuracy": majority_vote_accuracy(eval_votes, classifier),
        "num_active_dims": float(active.sum()),
    }
