"""Modularity and explicitness (Ridgeway & Mozer 2018), as in disentanglement_lib.

Modularity, from the MI matrix m[i, j] = I(z_i; v_j) of the discretised latents: with
θ_i = max_j m[i, j],

    δ_i = (sum_j m[i, j]^2 - θ_i^2) / (θ_i^2 (K - 1)),   modularity = mean_i (1 - δ_i)

(a latent carrying no information scores 0). Explicitness: per factor, a one-vs-rest
logistic regression (liblinear, C = 1) on the standardised codes; the score is the
macro-averaged one-vs-rest ROC AUC of its probabilities, averaged over factors.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.multiclass import OneVsRestClassifier

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.codes import sample_codes
from vaelab.metrics.settings import NUM_BINS
from vaelab.metrics.utils import (
    Encode,
    as_rng,
    discrete_mutual_info,
    discretize,
    standardize,
)


def modularity_from_mi(mi: np.ndarray) -> float:
    """Modularity of an MI matrix ``[D, K]`` (K >= 2)."""
    sq = np.square(mi)
    theta = sq.max(axis=1)
    denom = theta * (sq.shape[1] - 1.0)
    delta = np.divide(sq.sum(axis=1) - theta, denom, out=np.ones_like(theta), where=denom > 0)
    score = np.where(theta > 0, 1.0 - delta, 0.0)
    return float(np.mean(score))


def modularity_from_codes(
    codes: np.ndarray, factors: np.ndarray, num_bins: int = NUM_BINS
) -> float:
    """Modularity of mean codes ``[N, D]`` with factor classes ``[N, K]``."""
    return modularity_from_mi(discrete_mutual_info(discretize(codes, num_bins), factors))


def macro_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean over classes (present with both labels in ``y``) of the one-vs-rest ROC AUC."""
    aucs = [
        roc_auc_score(y == c, proba[:, col])
        for col, c in enumerate(classes)
        if 0 < np.sum(y == c) < len(y)
    ]
    return float(np.mean(aucs)) if aucs else float("nan")


def explicitness_from_codes(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray
) -> dict[str, float]:
    """``{"train", "test"}`` explicitness: mean over factors of the macro ROC AUC."""
    x_train, x_test = standardize(codes, codes_test)
    train, test = [], []
    for j in range(factors.shape[1]):
        y, y_test = factors[:, j], factors_test[:, j]
        classes = np.unique(y)
        if len(classes) < 2:
            continue
        clf = OneVsRestClassifier(LogisticRegression(solver="liblinear")).fit(x_train, y)
        train.append(macro_auc(y, clf.predict_proba(x_train), clf.classes_))
        test.append(macro_auc(y_test, clf.predict_proba(x_test), clf.classes_))
    return {"train": float(np.nanmean(train)), "test": float(np.nanmean(test))}


def modularity_explicitness_score(
    source: GroundTruthSource,
    encode: Encode,
    seed: int | np.random.Generator | None = 0,
    num_train: int = 10_000,
    num_test: int = 5_000,
    num_bins: int = NUM_BINS,
) -> dict[str, float]:
    """``{"modularity", "explicitness_train", "explicitness_test"}`` on random images."""
    rng = as_rng(seed)
    codes, factors = sample_codes(source, encode, num_train, rng)
    codes_test, factors_test = sample_codes(source, encode, num_test, rng)
    explicit = explicitness_from_codes(codes, factors, codes_test, factors_test)
    return {
        "modularity": modularity_from_codes(codes, factors, num_bins),
        "explicitness_train": explicit["train"],
        "explicitness_test": explicit["test"],
    }
