"""Downstream tasks and sample efficiency (Locatello et al. 2019), as in disentanglement_lib.

For each training size n (10, 100, 1,000 and 10,000), n training and ``num_test`` test codes
are drawn afresh, and per factor a classifier predicts the factor's class from the mean code:

- ``lr``: logistic regression with C chosen by 5-fold cross-validation among 10 values by
  accuracy (``LogisticRegressionCV(Cs=10, cv=KFold(5))``), on codes standardised with the
  training codes' mean and deviation (disentanglement_lib fits raw codes; standardising only
  rescales the C that cross-validation picks, and lets lbfgs converge: ~10x faster on 10,000
  codes);
- ``gbt``: gradient-boosted trees with the reference's schedule (100 rounds, depth 3,
  learning rate 0.1): ``HistGradientBoostingClassifier`` (``estimator="hist"``, the default,
  as for DCI) or ``GradientBoostingClassifier`` (``"sklearn"``).

The score of a model and size is the test accuracy averaged over factors; the sample
efficiency is accuracy(100) / accuracy(10,000) (a factor with one class in a training set
is predicted as that class).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.codes import Codes
from vaelab.metrics.dci import HIST_THREADS, Estimator, tree_classifier
from vaelab.metrics.utils import standardize

SIZES = (10, 100, 1_000, 10_000)
MODELS = ("lr", "gbt")


@dataclass(frozen=True)
class DownstreamDraw:
    """Per training size: training factor rows ``[n, K]`` and test rows ``[num_test, K]``."""

    sizes: tuple[int, ...]
    train: tuple[np.ndarray, ...]
    test: tuple[np.ndarray, ...]

    def indices(self, source: GroundTruthSource) -> list[np.ndarray]:
        return [source.index_of(f) for f in (*self.train, *self.test)]


def draw_downstream(
    source: GroundTruthSource, rng: np.random.Generator, sizes: Sequence[int], num_test: int
) -> DownstreamDraw:
    """For each size in turn, its training rows then its test rows, from ``rng``."""
    train, test = [], []
    for n in sizes:
        train.append(source.sample_factors(int(n), rng))
        test.append(source.sample_factors(num_test, rng))
    return DownstreamDraw(tuple(int(n) for n in sizes), tuple(train), tuple(test))


def _classifier(model: str, estimator: Estimator, seed: int):
    if model == "lr":
        return LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5), scoring="accuracy")
    return tree_classifier(estimator, seed)


def accuracies(
    model: str,
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    estimator: Estimator = "hist",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test accuracy ``[K]`` of one classifier per factor."""
    if model == "lr":
        codes, codes_test = standardize(codes, codes_test)
    train, test = [], []
    with threadpool_limits(HIST_THREADS, user_api="openmp"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)  # sklearn's coming defaults: set here
        for j in range(factors.shape[1]):
            y, y_test = factors[:, j], factors_test[:, j]
            if len(np.unique(y)) < 2 or (model == "lr" and len(y) < 5):
                predict = lambda x, c=y[0]: np.full(len(x), c)  # noqa: E731 - one class seen
            else:
                predict = _classifier(model, estimator, seed).fit(codes, y).predict
            train.append(np.mean(predict(codes) == y))
            test.append(np.mean(predict(codes_test) == y_test))
    return np.array(train), np.array(test)


def downstream_from_draw(
    draw: DownstreamDraw, codes: Codes, source: GroundTruthSource, estimator: Estimator = "hist"
) -> dict[str, float]:
    """``{"downstream_<model>_<n>": mean test accuracy, "sample_efficiency_<model>": ...}``."""
    out: dict[str, float] = {}
    for n, train, test in zip(draw.sizes, draw.train, draw.test, strict=True):
        x, x_test = codes(source.index_of(train)), codes(source.index_of(test))
        for model in MODELS:
            _, acc = accuracies(model, x, train, x_test, test, estimator)
            out[f"downstream_{model}_{n}"] = float(acc.mean())
    if 100 in draw.sizes and 10_000 in draw.sizes:
        for model in MODELS:
            full = out[f"downstream_{model}_10000"]
            out[f"sample_efficiency_{model}"] = (
                out[f"downstream_{model}_100"] / full if full else 0.0
            )
    return out
