"""The scores of one draw of codes beyond the toy known answers: SAP's classifier and its
edges, the bins MIG and modularity are given, DCI's weighting, importances, boosting schedule
and edges, the settings passed on."""

import warnings

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from tests.metrics.toy import ToySource, identity_encoder, mixing_encoder
from vaelab.metrics.classifiers import Fit, _hist_model, fit_one
from vaelab.metrics.codes import DirectCodes, sample_codes
from vaelab.metrics.dci import (
    completeness,
    dci_from_codes,
    dci_score,
    disentanglement,
    entropy,
    importance_matrix,
)
from vaelab.metrics.mig import mig_from_codes, mig_from_mi, mig_score
from vaelab.metrics.modularity import (
    explicitness_from_codes,
    macro_auc,
    modularity_explicitness_score,
    modularity_from_codes,
    modularity_from_mi,
)
from vaelab.metrics.sap import sap_from_codes, sap_matrix, sap_score
from vaelab.metrics.suite import evaluate_disentanglement
from vaelab.metrics.utils import (
    discrete_entropy,
    discrete_mutual_info,
    discretize,
    standardize,
)


def reference_sap_matrix(codes, factors, codes_test, factors_test) -> np.ndarray:
    """disentanglement_lib's _compute_score_matrix: svm.LinearSVC(C=0.01,
    class_weight="balanced") on each latent alone, test accuracy."""
    scores = np.zeros((codes.shape[1], factors.shape[1]))
    for i in range(codes.shape[1]):
        for j in range(factors.shape[1]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                svm = LinearSVC(C=0.01, class_weight="balanced").fit(codes[:, [i]], factors[:, j])
            scores[i, j] = np.mean(svm.predict(codes_test[:, [i]]) == factors_test[:, j])
    return scores


def test_sap_uses_the_references_regularised_balanced_svm():
    """Four classes 0.1 apart, and an imbalanced (80/20) binary factor: C = 0.01 and the
    balanced class weights each change these accuracies (C = 1 gets ~0.89 on the first)."""
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, 4, 3000), (rng.random(3000) < 0.8).astype(int)], 1)
    codes = np.stack([factors[:, 0] * 0.1 + 0.03 * rng.normal(size=3000),
                      factors[:, 1] * 0.2], 1)  # fmt: skip
    train, test = slice(0, 2000), slice(2000, None)
    got = sap_matrix(codes[train], factors[train], codes[test], factors[test])
    want = reference_sap_matrix(codes[train], factors[train], codes[test], factors[test])
    np.testing.assert_array_equal(got, want)
    assert got[0, 0] < 0.7 and got[1, 1] == 1.0


def test_sap_scores_a_constant_factor_by_its_one_class_and_goes_on():
    """Factor 0 is constant in training: every latent predicts that class (right on 3 of 4
    test rows); factor 1 (binary, learnable from latent 0) is still scored after it."""
    factors = np.stack([np.zeros(40, int), np.arange(40) % 2], 1)
    codes = np.stack([factors[:, 1] * 1.0, np.zeros(40)], 1)
    factors_test = np.array([[0, 0], [0, 1], [0, 0], [1, 1]])
    codes_test = np.stack([factors_test[:, 1] * 1.0, np.zeros(4)], 1)
    scores = sap_matrix(codes, factors, codes_test, factors_test)
    np.testing.assert_array_equal(scores[:, 0], [0.75, 0.75])
    assert scores[0, 1] == 1.0  # two classes are learned, not taken for one


def test_mig_and_modularity_bin_the_codes_as_asked():
    codes, factors = sample_codes(ToySource(), mixing_encoder(), 600, np.random.default_rng(0))
    for bins in (3, 7):
        mi = discrete_mutual_info(discretize(codes, bins), factors)
        assert mig_from_codes(codes, factors, num_bins=bins) == mig_from_mi(
            mi, discrete_entropy(factors)
        )
        assert modularity_from_codes(codes, factors, num_bins=bins) == modularity_from_mi(mi)
    assert mig_from_codes(codes, factors, num_bins=3) != mig_from_codes(codes, factors)


def test_dci_returns_its_four_values():
    rng = np.random.default_rng(0)
    train = sample_codes(ToySource(), identity_encoder, 300, rng)
    test = sample_codes(ToySource(), identity_encoder, 200, rng)
    result = dci_from_codes(*train, *test)
    assert set(result) == {
        "disentanglement", "completeness", "informativeness_train", "informativeness_test",
    }  # fmt: skip
    assert result["informativeness_train"] == 1.0


def test_sample_codes_encodes_batch_size_images_at_a_time():
    sizes: list[int] = []

    def encode(x):
        sizes.append(len(x))
        return identity_encoder(x)

    sample_codes(ToySource(), encode, 30, np.random.default_rng(0), batch_size=7)
    assert max(sizes) == 7


