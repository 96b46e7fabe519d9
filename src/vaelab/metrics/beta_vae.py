"""BetaVAE score (Higgins et al. 2017), as in disentanglement_lib.

One point: draw a factor k uniformly, two batches of ``batch_size`` factor rows that agree on
factor k, and form the feature ``f = mean_b |mu(x1_b) - mu(x2_b)|`` ``[D]``; its label is k.
A logistic regression (disentanglement_lib's sklearn default of the time: liblinear,
one-vs-rest, C = 1) is fitted on ``num_train`` points; the score is its accuracy on the
training points and on ``num_eval`` fresh points.

The batches are drawn first (``draw_beta_vae_points``, image indices) and their codes read
afterwards from any ``Codes`` (a code table in the suite), so the draws do not depend on how
the codes are computed. Features are one vectorised numpy reduction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.codes import Codes, DirectCodes
from vaelab.metrics.utils import ENCODE_BATCH, Encode, as_rng


@dataclass(frozen=True)
class BetaVAEDraw:
    """Image indices ``[2, P, B]`` of the P pairs of batches, and the fixed factor ``[P]``."""

    indices: np.ndarray
    labels: np.ndarray


def draw_beta_vae_points(
    source: GroundTruthSource, num_points: int, rng: np.random.Generator, batch_size: int = 64
) -> BetaVAEDraw:
    """For each point a factor k and two batches of factor rows that agree on factor k."""
    labels = rng.integers(0, len(source.factor_sizes), num_points)
    fixed = np.repeat(labels, batch_size)
    f1 = source.sample_factors(num_points * batch_size, rng)
    f2 = source.sample_factors(num_points * batch_size, rng)
    f2 = source.share_factor(f2, fixed, f1[np.arange(len(f1)), fixed], rng)
    both = np.concatenate([f1, f2])
    return BetaVAEDraw(source.index_of(both).reshape(2, num_points, batch_size), labels)


def beta_vae_features(draw: BetaVAEDraw, codes: Codes) -> np.ndarray:
    """Features ``[P, D]``: mean over the batch of |mu(x1_b) - mu(x2_b)|."""
    _, p, b = draw.indices.shape
    z = codes(draw.indices.reshape(-1)).reshape(2, p, b, -1)
    return np.abs(z[0] - z[1]).mean(axis=1)


def beta_vae_points(
    source: GroundTruthSource,
    encode: Encode,
    num_points: int,
    rng: np.random.Generator,
    batch_size: int = 64,
    encode_batch: int = ENCODE_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``[P, D]`` (mean |z1 - z2| over a batch with one factor fixed) and labels
    ``[P]`` (the fixed factor), encoding the images directly."""
    draw = draw_beta_vae_points(source, num_points, rng, batch_size)
    return beta_vae_features(draw, DirectCodes(source, encode, encode_batch)), draw.labels


def beta_vae_classifier() -> OneVsRestClassifier:
    """disentanglement_lib's ``LogisticRegression()`` under its sklearn (liblinear, OvR)."""
    return OneVsRestClassifier(LogisticRegression(solver="liblinear"))


def beta_vae_from_draws(train: BetaVAEDraw, evaluation: BetaVAEDraw, codes: Codes) -> dict:
    """``{"train_accuracy", "eval_accuracy"}`` of the classifier fitted on ``train``."""
    x_train, y_train = beta_vae_features(train, codes), train.labels
    x_eval, y_eval = beta_vae_features(evaluation, codes), evaluation.labels
    if len(np.unique(y_train)) < 2:  # one class only: the classifier is a constant
        return {"train_accuracy": 1.0, "eval_accuracy": float(np.mean(y_eval == y_train[0]))}
    model = beta_vae_classifier().fit(x_train, y_train)
    return {
        "train_accuracy": float(np.mean(model.predict(x_train) == y_train)),
        "eval_accuracy": float(np.mean(model.predict(x_eval) == y_eval)),
    }


def beta_vae_score(
    source: GroundTruthSource,
    encode: Encode,
    seed: int | np.random.Generator | None = 0,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    encode_batch: int = ENCODE_BATCH,
) -> dict[str, float]:
    """``{"train_accuracy", "eval_accuracy"}`` of the BetaVAE classifier."""
    rng = as_rng(seed)
    train = draw_beta_vae_points(source, num_train, rng, batch_size)
    evaluation = draw_beta_vae_points(source, num_eval, rng, batch_size)
    return beta_vae_from_draws(train, evaluation, DirectCodes(source, encode, encode_batch))
