"""The suite's classifiers, and where they are fitted: here, or in worker processes.

DCI (both variants), DCI-ES, the downstream tasks and fairness fit one classifier per factor
(and per training size and model): independent fits, 5 to 40 a metric, that take most of a
full evaluation once the encoder runs on a GPU. ``fit_all(fits, jobs)`` (and ``map_jobs`` for
any per-item function) runs them in this process (``jobs=1``) or in ``jobs`` worker processes
(joblib's loky executor, kept between calls and shared by threads; -1: one per core), the
largest first. Each fit is seeded and single-threaded (``FIT_THREADS``), so the results are
the same either way. A random forest is grown in pieces of ``FOREST_PIECE`` trees, each a
work item of its own (``grow_trees``), so that on many cores one forest's trees grow side by
side: the pieces joined are the forest one fit grows, tree for tree. This module imports
numpy and scikit-learn only: a worker starts without torch.

Models: ``hist`` (HistGradientBoostingClassifier with disentanglement_lib's boosting schedule
and tree shape), ``sklearn`` (GradientBoostingClassifier(), the reference), ``rf`` (Tripod's
random forest), ``lr`` (logistic regression with C chosen by 5-fold cross-validation among
10 values, ``LogisticRegressionCV(Cs=10, cv=KFold(5))``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
from joblib import cpu_count, effective_n_jobs
from joblib.externals.loky import get_reusable_executor
from sklearn.base import clone
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from vaelab.metrics.settings import Estimator, check_estimator, check_jobs

Model = Literal["hist", "sklearn", "rf", "lr"]
# OpenMP and BLAS threads per fit. More lose: HGB's OpenMP threads spin on a busy machine
# (30x slower), and 5 LogisticRegressionCV fits on 10,000 codes took 31.9 s with BLAS's
# 2 threads against 8.9 s with one on the 2-core machine.
FIT_THREADS = 1
WORKER_IDLE_S = 300  # joblib's own
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
T, R, S = TypeVar("T"), TypeVar("R"), TypeVar("S")
FOREST_TREES, FOREST_DEPTH = 100, 10  # Tripod's random forest
FOREST_JOBS = 1
# Trees a worker grows at once. Tripod's forest on the 40-class factor is the suite's longest
# fit alone (9.2 s on the 2-core machine; on 16 workers the fits could otherwise end no sooner).
FOREST_PIECE = 25
# jobs="auto" fits in this process below this many codes. Measured on 2 cores, DCI's 5 fits
# on synthetic codes, with a fresh pair of workers against in this process: 100 codes 2.13 s
# against 1.87 s, 500 codes 3.22 against 3.78 s, 10,000 codes 8.22 against 12.65 s.
AUTO_MIN_CODES = 500


def tree_classifier(estimator: Estimator, seed: int = 0):
    """The reference's boosted trees, unfitted: ``hist`` (``_hist_model``) or ``sklearn``
    (``GradientBoostingClassifier``)."""
    if check_estimator(estimator) == "sklearn":
        return GradientBoostingClassifier(random_state=seed)
    return _hist_model(seed)


def forest_classifier(seed: int = 0) -> RandomForestClassifier:
    """Tripod's DCI forest, unfitted: 100 trees, depth <= 10, entropy criterion."""
    return RandomForestClassifier(
        n_estimators=FOREST_TREES,
        criterion="entropy",
        max_depth=FOREST_DEPTH,
        random_state=seed,
        n_jobs=FOREST_JOBS,
    )


def _hist_model(seed: int) -> HistGradientBoostingClassifier:
    """The reference's boosting schedule and tree shape, on binned features."""
    return HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.1,
        max_depth=3,
        max_leaf_nodes=None,
        min_samples_leaf=1,
        l2_regularization=0.0,
        early_stopping=False,
        random_state=seed,
    )


def classifier(model: Model, seed: int = 0):
    """An unfitted classifier of kind ``model`` (module docstring)."""
    if model == "lr":
        return LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5), scoring="accuracy")
    if model == "rf":
        return forest_classifier(seed)
    return tree_classifier(model, seed)


def hist_gain_importances(model: HistGradientBoostingClassifier, num_features: int) -> np.ndarray:
    """Split gains of a fitted HistGradientBoosting model summed per feature, ``[D]``.

    Reads the fitted trees (``model._predictors``, stable since sklearn 0.21)."""
    gains = np.zeros(num_features)
    for stage in model._predictors:
        for tree in stage:
            nodes = tree.nodes[tree.nodes["is_leaf"] == 0]
            np.add.at(gains, nodes["feature_idx"], np.maximum(nodes["gain"], 0.0))
    return gains


