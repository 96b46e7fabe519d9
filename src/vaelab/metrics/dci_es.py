"""DCI-ES explicitness E and size S (Eastwood et al. 2023, "DCI-ES: An extended
disentanglement framework with connections to identifiability", ICLR; reference code
andreinicolicioiu/DCI-ES: ``metrics/explitcitness.py``, ``src/simple_gather.py``).

Per factor v_j, probes of growing capacity c (random forests of 100 trees with maximum depth
c in the reference's grid 1, 2, 3, 4, 8, 10, ..., 20, 32) learn v_j from the training codes;
ℓ_j(c) is a probe's test error 1 - accuracy, made non-increasing (the best loss reached up to
c). With the baseline ℓ^b_j = 1 - 1/n_j, the error of guessing among the n_j classes (the
reference's per-factor baseline losses), and the lowest loss ℓ* = 0 (deterministic factors),

    E_j = 1 - AULCC_j / Z_j,  AULCC_j = ∫ (ℓ_j(c) - ℓ*) dc  (trapezoids over the grid),
                              Z_j = ½ (c_max - c_min) (ℓ^b_j - ℓ*),
    E = mean_j E_j,           S = K / L  (K factors, L latent dimensions).

E is 1 when the smallest probe is already perfect, 0 when the loss falls linearly from the
baseline to 0 over the grid, and -1 when no probe beats the baseline. Differences from the
reference code: it regresses dSprites' ordinal factors (loss 1 - R², baseline 1) where vaelab,
whose factors are classes, classifies every factor; its area is measured above each curve's
own minimum, which scores a curve flat at the baseline 1 (E would no longer see
informativeness), where the normalizer assumes ℓ* = 0 as here. The reference code does not
compute S; it is the paper's definition (the representation's dimension relative to the
number of factors).

Fitting: by default one forest of unlimited depth is grown per factor and the probe of depth c
is that forest with every tree cut at depth c (each node keeps the class fractions of its
training rows). A tree grown to depth c and a deeper tree cut at c make the same greedy splits
on the same bootstrap rows, so the cut forest is a draw of the depth-c probe (only its random
numbers differ); ``refit=True`` fits one forest per depth as the reference does (~6x slower).
Each forest is grown in pieces of trees (``classifiers.tree_ranges``), in worker processes
when ``jobs`` asks for them, and a probe's class probabilities are its pieces' sums added.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from vaelab.metrics.classifiers import grow_trees, map_groups, tree_ranges
from vaelab.metrics.settings import DEPTHS, NUM_TREES

RF_JOBS = 1  # one thread: the machine's other metrics and processes keep their cores


def probe_forest(depth: int | None, num_trees: int = NUM_TREES, seed: int = 0):
    """The reference's probe: a random forest of ``num_trees`` with maximum ``depth``."""
    return RandomForestClassifier(
        n_estimators=num_trees, max_depth=depth, random_state=seed, n_jobs=RF_JOBS
    )


def cut_forest_proba(
    forest: RandomForestClassifier, codes: np.ndarray, depths: Sequence[int]
) -> list[np.ndarray]:
    """Class probabilities ``[N, C]`` of ``forest`` with every tree cut at each depth: a row
    stops at its leaf or at the node of that depth, whose class fractions it takes."""
    sums = cut_tree_sums(forest.estimators_, codes, depths)
    return [p / len(forest.estimators_) for p in sums]


def cut_tree_sums(trees: Sequence, codes: np.ndarray, depths: Sequence[int]) -> list[np.ndarray]:
    """``cut_forest_proba`` of the forest of ``trees``, summed over them instead of averaged."""
    x = np.asarray(codes, dtype=np.float32)  # scikit-learn's trees compare float32 inputs
    rows = np.arange(len(x))
    out = [np.zeros((len(x), trees[0].tree_.value.shape[2])) for _ in depths]
    for tree in trees:
        t = tree.tree_
        value = t.value[:, 0, :]
        value = value / value.sum(axis=1, keepdims=True)
        node = np.zeros(len(x), dtype=np.int64)
        level = 0
        for i, depth in sorted(enumerate(depths), key=lambda pair: pair[1]):
            while level < depth:
                left = t.children_left[node]
                inner = left >= 0
                if not inner.any():
                    break
                feature = np.where(inner, t.feature[node], 0)  # a leaf's feature is -2
                go_left = x[rows, feature] <= t.threshold[node]
                node = np.where(inner, np.where(go_left, left, t.children_right[node]), node)
                level += 1
            out[i] += value[node]
    return out


