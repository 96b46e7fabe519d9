"""Fairness on known answers: total variation by hand, a code blind to the sensitive factor
(0), a classifier that reads the sensitive factor (by hand), the draws of the suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.metrics.toy import (
    ToySource,
    factors_of,
    identity_encoder,
    mixing_encoder,
    noise_encoder,
)
from vaelab.metrics.classifiers import tree_classifier
from vaelab.metrics.codes import DirectCodes
from vaelab.metrics.fairness import (
    FairnessDraw,
    draw_fairness,
    fairness_from_draw,
    inter_group_fairness,
)
from vaelab.metrics.suite import draw_suite, make_config, needed_indices


def test_total_variation_by_hand():
    # predictions (rows) for two sensitive values (columns): 30/10 and 10/30 of 40 each
    mean, worst = inter_group_fairness(np.array([[30, 10], [10, 30]]))
    # overall (0.5, 0.5); each group's distance ½(|0.75 - 0.5| + |0.25 - 0.5|) = 0.25
    assert (mean, worst) == (pytest.approx(0.25), pytest.approx(0.25))
    # unequal groups: 10 vs 30 images; the mean weighs them by their counts
    mean, worst = inter_group_fairness(np.array([[10, 0], [0, 30]]))
    # overall (0.25, 0.75): group 0 is at distance 0.75, group 1 at 0.25
    assert worst == pytest.approx(0.75) and mean == pytest.approx((10 * 0.75 + 30 * 0.25) / 40)
    assert inter_group_fairness(np.array([[5, 5, 5], [1, 1, 1]])) == (0.0, 0.0)


def fairness(encode, seed=0, per_class=200):
    source = ToySource()
    draw = draw_fairness(source, np.random.default_rng(seed), 2_000, per_class)
    return fairness_from_draw(draw, DirectCodes(source, encode), source)


def test_a_disentangled_code_is_fair_and_noise_is_too():
    # each factor's prediction reads its own latent only: setting another factor changes nothing
    assert fairness(identity_encoder) == {"fairness": 0.0, "fairness_max": 0.0}
    # predictions independent of every factor: only sampling noise between the groups
    noisy = fairness(noise_encoder(seed=1))
    assert noisy["fairness"] < 0.15


def test_a_code_that_merges_two_factors_leaks_one_into_the_others_prediction():
    merged = fairness(sum_encoder)
    assert 0.1 < merged["fairness"] <= merged["fairness_max"] <= 1.0
    # a rotation keeps every factor recoverable: a perfect classifier is fair whatever the code
    assert fairness(mixing_encoder())["fairness"] < 0.02


def test_the_draws_and_the_images_they_read():
    source = ToySource()
    draw = draw_fairness(source, np.random.default_rng(0), 50, 7)
    assert draw.train.shape == (50, 3) and sorted(draw.pairs) == [
        (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1),
    ]  # fmt: skip
    copies = draw.intervened(source.factor_sizes)[0, 2]  # v_2 set to 0..5 on the same rows
    assert copies.shape == (6, 7, 3)
    np.testing.assert_array_equal(copies[:, :, 2], np.repeat(np.arange(6)[:, None], 7, 1))
    np.testing.assert_array_equal(copies[3, :, :2], draw.pairs[0, 2][:, :2])
    cfg = make_config(num_train=50, fairness_per_class=7)
    suite = draw_suite(source, 0, ["fairness"], cfg)["fairness"]
    stream = np.random.SeedSequence(0).spawn(11)[10]  # "codes", then METRICS in order
    again = draw_fairness(source, np.random.default_rng(stream), 50, 7)
    np.testing.assert_array_equal(suite.train, again.train)
    # 50 training rows, and per pair (i, j) 7 rows for each of v_j's values
    per_pair = sum(7 * source.factor_sizes[j] for i in range(3) for j in range(3) if i != j)
    assert len(needed_indices(source, {"fairness": suite})) == 50 + per_pair


class BinaryToySource(ToySource):
    """The toy images with a binary first factor."""

    factor_sizes = (2, 3, 4)


def sum_encoder(x: torch.Tensor) -> torch.Tensor:
    """One latent holds a + b: predicting a from it moves with b."""
    v = factors_of(x)
    return torch.stack([v[:, 0] + v[:, 1], v[:, 2]], 1)


def reference_fairness(draw, codes, source) -> dict[str, float]:
    """The definition, one sensitive value at a time: p_c(a) = the fraction of rows with
    v_j = c predicted as a, p̄ their mean weighted by rows, TV_c = ½ Σ_a |p_c(a) − p̄(a)|."""
    sizes, k = source.factor_sizes, len(source.factor_sizes)
    x = codes(source.index_of(draw.train))
    mean_tv, max_tv = np.zeros((k, k)), np.zeros((k, k))
    for i in range(k):
        if len(set(draw.train[:, i].tolist())) == 1:
            continue  # one class seen: one prediction for every row, TV 0
        model = tree_classifier("hist").fit(x, draw.train[:, i])
        for j in range(k):
            if i == j:
                continue
            distributions, weights = [], []
            for c in range(sizes[j]):
                rows = draw.pairs[i, j].copy()
                rows[:, j] = c
                predicted = model.predict(codes(source.index_of(rows)))
                distributions.append([np.mean(predicted == a) for a in range(sizes[i])])
                weights.append(len(rows))
            overall = np.average(distributions, axis=0, weights=weights)
            tv = [0.5 * np.abs(np.subtract(d, overall)).sum() for d in distributions]
            mean_tv[i, j], max_tv[i, j] = np.average(tv, weights=weights), max(tv)
    off = ~np.eye(k, dtype=bool)
    return {"fairness": mean_tv[off].mean(), "fairness_max": max_tv[off].mean()}


def test_equals_the_definition_computed_one_value_at_a_time():
    """Against a slow reference: a binary target factor (scored, not skipped as one class),
    and a draw whose first factor has one class in training (its pairs are 0, the others
    are still scored)."""
    source = BinaryToySource()
    codes = DirectCodes(source, sum_encoder)
    draw = draw_fairness(source, np.random.default_rng(3), 600, 20)
    got = fairness_from_draw(draw, codes, source)
    want = reference_fairness(draw, codes, source)
    assert got == pytest.approx(want, abs=1e-12) and got["fairness"] > 0.05
    one_class = FairnessDraw(np.c_[np.zeros(600, int), draw.train[:, 1:]], draw.pairs)
    got = fairness_from_draw(one_class, codes, source)
    assert got == pytest.approx(reference_fairness(one_class, codes, source), abs=1e-12)
    assert got["fairness"] > 0.0  # targets 1 and 2 still scored after target 0's skip
    # three rows per pair: some sensitive values see classes that others never do
    few = draw_fairness(source, np.random.default_rng(4), 600, 3)
    got = fairness_from_draw(few, codes, source)
    assert got == pytest.approx(reference_fairness(few, codes, source), abs=1e-12)


def test_the_images_read_are_the_training_rows_then_each_pairs_intervened_rows():
    source = ToySource()
    draw = draw_fairness(source, np.random.default_rng(1), 5, 2)
    got = needed_indices(source, {"fairness": draw})
    intervened = draw.intervened(source.factor_sizes)
    want = [source.index_of(draw.train)]
    want += [source.index_of(intervened[pair].reshape(-1, 3)) for pair in draw.pairs]
    np.testing.assert_array_equal(got, np.concatenate(want))