def fit_cost(y: np.ndarray) -> int:
    """Rows x classes of labels ``y``: what a fit's time grows with (one tree or model per
    class); the order in which the workers take the fits."""
    return len(y) * len(np.unique(y))


@dataclass(frozen=True)
class Fit:
    """One classifier of kind ``model`` to fit on ``x [N, D]``, ``y [N]`` and apply to each
    array of ``predict``; ``importance``: also its feature importances ``[D]``, summing to 1
    (``hist``: split gains; ``sklearn``, ``rf``: impurity importances)."""

    model: Model
    x: np.ndarray
    y: np.ndarray
    predict: tuple[np.ndarray, ...] = ()
    importance: bool = False
    seed: int = 0

    def cost(self) -> int:
        """``fit_cost`` of its labels."""
        return fit_cost(self.y)


@dataclass(frozen=True)
class Fitted:
    """The predicted classes for each array of ``Fit.predict``, and the importances."""

    predictions: tuple[np.ndarray, ...]
    importance: np.ndarray | None = None


def fit_one(fit: Fit) -> Fitted:
    """Fit ``fit.model`` with ``FIT_THREADS`` threads and predict; sklearn's convergence and
    coming-default warnings silenced (its defaults are set on purpose here)."""
    with threadpool_limits(FIT_THREADS), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        model = classifier(fit.model, fit.seed).fit(fit.x, fit.y)
        return apply_fitted(fit, model)


def apply_fitted(fit: Fit, model) -> Fitted:
    """``fit``'s predictions and (if asked) importances from its fitted ``model``."""
    predictions = tuple(model.predict(x) for x in fit.predict)
    importance = None
    if fit.importance:
        if fit.model == "hist":
            raw = hist_gain_importances(model, fit.x.shape[1])
        else:
            raw = np.abs(model.feature_importances_)
        total = raw.sum()
        importance = raw / total if total > 0 else raw
    return Fitted(predictions, importance)


def tree_ranges(num_trees: int) -> list[tuple[int, int]]:
    """The pieces ``(start, stop)`` a forest of ``num_trees`` is grown in, ``FOREST_PIECE``
    trees each: a fixed split, so the results do not depend on the number of workers."""
    if num_trees < 1:
        raise ValueError(f"a random forest needs at least one tree, not {num_trees}")
    return [(a, min(a + FOREST_PIECE, num_trees)) for a in range(0, num_trees, FOREST_PIECE)]


def grow_trees(forest: RandomForestClassifier, x: np.ndarray, y: np.ndarray, start: int, stop: int):
    """``forest`` (unfitted, its ``random_state`` an int) fitted with only its trees ``start``
    to ``stop - 1``: the trees one fit of the whole forest grows in those places. A warm start
    first draws the random numbers of the trees the forest already holds (scikit-learn's own
    guarantee that a forest grown in steps is the forest grown at once); ``start`` stand-ins
    take the place of the trees grown elsewhere."""
    part = clone(forest).set_params(n_estimators=stop, warm_start=True)
    part.estimators_ = [None] * start
    part.fit(x, y)
    part.estimators_ = part.estimators_[start:]
    return part.set_params(n_estimators=stop - start, warm_start=False)


def join_trees(parts: Sequence[RandomForestClassifier]) -> RandomForestClassifier:
    """One forest of the trees of ``parts`` (``grow_trees``' pieces of it, in order)."""
    forest = parts[0]
    forest.estimators_ = [tree for part in parts for tree in part.estimators_]
    return forest.set_params(n_estimators=len(forest.estimators_))


@dataclass(frozen=True)
class ForestPiece:
    """Trees ``start`` to ``stop - 1`` of the random forest of a ``Fit`` (model ``rf``)."""

    x: np.ndarray
    y: np.ndarray
    seed: int
    start: int
    stop: int

    def cost(self) -> float:
        """``fit_cost`` of the whole forest, times this piece's share of its trees."""
        return fit_cost(self.y) * (self.stop - self.start) / FOREST_TREES


def pieces(fit: Fit) -> list[Fit | ForestPiece]:
    """The work items of ``fit``: its forest's pieces for model ``rf``, else the fit itself."""
    if fit.model != "rf":
        return [fit]
    return [ForestPiece(fit.x, fit.y, fit.seed, a, b) for a, b in tree_ranges(FOREST_TREES)]


def fit_piece(item: Fit | ForestPiece):
    """A work item done: ``fit_one`` of a fit, ``grow_trees`` of a forest's piece."""
    if isinstance(item, Fit):
        return fit_one(item)
    forest = forest_classifier(item.seed)
    return grow_trees(forest, item.x, item.y, item.start, item.stop)


