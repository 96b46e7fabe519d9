"""IRS on known answers: a perfect, a rotated, a noise and a duplicated code, constant latents,
a case computed by hand, and an independent loop over latents and factors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vaelab.metrics.irs import irs_from_codes, irs_matrix
from vaelab.metrics.utils import discretize


def grid(sizes=(4, 5, 6)) -> np.ndarray:
    """Every combination of the factor classes once, ``[prod(sizes), K]``."""
    return np.array(list(itertools.product(*(range(s) for s in sizes))))


def reference_irs(codes: np.ndarray, factors: np.ndarray, q: float = 0.99) -> float:
    """The definition written out latent by latent (float64 loops), factors binned in 20."""
    factors = discretize(factors)
    scores, weights = [], []
    for i in range(codes.shape[1]):
        z = codes[:, i]
        if z.var() == 0:
            continue
        spread = np.max(np.abs(z - z.mean()))
        best = -np.inf
        for j in range(factors.shape[1]):
            devs = [
                np.quantile(np.abs(z[factors[:, j] == v] - z[factors[:, j] == v].mean()), q)
                for v in np.unique(factors[:, j])
            ]
            best = max(best, 1.0 - np.mean(devs) / spread)
        scores.append(best)
        weights.append(spread)
    return float(np.sum(np.multiply(scores, weights)) / np.sum(weights))


def test_a_perfect_code_scores_one_and_a_duplicated_one_too():
    factors = grid()
    perfect = irs_from_codes(factors * 0.3, factors)
    assert perfect == {"irs": pytest.approx(1.0, abs=1e-12), "active_dims": 3.0}
    doubled = irs_from_codes(np.c_[factors, factors[:, 0] * -2.0], factors)
    assert doubled == {"irs": pytest.approx(1.0, abs=1e-12), "active_dims": 4.0}


def test_a_rotated_code_scores_less_and_noise_at_its_quantile_ratio():
    factors = grid()
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rotated = irs_from_codes((factors / (np.array([4, 5, 6]) - 1) - 0.5) @ q.T, factors)
    assert 0.2 < rotated["irs"] < 0.8
    # codes independent of the factors: holding a factor fixed leaves each latent's spread,
    # so R = 1 - quantile_0.99 |z - E z| / max |z - E z| for every factor
    rng = np.random.default_rng(1)
    factors = rng.integers(0, 4, size=(20_000, 2))
    noise = rng.normal(size=(20_000, 2))
    score = irs_from_codes(noise, factors)["irs"]
    spread = np.abs(noise - noise.mean(0))
    expect = 1 - np.quantile(spread, 0.99, axis=0) / spread.max(0)
    assert score == pytest.approx(np.average(expect, weights=spread.max(0)), abs=0.02)
    assert score < rotated["irs"]


def test_constant_latents_are_dropped_and_all_constant_scores_zero():
    factors = grid((3, 4))
    codes = np.c_[factors[:, 0] + 0.1 * factors[:, 1], np.full(len(factors), 7.0), factors[:, 1]]
    with_constant = irs_from_codes(codes, factors)
    assert with_constant["active_dims"] == 2.0
    assert with_constant["irs"] == irs_from_codes(codes[:, [0, 2]], factors)["irs"]
    assert irs_from_codes(np.ones((12, 2)), factors) == {"irs": 0.0, "active_dims": 0.0}


def test_a_case_by_hand():
    # two binary factors on the grid (0,0) (0,1) (1,0) (1,1); one latent z = 2 a + b
    factors = grid((2, 2))
    z = (2 * factors[:, 0] + factors[:, 1]).astype(float)[:, None]  # 0, 1, 2, 3; mean 1.5
    r, max_dev = irs_matrix(z, factors, diff_quantile=1.0)
    # fixing a: groups {0, 1} and {2, 3}, each |z - mean| = 0.5; fixing b: {0, 2}, {1, 3}: 1.0
    assert max_dev.tolist() == [1.5]
    np.testing.assert_allclose(r, [[1 - 0.5 / 1.5, 1 - 1.0 / 1.5]])
    # the 0.99 quantile of {0.5, 0.5} is 0.5: the same score
    assert irs_from_codes(z, factors)["irs"] == pytest.approx(1 - 0.5 / 1.5)


def test_equals_the_definition_loop_on_mixed_codes():
    rng = np.random.default_rng(3)
    factors = np.c_[rng.integers(0, 3, 3000), rng.integers(0, 32, 3000), rng.integers(0, 6, 3000)]
    codes = factors @ rng.normal(size=(3, 4)) + 0.3 * rng.normal(size=(3000, 4))
    codes[:, 2] = rng.normal(size=3000) ** 3  # a heavy-tailed latent of no factor
    assert irs_from_codes(codes, factors)["irs"] == pytest.approx(
        reference_irs(codes, factors), rel=1e-12
    )
    # 32 positions go into 20 bins, as disentanglement_lib bins them
    assert len(np.unique(discretize(factors)[:, 1])) == 20


def test_the_quantile_and_the_bins_are_the_ones_given_and_float32_is_scored_in_float64():
    rng = np.random.default_rng(4)
    factors = np.c_[rng.integers(0, 4, 2000), rng.integers(0, 3, 2000)]
    codes = factors @ np.array([[1.0, 0.2], [0.3, 1.0]]) + 0.2 * rng.normal(size=(2000, 2))
    base = irs_from_codes(codes, factors)["irs"]
    assert irs_from_codes(codes, factors, diff_quantile=0.5)["irs"] == pytest.approx(
        reference_irs(codes, factors, q=0.5), rel=1e-12
    )
    assert irs_from_codes(codes, factors, diff_quantile=0.5)["irs"] > base
    # two bins merge factor a's classes {0, 1} and {2, 3}: a different score
    assert irs_from_codes(codes, factors, num_bins=2)["irs"] != base
    low = codes.astype(np.float32)
    assert irs_from_codes(low, factors) == irs_from_codes(low.astype(np.float64), factors)
    r32, _ = irs_matrix(low, factors)
    np.testing.assert_array_equal(r32, irs_matrix(low.astype(np.float64), factors)[0])