def test_the_suite_seed_defaults_to_zero():
    def values(**seed):
        scores = evaluate_disentanglement(
            ToySource(), mixing_encoder(), metrics=["mig"], num_train=300, num_test=100, **seed
        )
        return {k: v for k, v in scores.items() if "/time/" not in k}

    assert values() == values(seed=0) != values(seed=1)


def test_dci_weights_codes_and_factors_by_their_importance():
    """Unequal row and column sums (total 0.8): D and C are the importance-weighted means,
    not plain ones; with no importance at all both are 0 (uniform weights, uniform rows)."""
    r = np.array([[0.6, 0.0], [0.1, 0.1]])
    assert disentanglement(r) == pytest.approx(0.6 / 0.8 * 1 + 0.2 / 0.8 * 0, abs=1e-6)
    c_factor0 = 1 - entropy(np.array([[0.6], [0.1]]) + 1e-11, base=2, axis=0)[0]
    assert completeness(r) == pytest.approx(0.7 / 0.8 * c_factor0 + 0.1 / 0.8 * 1, abs=1e-6)
    assert disentanglement(np.zeros((3, 2))) == pytest.approx(0.0, abs=1e-9)
    assert completeness(np.zeros((3, 2))) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("estimator", ["hist", "sklearn"])
def test_importances_sum_to_one_or_are_zero_without_a_split(estimator: str):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    codes = np.stack([labels + 0.1 * rng.normal(size=200), rng.normal(size=200)], 1)
    importance = fit_one(Fit(estimator, codes, labels, importance=True)).importance
    assert importance.sum() == pytest.approx(1.0) and importance[0] > 0.9
    flat = fit_one(Fit(estimator, np.zeros((200, 2)), labels, importance=True)).importance
    np.testing.assert_array_equal(flat, [0.0, 0.0])


def test_hist_boosts_with_the_references_schedule():
    """disentanglement_lib's GradientBoostingClassifier() defaults: 100 rounds, learning
    rate 0.1, depth 3, leaves of one sample, no regularisation, no early stopping."""
    ref = GradientBoostingClassifier().get_params()
    hist = _hist_model(0).get_params()
    assert (hist["max_iter"], hist["learning_rate"], hist["max_depth"]) == (
        ref["n_estimators"], ref["learning_rate"], ref["max_depth"],
    )  # fmt: skip
    assert hist["min_samples_leaf"] == ref["min_samples_leaf"] == 1
    assert hist["max_leaf_nodes"] is None and hist["l2_regularization"] == 0.0
    assert hist["early_stopping"] is False and ref["n_iter_no_change"] is None


def test_dci_learns_binary_factors_and_scores_constant_ones_by_their_class():
    rng = np.random.default_rng(0)
    binary = rng.integers(0, 2, 300)
    factors = np.stack([binary, np.zeros(300, int)], 1)  # factor 1 constant in training
    codes = np.stack([binary + 0.05 * rng.normal(size=300), rng.normal(size=300)], 1)
    test = np.stack([binary[:4], [0, 0, 0, 1]], 1)
    importance, acc_train, acc_test = importance_matrix(codes, factors, codes[:4], test)
    assert importance[0, 0] > 0.9 and importance[:, 1].tolist() == [0.0, 0.0]
    assert acc_train == 1.0  # both factors: the binary one learned, the constant one by its class
    assert acc_test == pytest.approx((1.0 + 0.75) / 2)
    # one training row: every factor constant, no classifier fitted, each scored by its class
    one, acc_train, acc_test = importance_matrix(codes[:1], factors[:1], codes[:4], test)
    assert not one.any() and acc_train == 1.0
    assert acc_test == pytest.approx((np.mean(test[:, 0] == binary[0]) + 0.75) / 2)


def test_mig_of_one_latent_is_its_whole_mi_and_a_constant_factor_scores_zero():
    entropy_ = np.array([np.log(2), 0.0])  # factor 1 constant: no gap to normalise
    assert mig_from_mi(np.array([[0.3, 0.0]]), entropy_) == pytest.approx(0.3 / np.log(2) / 2)
    two = np.array([[0.3, 0.0], [0.1, 0.0]])
    assert mig_from_mi(two, entropy_) == pytest.approx((0.3 - 0.1) / np.log(2) / 2)


def test_explicitness_scores_binary_factors_after_a_constant_one():
    rng = np.random.default_rng(0)
    binary = rng.integers(0, 2, 200)
    factors = np.stack([np.zeros(200, int), binary], 1)  # factor 0 constant: skipped
    codes = np.stack([binary + 0.1 * rng.normal(size=200), rng.normal(size=200)], 1)
    result = explicitness_from_codes(codes, factors, codes, factors)
    assert result == {"train": 1.0, "test": 1.0}


