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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.classifiers import Fit, Fitted, fit_all
from vaelab.metrics.codes import Codes
from vaelab.metrics.settings import Estimator, check_estimator
from vaelab.metrics.utils import standardize

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


def _fits(
    model: str,
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    estimator: Estimator,
    seed: int,
) -> list[Fit | np.ndarray]:
    """Per factor, its fit, or the one class seen (then predicted everywhere); lr needs 5
    codes for its 5 folds."""
    check_estimator(estimator)
    if model == "lr":
        codes, codes_test = standardize(codes, codes_test)
    out: list[Fit | np.ndarray] = []
    for y in factors.T:
        if len(np.unique(y)) < 2 or (model == "lr" and len(y) < 5):
            out.append(y[:1])
        else:
            kind = "lr" if model == "lr" else estimator
            out.append(Fit(kind, codes, y, (codes, codes_test), seed=seed))
    return out


def _scores(
    fits: list[Fit | np.ndarray],
    done: Iterator[Fitted],
    factors: np.ndarray,
    factors_test: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test accuracy ``[K]`` from ``_fits`` and the results of its fits, in order."""
    train, test = [], []
    for fit, y, y_test in zip(fits, factors.T, factors_test.T, strict=True):
        if isinstance(fit, Fit):
            on_train, on_test = next(done).predictions
        else:
            on_train, on_test = np.full(len(y), fit[0]), np.full(len(y_test), fit[0])
        train.append(np.mean(on_train == y))
        test.append(np.mean(on_test == y_test))
    return np.array(train), np.array(test)


def accuracies(
    model: str,
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    estimator: Estimator = "hist",
    seed: int = 0,
    jobs: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test accuracy ``[K]`` of one classifier per factor."""
    fits = _fits(model, codes, factors, codes_test, estimator, seed)
    done = fit_all([f for f in fits if isinstance(f, Fit)], jobs)
    return _scores(fits, iter(done), factors, factors_test)


def downstream_from_draw(
    draw: DownstreamDraw,
    codes: Codes,
    source: GroundTruthSource,
    estimator: Estimator = "hist",
    jobs: int = 1,
) -> dict[str, float]:
    """``{"downstream_<model>_<n>": mean test accuracy, "sample_efficiency_<model>": ...}``;
    the fits of every size and model go to ``jobs`` processes at once."""
    tasks = []  # (key, its fits, train rows, test rows)
    for n, train, test in zip(draw.sizes, draw.train, draw.test, strict=True):
        x, x_test = codes(source.index_of(train)), codes(source.index_of(test))
        for model in MODELS:
            fits = _fits(model, x, train, x_test, estimator, seed=0)
            tasks.append((f"downstream_{model}_{n}", fits, train, test))
    done = iter(fit_all([f for _, fits, _, _ in tasks for f in fits if isinstance(f, Fit)], jobs))
    out: dict[str, float] = {}
    for key, fits, train, test in tasks:
        out[key] = float(_scores(fits, done, train, test)[1].mean())
    if 100 in draw.sizes and 10_000 in draw.sizes:
        for model in MODELS:
            full = out[f"downstream_{model}_10000"]
            out[f"sample_efficiency_{model}"] = (
                out[f"downstream_{model}_100"] / full if full else 0.0
            )
    return out