def piece_probas(
    piece: tuple[np.ndarray, int, int],
    codes: np.ndarray,
    codes_test: np.ndarray,
    depths: Sequence[int] = DEPTHS,
    num_trees: int = NUM_TREES,
    seed: int = 0,
    refit: bool = False,
) -> list[np.ndarray]:
    """One piece of a factor's probes: ``piece`` is its training classes and the trees
    ``start``, ``stop`` (``classifiers.tree_ranges``); per depth, the class probabilities
    ``[N_test, C]`` on ``codes_test`` summed over those trees of the probe (of the cut forest,
    or with ``refit`` of the forest grown to that depth)."""
    y, start, stop = piece
    if refit:
        x = np.asarray(codes_test, dtype=np.float32)
        probes = [probe_forest(d, num_trees, seed) for d in depths]
        grown = [grow_trees(probe, codes, y, start, stop) for probe in probes]
        return [sum(tree.predict_proba(x) for tree in part.estimators_) for part in grown]
    part = grow_trees(probe_forest(None, num_trees, seed), codes, y, start, stop)
    return cut_tree_sums(part.estimators_, codes_test, depths)


def loss_capacity_curves(
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    depths: Sequence[int] = DEPTHS,
    num_trees: int = NUM_TREES,
    seed: int = 0,
    refit: bool = False,
    jobs: int = 1,
) -> np.ndarray:
    """Test error ``[K, len(depths)]`` of each factor's forest probe at each depth; the
    probes grown in pieces of trees in ``jobs`` processes (``classifiers.map_groups``), a
    probe's prediction the class of highest probability summed over its pieces in their order
    (one forest's probabilities up to rounding in the last place)."""
    probe = partial(
        piece_probas, codes=codes, codes_test=codes_test, depths=tuple(depths),
        num_trees=num_trees, seed=seed, refit=refit,
    )  # fmt: skip
    ranges = tree_ranges(num_trees)
    groups = [[(y, a, b) for a, b in ranges] for y in factors.T]  # a factor's pieces

    def test_error(j: int, sums: list[list[np.ndarray]]) -> np.ndarray:
        total = sums[0]  # the first piece's arrays, added to in place
        for more in sums[1:]:
            for t, m in zip(total, more, strict=True):
                t += m
        predicted = [np.unique(factors[:, j])[p.argmax(axis=1)] for p in total]
        return np.array([1.0 - np.mean(p == factors_test[:, j]) for p in predicted])

    def cost(item: tuple[np.ndarray, int, int]) -> int:
        return len(np.unique(item[0])) * (item[2] - item[1])

    losses = map_groups(probe, groups, jobs, cost, test_error)
    return np.array(losses).reshape(factors.shape[1], len(depths))


def explicitness(
    losses: np.ndarray, capacities: Sequence[float], baselines: np.ndarray
) -> np.ndarray:
    """E_j = 1 - ∫(min-so-far ℓ_j) dc / (½ (c_max - c_min) ℓ^b_j) per factor, ``[K]``;
    ``losses [K, G]`` at increasing ``capacities [G]``, ``baselines [K]`` (> 0)."""
    c = np.asarray(capacities, dtype=np.float64)
    best = np.minimum.accumulate(np.asarray(losses, dtype=np.float64), axis=1)
    area = np.sum(0.5 * (best[:, 1:] + best[:, :-1]) * np.diff(c), axis=1)
    return 1.0 - area / (0.5 * (c[-1] - c[0]) * np.asarray(baselines, dtype=np.float64))


def size(num_factors: int, num_latents: int) -> float:
    """S = K / L: 1 for as many latents as factors, smaller for larger representations."""
    return num_factors / num_latents


def dci_es_from_codes(
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    depths: Sequence[int] = DEPTHS,
    num_trees: int = NUM_TREES,
    seed: int = 0,
    refit: bool = False,
    jobs: int = 1,
) -> dict[str, float | np.ndarray]:
    """``{"explicitness", "size", "per_factor" [K], "losses" [K, G]}`` from train and test
    codes ``[N, D]`` and factor classes ``[N, K]``; factors with one class are left out of E."""
    if list(depths) != sorted(set(depths)) or len(depths) < 2:
        raise ValueError(f"DCI-ES depths must increase, at least two: {list(depths)}")
    losses = loss_capacity_curves(
        codes, factors, codes_test, factors_test, depths, num_trees, seed, refit, jobs
    )
    classes = np.array([len(np.unique(column)) for column in factors.T])
    varied = classes > 1
    per_factor = np.full(factors.shape[1], np.nan)
    per_factor[varied] = explicitness(losses[varied], depths, 1.0 - 1.0 / classes[varied])
    return {
        "explicitness": float(np.mean(per_factor[varied])) if varied.any() else 0.0,
        "size": size(factors.shape[1], codes.shape[1]),
        "per_factor": per_factor,
        "losses": losses,
    }
