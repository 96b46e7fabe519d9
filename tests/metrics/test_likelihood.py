"""A linear-Gaussian VAE where log p(x) and the true posterior are known in closed form."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vaelab.metrics.likelihood import (
    active_units,
    active_units_from_means,
    elbo,
    elbo_per_image,
    iwae_per_image,
    log_likelihood_iw,
)

SIGMA = 0.1
W = torch.tensor([[0.3, 0.0], [0.0, 0.2], [0.1, 0.0], [0.0, -0.15]])  # orthogonal columns
B = 0.5


class GaussianMean:
    """p(x|z) = N(x; params, SIGMA^2 I): the decoder outputs the mean itself."""

    def nll(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        sq = (x - mean).pow(2).flatten(1) / SIGMA**2
        return 0.5 * (sq + math.log(2 * math.pi * SIGMA**2)).sum(1)


class LinearGaussian:
    """z ~ N(0, I), x = W z + B + SIGMA eps. The exact posterior is diagonal:
    precision 1 + w_d^2 / SIGMA^2, mean Var * W^T (x - B) / SIGMA^2. ``shift`` and
    ``widen`` spoil it (mean + shift, logvar + widen)."""

    def __init__(self, shift: float = 0.0, widen: float = 0.0) -> None:
        self.objective = SimpleNamespace(likelihood=GaussianMean())
        self.var = 1.0 / (1.0 + (W**2).sum(0) / SIGMA**2)
        self.shift, self.widen = shift, widen
        self.max_rows = 0

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.var * ((x.flatten(1) - B) @ W) / SIGMA**2 + self.shift
        return mu, torch.log(self.var).expand_as(mu) + self.widen

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self.max_rows = max(self.max_rows, len(z))
        return (z @ W.T + B).view(len(z), 1, 1, -1)


def log_px(images: torch.Tensor) -> torch.Tensor:
    """log N(x; B, W W^T + SIGMA^2 I) in float64."""
    x = images.double().flatten(1) / 255.0
    cov = W.double() @ W.double().T + SIGMA**2 * torch.eye(4, dtype=torch.float64)
    dist = torch.distributions.MultivariateNormal(torch.full((4,), B, dtype=torch.float64), cov)
    return dist.log_prob(x)


@pytest.fixture
def images():
    gen = torch.Generator().manual_seed(0)
    return torch.randint(60, 200, (32, 1, 1, 4), generator=gen, dtype=torch.uint8)


def test_exact_posterior_gives_exact_log_likelihood(images):
    model = LinearGaussian()
    truth = log_px(images)
    torch.testing.assert_close(
        iwae_per_image(model, images, k=7).double(), truth, atol=2e-3, rtol=0
    )
    # the ELBO's expectation is exact too (one draw is noisy: the KL is in closed form)
    many = elbo_per_image(model, images, num_samples=2000).double()
    torch.testing.assert_close(many, truth, atol=0.1, rtol=0)


def test_bounds_are_ordered_and_tighten_with_k(images):
    model = LinearGaussian(shift=0.4, widen=1.0)
    truth = float(log_px(images).mean())
    lower = elbo(model, images, num_samples=500)
    iw = [log_likelihood_iw(model, images, k=k, seed=1) for k in (1, 10, 1000)]
    assert lower < iw[1] < iw[2] <= truth + 1e-3
    assert iw[0] == pytest.approx(lower, abs=0.5)  # k = 1 is a one-sample ELBO
    assert truth - iw[2] < 0.1 * (truth - lower)  # 1,000 samples close most of the gap


def test_samples_are_decoded_in_bounded_batches(images):
    model = LinearGaussian(widen=0.5)
    iwae_per_image(model, images, k=100, batch_size=8, sample_batch=64)
    assert 0 < model.max_rows <= 64


def test_subset_of_images(images):
    model = LinearGaussian()
    value = log_likelihood_iw(model, images, k=5, max_images=10, seed=3)
    assert np.isfinite(value)
    assert value == pytest.approx(float(log_px(images).mean()), abs=3.0)


def test_active_units_from_means():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(5000, 4)) * np.array([1.0, 0.3, 0.05, 0.0])  # var 1, .09, .0025, 0
    assert active_units_from_means(means) == 2
    assert active_units_from_means(means, threshold=0.001) == 3


def test_active_units_of_a_model(images):
    class Half:
        def encode(self, x):
            mu = torch.cat([x.flatten(1)[:, :2] * 10, torch.zeros(len(x), 3)], 1)
            return mu, torch.zeros_like(mu)

    assert active_units(Half(), images) == 2


def test_deterministic_encoder_is_rejected(images):
    model = LinearGaussian()
    model.encode = lambda x: (torch.zeros(len(x), 2), None)
    with pytest.raises(ValueError, match="variational"):
        elbo(model, images)
