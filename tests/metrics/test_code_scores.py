"""The scores of one draw of codes beyond the toy known answers: SAP's classifier and its
edges, the bins MIG and modularity are given, DCI's result keys, the settings passed on."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from tests.metrics.toy import ToySource, identity_encoder, mixing_encoder
from vaelab.metrics.codes import sample_codes
from vaelab.metrics.dci import dci_from_codes
from vaelab.metrics.mig import mig_from_codes, mig_from_mi
from vaelab.metrics.modularity import modularity_from_codes, modularity_from_mi
from vaelab.metrics.sap import sap_matrix
from vaelab.metrics.suite import evaluate_disentanglement
from vaelab.metrics.utils import discrete_entropy, discrete_mutual_info, discretize


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
