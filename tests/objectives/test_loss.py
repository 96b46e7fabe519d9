"""The loss is the tutorial's formula; the KL is right; gradients flow through z."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from vaelab.module import reparameterize
from vaelab.objectives import Autoencoder, BetaVAE, Gaussian, VAEOutput, kl_normal
from vaelab.objectives.likelihoods import make_likelihood


def fixed_batch(seed: int = 0, b: int = 5, d: int = 4, pixels: int = 12):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(b, 1, 3, pixels // 3, generator=g) > 0.5).float()
    mu = torch.randn(b, d, generator=g)
    logvar = torch.randn(b, d, generator=g) * 0.5
    logits = torch.randn(b, 1, 3, pixels // 3, generator=g) * 2
    return x, VAEOutput(mu=mu, logvar=logvar, z=mu, logits=logits)


def tutorial_loss(recon_x, x, mu, logvar):
    """The MIT 6.S191 / PyTorch example's loss_function, summed over the batch."""
    bce = F.binary_cross_entropy(recon_x, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def test_vae_loss_equals_tutorial_formula_per_example():
    x, out = fixed_batch()
    parts = BetaVAE("bernoulli")(x, out, beta=1.0)
    expected = tutorial_loss(torch.sigmoid(out.logits), x, out.mu, out.logvar) / len(x)
    assert torch.allclose(parts["loss"], expected, rtol=1e-5)
    assert torch.allclose(parts["recon"] + parts["kl"], expected, rtol=1e-5)


def test_beta_weighs_only_the_kl():
    x, out = fixed_batch(1)
    one, four = BetaVAE()(x, out, beta=1.0), BetaVAE()(x, out, beta=4.0)
    assert torch.allclose(four["loss"] - one["loss"], 3 * one["kl"], rtol=1e-5)
    assert torch.allclose(one["kl_per_dim"].sum(), one["kl"])
    assert one["kl_per_dim"].shape == (4,)


def test_closed_form_kl_matches_torch_distributions_and_monte_carlo():
    _, out = fixed_batch(2, b=3, d=2)
    closed = kl_normal(out.mu, out.logvar)
    q = Normal(out.mu, torch.exp(0.5 * out.logvar))
    p = Normal(torch.zeros_like(out.mu), torch.ones_like(out.mu))
    assert torch.allclose(closed, kl_divergence(q, p), atol=1e-6)
    torch.manual_seed(0)
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    assert torch.allclose(closed, mc, atol=0.02)


def test_kl_is_zero_exactly_at_the_prior():
    assert torch.count_nonzero(kl_normal(torch.zeros(2, 3), torch.zeros(2, 3))) == 0


def test_gradients_reach_mu_and_logvar_through_the_reparameterization():
    x, out = fixed_batch(3)
    mu = out.mu.clone().requires_grad_()
    logvar = out.logvar.clone().requires_grad_()
    torch.manual_seed(0)
    z = reparameterize(mu, logvar)
    decoder = torch.nn.Linear(z.shape[1], x[0].numel())
    logits = decoder(z).view_as(x)
    BetaVAE()(x, VAEOutput(mu, logvar, z, logits), beta=0.0)["loss"].backward()
    # β = 0: the only path to logvar is through z = mu + exp(logvar / 2) * eps.
    assert mu.grad is not None and mu.grad.abs().sum() > 0
    assert logvar.grad is not None and logvar.grad.abs().sum() > 0


def test_reparameterization_has_the_right_moments():
    torch.manual_seed(0)
    mu, logvar = torch.full((100_000, 1), 2.0), torch.full((100_000, 1), math.log(0.25))
    z = reparameterize(mu, logvar)
    assert z.mean().item() == pytest.approx(2.0, abs=0.01)
    assert z.std().item() == pytest.approx(0.5, abs=0.01)


def test_gaussian_nll_matches_torch_distributions():
    x, out = fixed_batch(4)
    nll = Gaussian(sigma=0.3).nll(x, out.logits)
    expected = -Normal(torch.sigmoid(out.logits), 0.3).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(nll, expected, rtol=1e-5)


def test_autoencoder_loss_is_reconstruction_only():
    x, out = fixed_batch(5)
    parts = Autoencoder("bernoulli")(x, VAEOutput(out.mu, None, out.mu, out.logits), beta=7.0)
    bce = F.binary_cross_entropy_with_logits(out.logits, x, reduction="sum") / len(x)
    assert torch.allclose(parts["loss"], bce, rtol=1e-5)
    assert torch.equal(parts["recon"], parts["loss"]) and parts["kl"].item() == 0
    assert parts["kl_per_dim"].shape == (0,)  # no latent dimension carries a KL
    assert Autoencoder.variational is False and BetaVAE.variational is True


def test_unknown_likelihood_is_a_clear_error():
    with pytest.raises(ValueError, match="bernoulli"):
        BetaVAE("poisson")


@pytest.mark.parametrize("sigma", [0.0, -1.0])
def test_gaussian_needs_a_positive_sigma(sigma: float):
    with pytest.raises(ValueError, match="sigma > 0"):
        Gaussian(sigma=sigma)


def test_the_configured_gaussian_is_half_the_squared_error_plus_half_log_2pi():
    # what data.likelihood=gaussian trains with (σ = 1), as the README's units section says
    x = torch.rand(3, 1, 2, 2)
    logits = torch.randn(3, 1, 2, 2)
    nll = make_likelihood("gaussian").nll(x, logits)
    expected = (0.5 * (x - torch.sigmoid(logits)) ** 2 + 0.5 * math.log(2 * math.pi)).sum((1, 2, 3))
    assert torch.allclose(nll, expected)
