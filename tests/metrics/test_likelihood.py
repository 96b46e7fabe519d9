"""A linear-Gaussian VAE where log p(x) and the true posterior are known in closed form."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vaelab.metrics.likelihood import (
    LOG_2PI,
    SAMPLE_ROWS,
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
    with pytest.raises(ValueError) as error:
        elbo(model, images)
    assert str(error.value) == "likelihood bounds need a variational encoder (logvar is None)"


def one_draw_reference(model: LinearGaussian, images: torch.Tensor, seed: int):
    """float64, by hand: z = mu + sigma * eps with eps the first draws of a torch.Generator
    seeded with ``seed``; the ELBO's and the log-weight's terms of that one draw, ``[N]``."""
    x = images.double() / 255.0
    mu, logvar = (t.double() for t in model.encode(x.float()))
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed)).double()
    z = mu + torch.exp(0.5 * logvar) * eps
    mean = z @ W.double().T + B
    log_px = -0.5 * (((x.flatten(1) - mean) / SIGMA) ** 2 + math.log(2 * math.pi * SIGMA**2))
    log_px = log_px.sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    log_prior = -0.5 * (z.pow(2) + LOG_2PI).sum(1)
    log_q = -0.5 * (eps.pow(2) + LOG_2PI + logvar).sum(1)
    return log_px - kl, log_px + log_prior - log_q


def test_one_draw_is_mu_plus_sigma_eps_from_the_seeded_generator(images):
    model = LinearGaussian(shift=0.3, widen=0.7)  # a posterior that is not exact: noise shows
    for seed in (0, 5):
        want_elbo, want_log_w = one_draw_reference(model, images, seed)
        got = elbo_per_image(model, images, seed=seed, num_samples=1).double()
        torch.testing.assert_close(got, want_elbo, atol=1e-4, rtol=0)
        got = iwae_per_image(model, images, k=1, batch_size=len(images), seed=seed).double()
        torch.testing.assert_close(got, want_log_w, atol=1e-4, rtol=0)
    assert elbo(model, images, seed=5) == pytest.approx(float(want_elbo.mean()), abs=1e-4)


def test_the_documented_defaults(images):
    """k = 1,000, one ELBO draw, seed 0, batches of 64 images and 64 latent rows on a CPU
    (4,096 on a GPU), at most 1,000 images: the defaults equal those values given explicitly
    (the draws depend on each)."""
    model = LinearGaussian(shift=0.3, widen=0.7)
    torch.testing.assert_close(
        elbo_per_image(model, images), elbo_per_image(model, images, 512, 0, 1), atol=0, rtol=0
    )
    assert elbo(model, images) == elbo(model, images, 512, 0, 1)
    many = images.repeat(3, 1, 1, 1)  # 96 images: two batches of 64
    explicit = iwae_per_image(model, many, k=1000, batch_size=64, sample_batch=64, seed=0)
    torch.testing.assert_close(iwae_per_image(model, many), explicit, atol=0, rtol=0)
    assert log_likelihood_iw(model, many) == float(explicit.mean())
    # one image a batch: another default sample_batch would group the draws anew
    odd = iwae_per_image(model, many[:8], k=300, batch_size=1, sample_batch=64, seed=0)
    torch.testing.assert_close(iwae_per_image(model, many[:8], k=300, batch_size=1), odd)
    model.max_rows = 0
    iwae_per_image(model, images, k=100, batch_size=8)
    assert model.max_rows == 64 == SAMPLE_ROWS["cpu"] < SAMPLE_ROWS["cuda"] == 4096
    big = torch.randint(60, 200, (1001, 1, 1, 4), generator=torch.Generator().manual_seed(1),
                        dtype=torch.uint8)  # fmt: skip
    assert log_likelihood_iw(model, big, k=2) == log_likelihood_iw(model, big, k=2, max_images=1000)
    assert log_likelihood_iw(model, big, k=2) != log_likelihood_iw(model, big, k=2, max_images=None)


def test_the_seed_sets_the_draws(images):
    model = LinearGaussian(shift=0.3, widen=0.7)
    for estimate in (elbo_per_image, lambda m, x, seed: iwae_per_image(m, x, k=3, seed=seed)):
        torch.testing.assert_close(estimate(model, images, seed=2), estimate(model, images, seed=2))
        assert not torch.equal(estimate(model, images, seed=2), estimate(model, images, seed=3))


def test_a_subset_is_distinct_images_drawn_with_the_seed(images):
    """The exact posterior makes each image's estimate its exact log p(x), so the mean over
    n - 1 of the n images must be the full sum less one of them, the same one for one seed."""
    model = LinearGaussian()
    exact = iwae_per_image(model, images, k=7).double()
    leave_one_out = (exact.sum() - exact) / (len(images) - 1)
    values = [log_likelihood_iw(model, images, k=7, max_images=len(images) - 1, seed=s)
              for s in (4, 4, 9)]  # fmt: skip
    for value in values:
        assert torch.isclose(leave_one_out, torch.tensor(value, dtype=torch.float64),
                             atol=1e-4, rtol=0).any()  # fmt: skip
    assert values[0] == values[1] != values[2]


def test_decoded_rows_stay_bounded_when_a_batch_exceeds_sample_batch(images):
    model = LinearGaussian(widen=0.5)
    iwae_per_image(model, images, k=4, batch_size=32, sample_batch=16)
    assert model.max_rows == 32  # one draw per pass: max(B, sample_batch) rows


def test_estimates_run_in_eval_mode_without_gradients_and_restore_training(images):
    class Recording(LinearGaussian):
        def __init__(self):
            super().__init__(widen=0.5)
            self.training, self.seen = True, []
            self.weight = torch.zeros(1, requires_grad=True)

        def parameters(self):
            return iter([self.weight])

        def eval(self):
            self.training = False

        def train(self, mode: bool = True):
            self.training = mode

        def encode(self, x):
            self.seen.append((self.training, torch.is_grad_enabled()))
            return super().encode(x)

    for estimate in (elbo, log_likelihood_iw, active_units):
        model = Recording()
        estimate(model, images)
        assert model.seen and set(model.seen) == {(False, False)}, estimate.__name__
        assert model.training  # restored


def test_active_units_threshold_is_strict_and_defaults_to_burda_et_al():
    means = np.array([[0.0, 0.0], [1.0, 0.5]])  # variances 0.25 and 0.0625, exact in binary
    assert active_units_from_means(means, threshold=0.25) == 0  # 0.25 is not > 0.25
    assert active_units_from_means(means, threshold=0.0625) == 1  # nor 0.0625 > 0.0625
    assert active_units_from_means(np.array([[0.0], [0.21]])) == 1  # var 0.011 > 0.01

    class Scaled:
        def encode(self, x):  # variances about 0.03 (x in [60, 200] / 255) and 0
            mu = torch.cat([x.flatten(1)[:, :1], torch.zeros(len(x), 1)], 1)
            return mu, torch.zeros_like(mu)

    images = torch.randint(60, 200, (64, 1, 1, 4), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)  # fmt: skip
    assert active_units(Scaled(), images) == 1  # the default threshold 0.01
    assert active_units(Scaled(), images, threshold=0.1) == 0
