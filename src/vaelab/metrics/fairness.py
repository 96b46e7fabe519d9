"""Unfairness of classifiers trained on the codes (Locatello et al. 2019b, "On the Fairness
of Disentangled Representations"), as in disentanglement_lib.

For each target factor i a classifier (gradient-boosted trees, as for DCI) is trained to
predict v_i from ``num_train`` codes. For each sensitive factor j ≠ i, ``num_per_class``
factor rows are drawn once and v_j is set to each of its values c in turn; with p_c the
distribution of the predicted v_i under v_j = c and p̄ the distribution over all c,

    TV[i, j] = Σ_c n_c · ½ |p_c − p̄|₁ / Σ_c n_c        (the mean over c; max over c too).

``fairness`` is the mean of TV over pairs i ≠ j (the paper's mean_fairness, averaged over
targets, then sensitive factors), ``fairness_max`` the same with the maximum over c. A
classifier whose predictions do not move when only v_j does scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.classifiers import Fit, fit_all
from vaelab.metrics.codes import Codes
from vaelab.metrics.settings import Estimator, check_estimator


@dataclass(frozen=True)
class FairnessDraw:
    """Training rows ``[N, K]``, and per ordered pair (i, j), i ≠ j, the rows drawn for it
    ``[M, K]`` (v_j is then set to each of its values)."""

    train: np.ndarray
    pairs: dict[tuple[int, int], np.ndarray]

    def intervened(self, sizes: tuple[int, ...]) -> dict[tuple[int, int], np.ndarray]:
        """Per pair, the rows with v_j set to 0, 1, ...: ``[size_j, M, K]``."""
        out = {}
        for (i, j), rows in self.pairs.items():
            copies = np.repeat(rows[None], sizes[j], axis=0)
            copies[:, :, j] = np.arange(sizes[j])[:, None]
            out[i, j] = copies
        return out

    def indices(self, source: GroundTruthSource) -> list[np.ndarray]:
        """The image indices of the training rows and of every intervened row."""
        k = len(source.factor_sizes)
        intervened = self.intervened(tuple(source.factor_sizes)).values()
        return [
            source.index_of(self.train),
            *(source.index_of(r.reshape(-1, k)) for r in intervened),
        ]


def draw_fairness(
    source: GroundTruthSource, rng: np.random.Generator, num_train: int, num_per_class: int
) -> FairnessDraw:
    """The training rows, then each pair's rows in the order (0, 1), (0, 2), ..., (1, 0), ..."""
    train = source.sample_factors(num_train, rng)
    k = len(source.factor_sizes)
    pairs = {
        (i, j): source.sample_factors(num_per_class, rng)
        for i in range(k)
        for j in range(k)
        if i != j
    }
    return FairnessDraw(train, pairs)


def inter_group_fairness(counts: np.ndarray) -> tuple[float, float]:
    """Mean (weighted by each group's count) and maximum over the sensitive values (columns)
    of the total variation between that value's prediction distribution and the overall
    one; ``counts [predicted class, sensitive value]``."""
    counts = np.asarray(counts, dtype=np.float64)
    overall = counts.sum(1) / counts.sum()
    per_value = counts.sum(0)
    tv = 0.5 * np.abs(counts / per_value - overall[:, None]).sum(0)
    return float(np.sum(tv * per_value) / per_value.sum()), float(tv.max())


def fairness_from_draw(
    draw: FairnessDraw,
    codes: Codes,
    source: GroundTruthSource,
    estimator: Estimator = "hist",
    jobs: int = 1,
) -> dict[str, float]:
    """``{"fairness", "fairness_max"}`` (module docstring); the K classifiers are fitted in
    ``jobs`` processes."""
    check_estimator(estimator)
    sizes = tuple(int(s) for s in source.factor_sizes)
    k = len(sizes)
    x = codes(source.index_of(draw.train))
    intervened = draw.intervened(sizes)
    others = {i: [j for j in range(k) if j != i] for i in range(k)}
    # one class seen: the same prediction everywhere, TV 0
    targets = [i for i in range(k) if len(np.unique(draw.train[:, i])) > 1]
    fits = [
        Fit(estimator, x, draw.train[:, i],
            tuple(codes(source.index_of(intervened[i, j].reshape(-1, k))) for j in others[i]))
        for i in targets
    ]  # fmt: skip
    mean_tv, max_tv = np.zeros((k, k)), np.zeros((k, k))
    for i, fitted in zip(targets, fit_all(fits, jobs), strict=True):
        for j, predicted in zip(others[i], fitted.predictions, strict=True):
            predicted = predicted.reshape(sizes[j], -1)
            counts = np.stack([np.bincount(p, minlength=sizes[i]) for p in predicted], 1)
            mean_tv[i, j], max_tv[i, j] = inter_group_fairness(counts)
    off = ~np.eye(k, dtype=bool)
    return {"fairness": float(mean_tv[off].mean()), "fairness_max": float(max_tv[off].mean())}
