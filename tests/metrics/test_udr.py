"""UDR (vaelab.metrics.udr) on known answers: relative strength by hand, copies of one model
up to permutation and sign, unrelated and rotated models, the KL filter, the median."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from vaelab.metrics.udr import kl_per_latent, relative_strength, similarity, standardised, udr

# Two latents whose ranks are exactly uncorrelated (centred ranks: (-1.5, -.5, .5, 1.5) and
# (-.5, 1.5, -1.5, .5), dot product 0): R of a copy is then exactly a permutation matrix.
ORTHOGONAL = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 1.0], [4.0, 3.0]])
ACTIVE = np.ones(2)


@pytest.mark.parametrize(
    ("r", "expected"),
    [
        (np.eye(3), 1.0),
        ([[1, 1, 0], [1, 1, 0], [0, 0, 1]], 2 / 3),  # columns ½, ½, 1; rows the same
        (np.ones((3, 3)), 1 / 3),  # max² / sum = 1/3 everywhere
        (np.zeros((3, 3)), 0.0),  # 0/0 counts 0
        ([[0.5, 0.0], [0.0, 0.0]], 0.25),  # columns 0.5, 0 and rows 0.5, 0
        # columns 0.36/0.6, 0.04/0.2, 0/0 -> mean of 0.6, 0.2, 0; the row 0.36/0.8 = 0.45
        ([[0.6, 0.2, 0.0]], ((0.6 + 0.2 + 0.0) / 3 + 0.45) / 2),
    ],
)
def test_relative_strength_by_hand(r, expected):
    assert relative_strength(np.asarray(r, dtype=float)) == pytest.approx(expected, abs=1e-12)


def test_an_empty_matrix_scores_zero():
    assert relative_strength(np.zeros((0, 3))) == 0.0


def test_standardised_codes_and_inactive_latents():
    codes = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]])
    scaled = standardised(codes, np.array([True, True, False]))
    np.testing.assert_allclose(scaled[:, 0], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])  # σ² = 8/3
    np.testing.assert_array_equal(scaled[:, 1], 0.0)  # constant: 0, not a division by 0
    np.testing.assert_array_equal(scaled[:, 2], 0.0)  # inactive: zeroed


def test_dead_latents_raise_no_warnings():
    """0/0 in the relative strength and constant latents in Spearman's ρ are expected (dead
    latents), so they must not print numpy warnings into a user's log."""
    rng = np.random.default_rng(6)
    codes = np.c_[rng.normal(size=(100, 2)), np.zeros(100)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert relative_strength(np.zeros((2, 2))) == 0.0
        r = similarity(codes, codes, "spearman")
        np.testing.assert_allclose(r[2], 0.0)
        udr([codes, codes], [np.ones(3)] * 2, "spearman")


def test_kl_per_latent_by_hand():
    mu = np.array([[0.0, 1.0, 2.0], [0.0, -1.0, 0.0]])
    logvar = np.array([[0.0, 0.0, np.log(2.0)], [0.0, 0.0, np.log(2.0)]])
    # ½ (μ² + σ² − log σ² − 1): 0; ½; ½ ((4 + 0)/2 + 2 − log 2 − 1)
    expected = [0.0, 0.5, 0.5 * (2.0 + 2.0 - np.log(2.0) - 1.0)]
    np.testing.assert_allclose(kl_per_latent(mu, logvar), expected, atol=1e-12)
    assert np.all(np.isinf(kl_per_latent(mu, None)))  # a deterministic code: all active


@pytest.mark.parametrize("method", ["lasso", "spearman"])
def test_copies_up_to_permutation_and_sign_agree(method):
    copy = ORTHOGONAL[:, ::-1] * np.array([-3.0, 0.5]) + 7.0  # swapped, one sign flipped
    result = udr([ORTHOGONAL, copy], [ACTIVE, ACTIVE], method)
    # spearman: R is the permutation matrix, 1; lasso shrinks the exact match to 1 − α = 0.9
    expected = 1.0 if method == "spearman" else 0.9
    np.testing.assert_allclose(result.scores, [expected, expected], atol=1e-6)
    a, b = standardised(ORTHOGONAL, ACTIVE), standardised(copy, ACTIVE)
    np.testing.assert_allclose(similarity(a, b, method), expected * np.eye(2)[::-1], atol=1e-6)


def test_lasso_finds_the_copy_among_correlated_latents():
    """With correlated latents an exact copy still gets 1 − α and the others 0 (the KKT
    bound |ρ| α ≤ α holds), so copies of a real, entangled model score 0.9 too."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2000, 4))
    codes = base @ np.array([[1, 0.8, 0, 0], [0, 0.6, 0.5, 0], [0, 0, 1, 0.3], [0, 0, 0, 1]])
    perm = [2, 0, 3, 1]
    result = udr([codes, -codes[:, perm], codes[:, perm] * 4], [np.ones(4)] * 3, "lasso")
    np.testing.assert_allclose(result.pairwise[~np.eye(3, dtype=bool)], 0.9, atol=1e-3)


@pytest.mark.parametrize(("method", "ceiling"), [("lasso", 1e-12), ("spearman", 0.05)])
def test_unrelated_models_score_near_zero(method, ceiling):
    rng = np.random.default_rng(1)
    codes = [rng.normal(size=(10_000, 6)) for _ in range(3)]
    result = udr(codes, [np.ones(6)] * 3, method)
    assert np.all(result.scores <= ceiling), result.scores


def test_a_rotation_that_mixes_latents_scores_below_a_copy():
    rng = np.random.default_rng(2)
    codes = rng.normal(size=(5000, 2))
    turn = np.array([[1.0, 1.0], [-1.0, 1.0]]) / np.sqrt(2.0)  # 45°: each latent splits in two
    rotated = udr([codes, codes @ turn], [ACTIVE, ACTIVE], "spearman").scores
    copied = udr([codes, codes[:, ::-1]], [ACTIVE, ACTIVE], "spearman").scores
    assert np.all(rotated < 0.6) and np.all(copied > 0.95), (rotated, copied)


def test_the_median_over_the_group():
    """Two copies and an unrelated model: pairs of copies score 0.9, pairs with the
    unrelated one 0, so the copies' medians are median(0.9, 0) = 0.45 and the other's 0."""
    rng = np.random.default_rng(3)
    codes = rng.normal(size=(5000, 3))
    models = [codes, codes[:, [1, 2, 0]], rng.normal(size=(5000, 3))]
    result = udr(models, [np.ones(3)] * 3, "lasso")
    np.testing.assert_allclose(result.scores, [0.45, 0.45, 0.0], atol=1e-3)
    assert np.isnan(np.diag(result.pairwise)).all()


def test_inactive_latents_are_left_out():
    """One informative latent beside pure noise (disentanglement_lib's KL test): counted,
    the noise makes the copies look unrelated; left out by its KL, they agree."""
    rng = np.random.default_rng(4)
    signal = rng.normal(size=(2000, 1))
    models = [np.hstack([signal, rng.normal(size=(2000, 4))]) for _ in range(2)]
    kl = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    kept = udr(models, [kl, kl], "lasso", kl_threshold=-1.0).scores
    filtered = udr(models, [kl, kl], "lasso").scores
    np.testing.assert_allclose(filtered, 0.9, atol=1e-3)
    assert np.all(kept < 0.3), kept
    assert udr(models, [kl, kl]).active[0].tolist() == [True, False, False, False, False]


def test_models_of_different_latent_counts():
    rng = np.random.default_rng(5)
    codes = standardised(rng.normal(size=(3000, 3)), np.ones(3))
    r = similarity(codes, codes[:, [2, 0]], "lasso")
    assert r.shape == (3, 2)
    np.testing.assert_allclose(r, [[0, 0.9], [0, 0], [0.9, 0]], atol=1e-3)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 or more models"):
        udr([ORTHOGONAL], [ACTIVE])
    with pytest.raises(ValueError, match="unknown similarity"):
        similarity(ORTHOGONAL, ORTHOGONAL, "pearson")


def test_the_threshold_and_alpha_are_the_ones_given():
    """A latent at exactly the threshold is inactive (it must exceed it); Lasso's α sets a
    copy's score to 1 − α."""
    rng = np.random.default_rng(7)
    codes = rng.normal(size=(3000, 2))
    kl = np.array([0.01, 0.02])
    assert udr([codes, codes], [kl, kl]).active[0].tolist() == [False, True]
    shrunk = udr([codes, codes], [np.ones(2)] * 2, "lasso", alpha=0.3).scores
    np.testing.assert_allclose(shrunk, 0.7, atol=1e-3)
