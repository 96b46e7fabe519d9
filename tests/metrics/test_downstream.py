"""Downstream tasks and sample efficiency on known answers: a perfect, a rotated, a noise and
a duplicated code, a factor with one class in training, the reference classifiers, and the
suite's draws."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold

from tests.metrics.toy import (
    ToySource,
    duplicate_encoder,
    identity_encoder,
    mixing_encoder,
    noise_encoder,
)
from vaelab.metrics.codes import DirectCodes
from vaelab.metrics.downstream import (
    DownstreamDraw,
    accuracies,
    downstream_from_draw,
    draw_downstream,
)
from vaelab.metrics.suite import draw_suite, make_config, needed_indices

SIZES = (10, 100, 2_000)


def scores(encode, sizes=SIZES, seed=0, num_test=1_000):
    source = ToySource()
    draw = draw_downstream(source, np.random.default_rng(seed), sizes, num_test)
    return downstream_from_draw(draw, DirectCodes(source, encode), source)


def test_a_perfect_code_is_predicted_exactly_and_noise_at_chance():
    perfect = scores(identity_encoder)
    assert perfect["downstream_gbt_2000"] == 1.0 and perfect["downstream_lr_2000"] > 0.99
    assert perfect["downstream_gbt_100"] == 1.0
    noise = scores(noise_encoder())
    chance = np.mean([1 / 4, 1 / 5, 1 / 6])
    for model in ("lr", "gbt"):
        assert noise[f"downstream_{model}_2000"] == pytest.approx(chance, abs=0.05), model
    # more training points help a code that holds the factors, not one that does not
    assert perfect["downstream_lr_10"] < perfect["downstream_lr_2000"]
    assert set(perfect) == {f"downstream_{m}_{n}" for m in ("lr", "gbt") for n in SIZES}


def test_sample_efficiency_is_the_accuracy_at_100_over_10000():
    values = scores(mixing_encoder(), sizes=(100, 10_000), num_test=500)
    for model in ("lr", "gbt"):
        assert values[f"sample_efficiency_{model}"] == pytest.approx(
            values[f"downstream_{model}_100"] / values[f"downstream_{model}_10000"]
        )
    # linear in the factors: logistic regression needs few points, the trees more
    assert values["downstream_lr_10000"] > 0.95
    assert values["sample_efficiency_gbt"] < 1.0


def test_rotated_and_duplicated_codes_keep_what_a_classifier_can_read():
    rotated, duplicated = scores(mixing_encoder()), scores(duplicate_encoder)
    assert rotated["downstream_lr_2000"] > 0.95  # a rotation is still linear in the factors
    assert duplicated["downstream_gbt_2000"] > 0.9


def test_one_class_in_training_predicts_that_class():
    codes = np.arange(20.0).reshape(10, 2)
    factors = np.c_[np.zeros(10, int), np.arange(10) % 2]
    test = np.c_[np.array([0, 0, 1, 0]), np.array([0, 1, 0, 1])]
    for model in ("lr", "gbt"):
        train_acc, test_acc = accuracies(model, codes, factors, codes[:4], test)
        assert train_acc[0] == 1.0 and test_acc[0] == 0.75, model


def test_logistic_regression_is_the_cross_validated_one_on_standardised_codes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=(300, 1))
    codes = np.c_[y[:, 0] * 5.0 + rng.normal(size=300), rng.normal(size=300) * 100]
    _, got = accuracies("lr", codes[:200], y[:200], codes[200:], y[200:])
    mean, std = codes[:200].mean(0), codes[:200].std(0)
    model = LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5), scoring="accuracy")
    model.fit((codes[:200] - mean) / std, y[:200, 0])
    want = np.mean(model.predict((codes[200:] - mean) / std) == y[200:, 0])
    assert got[0] == want
    for estimator in ("xgboost", "rf", "lr"):  # rf and lr are models, not boosted trees
        with pytest.raises(ValueError, match=f"unknown tree estimator '{estimator}'"):
            accuracies("gbt", codes, y, codes, y, estimator=estimator)


def test_the_suite_draws_each_size_then_its_test_set_from_its_own_stream():
    source, cfg = ToySource(), make_config(num_test=50, downstream_sizes=[10, 100])
    draws = draw_suite(source, 4, ["downstream"], cfg)
    draw = draws["downstream"]
    assert draw.sizes == (10, 100) and [len(t) for t in draw.test] == [50, 50]
    stream = np.random.SeedSequence(4).spawn(10)[9]  # "codes" first, then METRICS in order
    again = draw_downstream(source, np.random.default_rng(stream), (10, 100), 50)
    for a, b in zip((*draw.train, *draw.test), (*again.train, *again.test), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(needed_indices(source, draws)) == 10 + 100 + 2 * 50


def test_each_models_score_is_its_own_classifiers_accuracy():
    source = ToySource()
    draw = draw_downstream(source, np.random.default_rng(2), (100,), 300)
    codes = DirectCodes(source, mixing_encoder())
    x, x_test = codes(source.index_of(draw.train[0])), codes(source.index_of(draw.test[0]))
    got = downstream_from_draw(draw, codes, source)
    for model in ("lr", "gbt"):
        _, acc = accuracies(model, x, draw.train[0], x_test, draw.test[0])
        assert got[f"downstream_{model}_100"] == acc.mean(), model
    assert got["downstream_lr_100"] != got["downstream_gbt_100"]
    # the reference trees when asked for them
    _, trees = accuracies("gbt", x, draw.train[0], x_test, draw.test[0], estimator="sklearn")
    want = [
        np.mean(
            GradientBoostingClassifier(random_state=0).fit(x, draw.train[0][:, j]).predict(x_test)
            == draw.test[0][:, j]
        )
        for j in range(3)
    ]
    np.testing.assert_array_equal(trees, want)


def test_binary_factors_are_learned_and_the_efficiency_is_a_ratio_below_one():
    codes = np.linspace(-1, 1, 40)[:, None]
    factors = np.c_[(codes[:, 0] > 0).astype(int), np.arange(40) % 3]
    for model in ("lr", "gbt"):
        train_acc, _ = accuracies(model, codes, factors, codes, factors)
        assert train_acc[0] == 1.0, model  # two classes: a classifier, not a constant
    values = scores(noise_encoder(), sizes=(100, 10_000), num_test=500)
    for model in ("lr", "gbt"):
        full = values[f"downstream_{model}_10000"]
        assert full < 0.5  # chance: the ratio is not the product
        assert values[f"sample_efficiency_{model}"] == values[f"downstream_{model}_100"] / full


def test_logistic_regression_needs_five_points_for_its_five_folds():
    """Five training points of two classes: cross-validated and fitted (every fold's training
    part holds both classes); four cannot be cut into five folds: the first class stands."""
    codes = np.array([[-2.0], [-1.0], [1.0], [2.0], [3.0]])
    factors = np.array([[0], [0], [1], [1], [1]])
    test_codes = np.linspace(-3, 3, 61)[:, None]
    test = (test_codes > 0).astype(int)
    _, fitted = accuracies("lr", codes, factors, test_codes, test)
    assert fitted[0] > 0.95  # a classifier: near every test point right
    _, constant = accuracies("lr", codes[1:], factors[1:], test_codes, test)
    assert constant[0] == np.mean(test[:, 0] == factors[1, 0])  # the class of its first row


def test_no_accuracy_at_10000_gives_an_efficiency_of_zero_not_a_division_by_zero():
    """Training sets that hold one class of a factor, test sets another: accuracy 0 at every
    size, and the efficiency 0/0 is reported as 0."""
    source = ToySource()
    one_class = [np.zeros((n, 3), dtype=int) for n in (100, 10_000)]
    other = [np.full((50, 3), 1) for _ in range(2)]
    draw = DownstreamDraw((100, 10_000), tuple(one_class), tuple(other))
    values = downstream_from_draw(draw, DirectCodes(source, identity_encoder), source)
    for model in ("lr", "gbt"):
        assert values[f"downstream_{model}_10000"] == 0.0
        assert values[f"sample_efficiency_{model}"] == 0.0


def test_the_suite_setting_chooses_the_downstream_trees():
    """``downstream_estimator=sklearn`` reaches the trees: the reference classifier's
    accuracies, not hist's, on a code where the two differ."""
    source = ToySource()
    draw = draw_downstream(source, np.random.default_rng(7), (100,), 300)
    codes = DirectCodes(source, mixing_encoder())
    x, x_test = codes(source.index_of(draw.train[0])), codes(source.index_of(draw.test[0]))
    per_estimator = {
        estimator: downstream_from_draw(draw, codes, source, estimator)["downstream_gbt_100"]
        for estimator in ("hist", "sklearn")
    }
    for estimator, got in per_estimator.items():
        _, want = accuracies("gbt", x, draw.train[0], x_test, draw.test[0], estimator)
        assert got == want.mean(), estimator
    assert per_estimator["hist"] != per_estimator["sklearn"]
