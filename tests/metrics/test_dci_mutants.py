"""DCI against disentanglement_lib's formulas, the reference estimator's seed, and
dci_score's defaults (the protocol's 10,000 / 5,000 codes and the ``hist`` estimator)."""

import numpy as np
import pytest
import scipy.stats

import vaelab.metrics.dci as dci
from tests.metrics.toy import ToySource, identity_encoder, mixing_encoder
from vaelab.metrics.codes import sample_codes
from vaelab.metrics.dci import (
    completeness,
    dci_from_codes,
    dci_score,
    disentanglement,
    entropy,
    importance_matrix,
)


def lib_disentanglement(r: np.ndarray) -> float:
    """disentanglement_lib's dci.disentanglement, verbatim up to names."""
    per_code = 1.0 - scipy.stats.entropy(r.T + 1e-11, base=r.shape[1])
    weights = np.ones_like(r) if r.sum() == 0.0 else r
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def lib_completeness(r: np.ndarray) -> float:
    """disentanglement_lib's dci.completeness, verbatim up to names."""
    per_factor = 1.0 - scipy.stats.entropy(r + 1e-11, base=r.shape[0])
    weights = np.ones_like(r) if r.sum() == 0.0 else r
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def hand_matrices() -> list[np.ndarray]:
    """Importance matrices [D, K] with exact zeros (where the 1e-11 smoothing shows)."""
    rng = np.random.default_rng(0)
    sparse = rng.uniform(size=(5, 3)) * (rng.uniform(size=(5, 3)) > 0.5)
    sparse[0, 0] = 1.0  # no empty column
    return [
        np.eye(3),
        np.array([[0.5, 0.0], [0.5, 0.0], [0.0, 1.0]]),
        np.array([[0.6, 0.0], [0.1, 0.1]]),
        sparse / sparse.sum(axis=0),
        np.zeros((3, 2)),  # nothing important: uniform weights, as the reference
    ]


def test_entropy_counts_zero_probabilities_as_zero_like_scipy():
    p = np.array([[1.0, 0.0, 0.5], [0.0, 0.0, 0.5], [3.0, 1.0, 0.0]])
    for axis in (0, 1):
        expected = scipy.stats.entropy(p if axis == 0 else p.T, base=3)
        np.testing.assert_allclose(entropy(p, base=3, axis=axis), expected, rtol=1e-12)
    assert entropy(np.array([1.0, 0.0]), base=2, axis=0) == 0.0


@pytest.mark.parametrize("r", hand_matrices())
def test_d_and_c_are_disentanglement_libs_to_rounding(r):
    """Same smoothing (+1e-11) as the reference: an exactly sparse row is not quite 1."""
    assert disentanglement(r) == pytest.approx(lib_disentanglement(r), rel=1e-13, abs=0)
    assert completeness(r) == pytest.approx(lib_completeness(r), rel=1e-13, abs=0)


def tied_codes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 3-class factor read by two identical latents (the reference splits the tie at
    random, so its importances and C depend on the seed), a binary one by a third."""
    factors = np.stack([rng.integers(0, 3, n), rng.integers(0, 2, n)], 1)
    z = factors + 0.2 * rng.normal(size=(n, 2))
    return np.stack([z[:, 0], z[:, 0], z[:, 1]], 1), factors


@pytest.fixture(scope="module")
def tied():
    rng = np.random.default_rng(0)
    return (*tied_codes(200, rng), *tied_codes(100, rng))


def test_reference_estimator_is_reproducible_and_follows_the_seed(tied):
    a = dci_from_codes(*tied, estimator="sklearn", seed=2)
    assert dci_from_codes(*tied, estimator="sklearn", seed=2) == a
    b = dci_from_codes(*tied, estimator="sklearn", seed=0)
    assert abs(a["completeness"] - b["completeness"]) > 1e-3  # the seed reached the trees


def test_suite_and_score_functions_default_to_the_same_seed(tied):
    """evaluate_disentanglement calls importance_matrix, dci_score dci_from_codes, both
    without a seed: the same codes must score the same."""
    importance, acc_train, acc_test = importance_matrix(*tied, "sklearn")
    direct = dci_from_codes(*tied, estimator="sklearn")
    assert direct == {
        "disentanglement": disentanglement(importance),
        "completeness": completeness(importance),
        "informativeness_train": acc_train,
        "informativeness_test": acc_test,
    }


def test_dci_score_defaults_to_the_hist_estimator():
    source, encode = ToySource(), mixing_encoder()
    rng = np.random.default_rng(5)
    x, y = sample_codes(source, encode, 300, rng)
    x_test, y_test = sample_codes(source, encode, 200, rng)
    expected = dci_from_codes(x, y, x_test, y_test, "hist")
    assert dci_score(source, encode, 5, 300, 200) == expected


def test_dci_score_draws_the_protocols_10000_train_and_5000_test_codes(monkeypatch):
    sizes = []

    def fewer_codes(source, encode, n, rng):
        sizes.append(n)
        return sample_codes(source, encode, n // 50, rng)  # keep the fit fast

    monkeypatch.setattr(dci, "sample_codes", fewer_codes)
    scores = dci_score(ToySource(), identity_encoder)
    assert sizes == [10_000, 5_000]
    assert scores["informativeness_test"] == pytest.approx(1.0)