def auto_jobs(num_codes: int, num_fits: int, beside: int = 1) -> int:
    """What ``jobs="auto"`` means for ``num_fits`` fits on at most ``num_codes`` training
    codes: the cores this process may use (joblib's count: its affinity, a container's CPU
    quota, ``LOKY_MAX_CPU_COUNT``), shared by the ``beside`` jobs running at once on them, at
    most one worker a work item (``SuiteConfig.fits``); 1 (this process) below
    ``AUTO_MIN_CODES``, where starting the workers costs more than they save."""
    if num_codes < AUTO_MIN_CODES:
        return 1
    return max(1, min(cpu_count() // max(1, beside), num_fits))


def workers(jobs: int):
    """The loky executor of ``jobs`` worker processes (joblib's count: -1 is one per core),
    shared by every caller and thread; its workers start on first use, stay 5 minutes idle,
    and run with one BLAS and OpenMP thread each."""
    return get_reusable_executor(
        max_workers=effective_n_jobs(jobs), timeout=WORKER_IDLE_S, env=ONE_THREAD
    )


def start_workers(jobs: int) -> None:
    """Start the ``workers(jobs)`` now without waiting for them: each imports this module
    and scikit-learn (about 1 s) while the caller goes on (the suite: while the encoder
    runs), not when the first fits reach it."""
    executor = workers(jobs)
    for _ in range(effective_n_jobs(jobs)):
        executor.submit(_started)


def _started() -> None:
    """A worker's first task: unpickling it imports this module."""


def map_jobs(
    function: Callable[[T], R], items: Sequence[T], jobs: int, cost: Callable[[T], float]
) -> list[R]:
    """``[function(item) for item in items]``: here when ``jobs`` is 1, otherwise in the
    ``workers(jobs)``, handed out largest ``cost`` first so that the longest item does not
    start last. ``function`` must be importable (module level). Never in a thread here when
    ``jobs`` is not 1: a fit's thread limits are the whole process's (the suite's threads)."""
    return map_groups(function, [[item] for item in items], jobs, cost, lambda _, done: done[0])


def map_groups(
    function: Callable[[T], R],
    groups: Sequence[Sequence[T]],
    jobs: int,
    cost: Callable[[T], float],
    combine: Callable[[int, list[R]], S],
) -> list[S]:
    """``[combine(g, [function(item) for item in group]) for g, group in enumerate(groups)]``,
    the items as ``map_jobs`` does them. Each group is combined (its results in its order, so
    the answer does not depend on which finished first) as soon as all its items are done, and
    its results dropped: at most the groups in progress are held, not every result."""
    if check_jobs(jobs) == "auto":
        raise ValueError("jobs='auto' is a suite setting: resolve it first (SuiteConfig.resolved)")
    if jobs == 1 or not groups:
        return [combine(g, [function(item) for item in group]) for g, group in enumerate(groups)]
    executor = workers(jobs)
    flat = [(g, i) for g, group in enumerate(groups) for i in range(len(group))]
    order = sorted(flat, key=lambda gi: -cost(groups[gi[0]][gi[1]]))
    futures = {executor.submit(function, groups[g][i]): (g, i) for g, i in order}
    results: list[dict[int, R]] = [{} for _ in groups]
    out: dict[int, S] = {g: combine(g, []) for g, group in enumerate(groups) if not group}
    try:
        for future in as_completed(list(futures)):
            g, i = futures.pop(future)  # a done future would keep its result alive
            results[g][i] = future.result()
            if len(results[g]) == len(groups[g]):
                out[g] = combine(g, [results[g][i] for i in range(len(groups[g]))])
                results[g] = {}
    except BaseException:  # a failed item or Ctrl-C: the others would be thrown away
        for future in futures:
            future.cancel()
        raise
    return [out[g] for g in range(len(groups))]


def fit_all(fits: Sequence[Fit], jobs: int = 1) -> list[Fitted]:
    """``fit_one`` of each fit, in order, their work items (``pieces``) in ``jobs`` processes
    (``map_groups``); a forest's pieces joined and applied here as soon as all are grown."""

    def combine(g: int, parts: list) -> Fitted:
        return apply_fitted(fits[g], join_trees(parts)) if fits[g].model == "rf" else parts[0]

    return map_groups(fit_piece, [pieces(fit) for fit in fits], jobs, _cost, combine)


def _cost(item: Fit | ForestPiece) -> float:
    return item.cost()
