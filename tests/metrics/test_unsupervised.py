"""The unsupervised scores on known answers: independent, correlated (closed forms),
rotated, duplicated and noise codes, and disentanglement_lib's matrix square root."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from vaelab.metrics.unsupervised import (
    gaussian_total_correlation,
    gaussian_wasserstein_dependency,
    mutual_info_score,
    unsupervised_from_codes,
)
from vaelab.metrics.utils import discrete_mutual_info, discretize


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.9])
def test_two_correlated_gaussians_in_closed_form(rho):
    cov = np.array([[1.0, rho], [rho, 1.0]])
    assert gaussian_total_correlation(cov) == pytest.approx(-0.5 * np.log(1 - rho**2), abs=1e-12)
    # W2² to N(0, I): 2 tr Σ - 2 tr Σ^½, the eigenvalues of Σ being 1 ± ρ
    want = 4 - 2 * (np.sqrt(1 + rho) + np.sqrt(1 - rho))
    assert gaussian_wasserstein_dependency(cov) == pytest.approx(want, abs=1e-12)


def test_the_wasserstein_trace_equals_disentanglement_libs_square_root():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5)) * np.array([0.1, 1, 3, 0.5, 2])
    cov = a @ a.T + 0.1 * np.eye(5)
    theirs = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None]))
    assert gaussian_wasserstein_dependency(cov) == pytest.approx(theirs.real, rel=1e-9)


def test_independent_codes_score_about_zero_and_dependence_raises_every_score():
    rng = np.random.default_rng(1)
    independent = rng.normal(size=(20_000, 4)) * np.array([1.0, 2.0, 0.5, 3.0])
    free = unsupervised_from_codes(independent)
    assert free["gaussian_tc"] == pytest.approx(0, abs=1e-3)
    assert free["gaussian_wasserstein_norm"] == pytest.approx(0, abs=1e-3)
    assert free["mutual_info"] < 0.01  # 20 × 20 bins from 20,000 codes: a small bias
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    rotated = unsupervised_from_codes(independent @ q.T)
    for key in free:
        assert rotated[key] > free[key] + 0.05, key
    # the normalised Wasserstein score is the score over tr Σ
    cov = np.cov(independent @ q.T, rowvar=False)
    assert rotated["gaussian_wasserstein_norm"] == pytest.approx(
        rotated["gaussian_wasserstein"] / np.trace(cov), rel=1e-12
    )


def test_the_total_correlation_ignores_each_latents_scale():
    rng = np.random.default_rng(2)
    codes = rng.normal(size=(5000, 3)) @ rng.normal(size=(3, 3))
    a, b = unsupervised_from_codes(codes), unsupervised_from_codes(codes * [1.0, 10.0, 0.1])
    assert a["gaussian_tc"] == pytest.approx(b["gaussian_tc"], rel=1e-9)
    assert a["mutual_info"] == pytest.approx(b["mutual_info"], rel=1e-12)  # bins scale too


def test_mutual_info_of_duplicated_latents_by_hand():
    # two copies of a latent spread over 4 bins equally, and one latent of its own
    z = np.repeat(np.arange(4.0), 24)
    codes = np.c_[z, z, np.tile([0.0, 1.0], 48)]
    # I(z0; z1) = H(z0) = log 4; z2 alternates within each of z's runs: I(z0; z2) = 0
    assert mutual_info_score(codes) == pytest.approx(2 * np.log(4) / 6, abs=1e-12)
    assert mutual_info_score(codes[:, :1]) == 0.0  # one latent: no pairs
    binned = discretize(codes)
    assert discrete_mutual_info(binned, binned)[0, 1] == pytest.approx(np.log(4))


def test_two_latents_the_bins_given_float32_codes_and_a_singular_covariance():
    z = np.repeat(np.arange(4.0), 24)
    assert mutual_info_score(np.c_[z, z]) == pytest.approx(np.log(4))  # one pair, both ways
    rng = np.random.default_rng(3)
    codes = rng.normal(size=(3000, 3)) @ rng.normal(size=(3, 3))
    for bins in (4, 50):
        assert mutual_info_score(codes, bins) != mutual_info_score(codes)
        assert unsupervised_from_codes(codes, bins)["mutual_info"] == mutual_info_score(codes, bins)
    low = codes.astype(np.float32)
    assert unsupervised_from_codes(low) == unsupervised_from_codes(low.astype(np.float64))
    # a duplicated latent: det Σ = 0 and an eigenvalue of ~-1e-17 that must not become NaN
    twins = np.c_[codes[:, :1], codes[:, :1], codes[:, 1:]]
    cov = np.cov(twins, rowvar=False)
    assert np.isfinite(gaussian_wasserstein_dependency(cov))


def test_a_constant_latent_adds_nothing_to_the_total_correlation():
    """A quantized model's unused latent is constant: the scores are those of the others."""
    rng = np.random.default_rng(3)
    varying = rng.multivariate_normal([0, 0], [[1.0, 0.6], [0.6, 1.0]], size=2000)
    with_constant = np.column_stack([varying[:, 0], np.full(2000, 0.25), varying[:, 1]])
    alone, together = unsupervised_from_codes(varying), unsupervised_from_codes(with_constant)
    assert together["gaussian_tc"] == pytest.approx(alone["gaussian_tc"], rel=1e-12)
    assert together["gaussian_tc"] > 0.2  # ½ log(1 / (1 − 0.6²)) ≈ 0.22
    assert together["gaussian_wasserstein"] == pytest.approx(alone["gaussian_wasserstein"])
    assert gaussian_total_correlation(np.zeros((3, 3))) == 0.0