def test_macro_auc_skips_classes_without_both_labels():
    y, proba = np.array([0, 0, 1, 1]), np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    assert macro_auc(y, proba, np.array([0, 1])) == 1.0
    # class 2 never occurs and class 0 is all of y: no AUC is defined
    assert macro_auc(y, np.c_[proba, np.zeros(4)], np.array([0, 1, 2])) == 1.0
    assert np.isnan(macro_auc(np.zeros(4, int), proba, np.array([0, 1])))
    single = np.array([0, 1, 1, 1])  # class 0 once: still both labels, still scored
    ranked = np.array([[0.1, 0.1], [0.5, 0.2], [0.6, 0.7], [0.7, 0.6]])  # class 0: AUC 0
    assert macro_auc(single, ranked, np.array([0, 1])) == 0.5


def test_standardize_uses_the_training_codes_mean_and_std_per_latent():
    train = np.array([[0.0, 10.0, 5.0, 1.0], [2.0, 30.0, 5.0, 2.0]])  # stds 1, 10, 0, 0.5
    test = np.array([[4.0, 0.0, 7.0, 1.5]])
    z_train, z_test = standardize(train, test)
    np.testing.assert_array_equal(z_train, [[-1.0, -1.0, 0.0, -1.0], [1.0, 1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(z_test, [[3.0, -2.0, 2.0, 0.0]])  # a constant latent: shifted
    only, none = standardize(train)
    np.testing.assert_array_equal(only, z_train)
    assert none is None


def test_sap_is_the_gap_between_the_two_best_latents():
    """Three latents: the factor itself, the factor under heavy noise, pure noise; SAP is
    best minus second best (not minus the worst)."""
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 2, (600, 1))
    f = factors[:, 0].astype(float)
    codes = np.stack([f, f + 1.5 * rng.normal(size=600), rng.normal(size=600)], 1)
    train, test = slice(0, 400), slice(400, None)
    scores = sap_matrix(codes[train], factors[train], codes[test], factors[test])[:, 0]
    assert scores[0] > scores[1] > scores[2]
    gap = sap_from_codes(codes[train], factors[train], codes[test], factors[test])
    assert gap == pytest.approx(scores[0] - scores[1])


def test_dci_goes_on_after_a_constant_factor():
    rng = np.random.default_rng(0)
    binary = rng.integers(0, 2, 300)
    factors = np.stack([np.zeros(300, int), binary], 1)  # the constant factor first
    codes = np.stack([rng.normal(size=300), binary + 0.05 * rng.normal(size=300)], 1)
    importance, acc_train, _ = importance_matrix(codes, factors, codes, factors)
    assert importance[1, 1] > 0.9 and acc_train == 1.0


def test_direct_codes_encode_indices_of_any_shape_row_by_row():
    codes = DirectCodes(ToySource(), identity_encoder, 4)
    flat = codes(np.array([3, 7, 11, 50, 2, 9]))
    np.testing.assert_array_equal(codes(np.array([[3, 7, 11], [50, 2, 9]])), flat)


def test_each_score_function_on_its_own_scores_its_seeded_draw_of_codes():
    """mig_score, sap_score, dci_score and modularity_explicitness_score: the training codes
    and then the test codes drawn from the seed's generator, scored by the code functions."""
    source, encode = ToySource(), mixing_encoder()

    def draws(seed, n, m=None):
        rng = np.random.default_rng(seed)
        train = sample_codes(source, encode, n, rng)
        return (*train, *sample_codes(source, encode, m, rng)) if m else train

    assert mig_score(source, encode, 3, num_train=300) == mig_from_codes(*draws(3, 300))
    assert mig_score(source, encode, 3, 300, num_bins=4) == mig_from_codes(*draws(3, 300), 4)
    x, y, x_test, y_test = draws(5, 300, 200)
    assert sap_score(source, encode, 5, 300, 200) == sap_from_codes(x, y, x_test, y_test)
    assert dci_score(source, encode, 5, 300, 200, "sklearn") == dci_from_codes(
        x, y, x_test, y_test, "sklearn"
    )
    explicit = explicitness_from_codes(x, y, x_test, y_test)
    assert modularity_explicitness_score(source, encode, 5, 300, 200, num_bins=6) == {
        "modularity": modularity_from_codes(x, y, 6),
        "explicitness_train": explicit["train"],
        "explicitness_test": explicit["test"],
    }
    assert mig_score(source, encode, 4, 300) != mig_score(source, encode, 3, 300)
