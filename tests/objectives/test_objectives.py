"""Each disentangling objective against a direct, slow implementation of its paper's formula."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from vaelab.module import VAEModule
from vaelab.nets import MLPDecoder, MLPEncoder
from vaelab.objectives import DIPVAE, AnnealedVAE, BetaTCVAE, BetaVAE, FactorVAE, VAEOutput
from vaelab.objectives.beta_tcvae import importance_weights, mws_paper_offsets, tc_decomposition
from vaelab.objectives.dip_vae import dip_covariance, dip_penalty
from vaelab.objectives.factor_vae import permute_dims
from vaelab.schedules import Constant


def batch(seed: int = 0, b: int = 6, d: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(b, 1, 2, 4, generator=g) > 0.5).float()
    mu, logvar = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g) * 0.3
    z = mu + torch.exp(0.5 * logvar) * torch.randn(b, d, generator=g)
    return x, VAEOutput(mu=mu, logvar=logvar, z=z, logits=torch.randn(b, 1, 2, 4, generator=g))


# ---- β-TCVAE ---------------------------------------------------------------------------
def slow_tc(z, mu, logvar, weight):
    """Chen et al. (2018), log q(z_i) = log sum_j weight(i, j) q(z_i|x_j), one loop per sum."""
    z, mu, sd = z.double(), mu.double(), torch.exp(0.5 * logvar.double())
    m, d = z.shape
    mi = tc = dwkl = 0.0
    for i in range(m):
        log_q_cond = sum(Normal(mu[i, k], sd[i, k]).log_prob(z[i, k]) for k in range(d))
        log_p = sum(Normal(0.0, 1.0).log_prob(z[i, k]) for k in range(d))
        joint = [
            sum(Normal(mu[j, k], sd[j, k]).log_prob(z[i, k]) for k in range(d)) for j in range(m)
        ]
        log_qz = math.log(sum(weight(i, j) * math.exp(v) for j, v in enumerate(joint)))
        log_prod = sum(
            math.log(
                sum(
                    weight(i, j) * math.exp(Normal(mu[j, k], sd[j, k]).log_prob(z[i, k]))
                    for j in range(m)
                )
            )
            for k in range(d)
        )
        mi += (log_q_cond - log_qz) / m
        tc += (log_qz - log_prod) / m
        dwkl += (log_prod - log_p) / m
    return float(mi), float(tc), float(dwkl)


def slow_tc_mws(z, mu, logvar, n):
    """The paper's minibatch-weighted sampling: every weight 1/(N M)."""
    return slow_tc(z, mu, logvar, lambda i, j: 1.0 / (n * len(z)))


def slow_tc_mss(z, mu, logvar, n):
    """The paper's stratified sampling: own 1/N, the next (N-M+1)/(N(M-1)), the rest 1/(M-1)."""
    m = len(z)

    def weight(i, j):
        if j == i:
            return 1.0 / n
        return (n - m + 1) / (n * (m - 1)) if j == (i + 1) % m else 1.0 / (m - 1)

    return slow_tc(z, mu, logvar, weight)


def test_tcvae_mws_is_the_papers_formula_less_its_constants():
    _, out = batch(d=10)
    fast = tc_decomposition(out.z, out.mu, out.logvar, dataset_size=1000, estimator="mws")
    slow = slow_tc_mws(out.z, out.mu, out.logvar, 1000)
    offsets = mws_paper_offsets(1000, latent_dim=10)  # log N, 9 log N, -10 log N
    shifted = [v.item() + c for v, c in zip(fast, offsets, strict=True)]
    assert shifted == pytest.approx(slow, rel=1e-4, abs=1e-4)


def test_tcvae_mss_matches_the_papers_formula():
    _, out = batch(4, b=8, d=10)
    out.mu = out.mu * 0.3  # overlapping posteriors, so every weight matters
    fast = tc_decomposition(out.z, out.mu, out.logvar, dataset_size=50, estimator="mss")
    slow = slow_tc_mss(out.z, out.mu, out.logvar, 50)
    assert [v.item() for v in fast] == pytest.approx(slow, rel=1e-4, abs=1e-4)


def paper_mws_terms(z, mu, logvar, n):
    """The paper's MWS terms with its 1/(N M) weight, as differentiable float64 tensors."""
    m = len(z)
    q = Normal(mu[None].double(), torch.exp(0.5 * logvar[None].double()))
    pairwise = q.log_prob(z[:, None].double())  # [i, j, d]
    log_qz = torch.logsumexp(pairwise.sum(2), 1) - math.log(n * m)
    log_prod = (torch.logsumexp(pairwise, 1) - math.log(n * m)).sum(1)
    log_cond = Normal(mu.double(), torch.exp(0.5 * logvar.double())).log_prob(z.double()).sum(1)
    log_p = Normal(0.0, 1.0).log_prob(z.double()).sum(1)
    return (log_cond - log_qz).mean(), (log_qz - log_prod).mean(), (log_prod - log_p).mean()


def test_tcvae_mws_gradient_is_the_papers():
    g = torch.Generator().manual_seed(5)
    mu = torch.randn(32, 10, generator=g, requires_grad=True)
    logvar = (0.3 * torch.randn(32, 10, generator=g)).requires_grad_()
    eps = torch.randn(32, 10, generator=g)
    grads = []
    for terms in (
        lambda z: tc_decomposition(z, mu, logvar, 737_280, "mws"),
        lambda z: paper_mws_terms(z, mu, logvar, 737_280),
    ):
        mi, tc, dwkl = terms(mu + torch.exp(0.5 * logvar) * eps)
        (2.0 * mi + 6.0 * tc + 3.0 * dwkl).backward()
        grads.append(torch.cat([mu.grad.flatten(), logvar.grad.flatten()]).double())
        mu.grad = logvar.grad = None
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("m", "n"), [(2, 2), (3, 4), (16, 100), (64, 737_280)])
def test_tcvae_stratified_weights_rows_sum_to_one(m, n):
    w = importance_weights(m, n, "mss")
    assert torch.allclose(w.sum(1), torch.ones(m, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.all(w.diagonal() == 1.0 / n)


def test_tcvae_stratified_weights_by_hand():
    # M = 3, N = 4: own 1/N = 1/4, next (N - M + 1) / (N (M - 1)) = 2/8, the other 1/(M - 1)
    expected = torch.tensor([[1, 1, 2], [2, 1, 1], [1, 2, 1]], dtype=torch.float64) / 4
    assert torch.equal(importance_weights(3, 4, "mss"), expected)
    with pytest.raises(ValueError, match="N >= M"):
        importance_weights(8, 4, "mss")


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_tcvae_parts_sum_to_the_sampled_kl(estimator: str):
    _, out = batch(1, b=16, d=4)
    mi, tc, dwkl = tc_decomposition(out.z, out.mu, out.logvar, 5000, estimator)
    q, p = Normal(out.mu, torch.exp(0.5 * out.logvar)), Normal(0.0, 1.0)
    sampled_kl = (q.log_prob(out.z) - p.log_prob(out.z)).sum(1).mean()
    assert (mi + tc + dwkl).item() == pytest.approx(sampled_kl.item(), rel=1e-4)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_tcvae_terms_are_zero_when_the_posterior_is_the_prior(estimator: str):
    torch.manual_seed(0)
    z = torch.randn(64, 10)
    zeros = torch.zeros_like(z)
    mi, tc, dwkl = tc_decomposition(z, zeros, zeros, dataset_size=737_280, estimator=estimator)
    # float32 rounding only; the paper's MWS constants would give TC = 9 log N = 121.6 here
    assert abs(tc.item()) < 2e-3 and abs(mi.item()) < 2e-3 and abs(dwkl.item()) < 2e-3


def test_tcvae_without_its_dataset_size_is_an_error():
    x, out = batch(2)
    with pytest.raises(ValueError, match="number of training images"):
        BetaTCVAE()(x, out, beta=6.0)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_tcvae_tc_is_clearly_larger_for_correlated_codes(estimator: str):
    torch.manual_seed(0)
    a, b = torch.randn(256, 1), torch.randn(256, 1)
    logvar = torch.full((256, 2), math.log(0.1**2))

    def tc(mu):
        z = mu + 0.1 * torch.randn_like(mu)
        return tc_decomposition(z, mu, logvar, 256, estimator)[1].item()

    factorised, correlated = tc(torch.cat([a, b], 1)), tc(torch.cat([a, a], 1))
    assert correlated > factorised + 1.0


def test_tcvae_loss_weights_each_part():
    x, out = batch(2)
    obj = BetaTCVAE(alpha=2.0, gamma=3.0, dataset_size=100)
    parts = obj(x, out, beta=5.0)
    expected = parts["recon"] + 2 * parts["mi"] + 5 * parts["tc"] + 3 * parts["dwkl"]
    assert torch.allclose(parts["loss"], expected)
    q, p = Normal(out.mu, torch.exp(0.5 * out.logvar)), Normal(0.0, 1.0)
    sampled_kl = (q.log_prob(out.z) - p.log_prob(out.z)).sum(1).mean()
    assert parts["kl_sampled"].item() == pytest.approx(sampled_kl.item(), rel=1e-4)
    assert torch.isfinite(parts["loss"])


def test_tcvae_stays_finite_for_far_apart_codes():
    _, out = batch(3)
    out.mu = out.mu * 1e3
    out.logvar = torch.full_like(out.logvar, -20.0)
    assert all(torch.isfinite(v) for v in tc_decomposition(out.mu, out.mu, out.logvar, 10, "mws"))


# ---- FactorVAE -------------------------------------------------------------------------
def test_permutation_keeps_each_dimensions_marginal_and_breaks_the_pairing():
    torch.manual_seed(0)
    z = torch.randn(500, 4)
    zp = permute_dims(z)
    assert torch.equal(z.sort(0).values, zp.sort(0).values)
    assert not torch.equal(z, zp)


def independent_kl(out: VAEOutput) -> torch.Tensor:
    """E_batch KL(q(z|x) || N(0, I)) summed over dimensions, by torch.distributions."""
    q = Normal(out.mu, torch.exp(0.5 * out.logvar))
    return torch.distributions.kl_divergence(q, Normal(0.0, 1.0)).sum(1).mean()


@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_factor_vae_tc_is_the_mean_logit_difference(beta: float):
    x, out = batch(4)
    obj = FactorVAE(latent_dim=3, hidden=16, gamma=10.0)
    parts = obj(x, out, beta=beta)
    logits = obj.discriminator(out.z)
    tc = (logits[:, 0] - logits[:, 1]).mean()
    assert torch.allclose(parts["tc"], tc)
    expected = parts["recon"] + beta * independent_kl(out) + 10 * tc
    assert torch.allclose(parts["loss"], expected, rtol=1e-5)
    assert (
        len([m for m in FactorVAE(latent_dim=3).discriminator if isinstance(m, torch.nn.Linear)])
        == 7
    )


def test_factor_vae_discriminator_learns_to_spot_correlated_codes():
    torch.manual_seed(0)
    obj = FactorVAE(latent_dim=2, hidden=64, layers=3, lr=1e-3)
    opt = obj.auxiliary_optimizer()
    for _ in range(300):
        a = torch.randn(128, 1)
        z = torch.cat([a, a + 0.05 * torch.randn_like(a)], 1)
        loss, logs = obj.auxiliary_loss(VAEOutput(z, None, z, z))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logs["disc_accuracy"].item() > 0.8  # chance is 0.5
    assert logs["disc_loss"].item() < math.log(2)  # below chance's cross-entropy
    # and the VAE's TC estimate, log D(joint) / D(permuted), is large for such codes: the
    # penalty γ TC then pushes towards factorised codes (swapped labels would reward TC)
    a = torch.randn(512, 1)
    correlated = torch.cat([a, a + 0.05 * torch.randn_like(a)], 1)
    factorised = torch.randn(512, 2)
    no_kl = {"kl": torch.tensor(0.0)}
    tc = [obj.regularizer(VAEOutput(z, z, z, z), no_kl, 1.0, 0)[1]["tc"].item()
          for z in (correlated, factorised)]  # fmt: skip
    assert tc[0] > 1.0 and tc[0] > tc[1] + 1.0


def test_discriminator_step_leaves_the_encoder_untouched():
    torch.manual_seed(0)
    obj = FactorVAE(latent_dim=4, hidden=16)
    module = VAEModule(
        MLPEncoder((1, 4, 4), 8, 4),
        MLPDecoder((1, 4, 4), 8, 4),
        obj,
        Constant(1.0),
        lambda p: torch.optim.Adam(p, lr=1e-2),
        latent_dim=4,
    )
    assert module.automatic_optimization is False
    x = torch.rand(8, 1, 4, 4)
    before = [p.detach().clone() for p in module.encoder.parameters()]
    loss, _ = obj.auxiliary_loss(module(x))
    opt = obj.auxiliary_optimizer()
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in module.encoder.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, module.encoder.parameters(), strict=True))
    assert any(p.grad is not None for p in obj.discriminator.parameters())


# ---- DIP-VAE ---------------------------------------------------------------------------
def slow_dip(mu, logvar, variant, lambda_od, lambda_d):
    b, d = mu.shape
    mean = [sum(mu[n, i].item() for n in range(b)) / b for i in range(d)]
    cov = [
        [
            sum((mu[n, i].item() - mean[i]) * (mu[n, j].item() - mean[j]) for n in range(b)) / b
            for j in range(d)
        ]
        for i in range(d)
    ]
    if variant == "ii":
        for i in range(d):
            cov[i][i] += sum(math.exp(logvar[n, i].item()) for n in range(b)) / b
    off = sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j)
    diag = sum((cov[i][i] - 1) ** 2 for i in range(d))
    return lambda_od * off + lambda_d * diag


@pytest.mark.parametrize("variant", ["i", "ii"])
def test_dip_penalty_matches_the_papers_formula(variant: str):
    _, out = batch(5, b=10, d=3)
    obj = DIPVAE(variant=variant, lambda_od=2.0)
    fast = dip_penalty(dip_covariance(out.mu, out.logvar, variant), obj.lambda_od, obj.lambda_d)
    assert obj.lambda_d == (20.0 if variant == "i" else 2.0)
    assert fast.item() == pytest.approx(
        slow_dip(out.mu, out.logvar, variant, 2.0, obj.lambda_d), rel=1e-4
    )


@pytest.mark.parametrize("variant", ["i", "ii"])
def test_dip_vae_loss_is_recon_plus_beta_kl_plus_the_penalty(variant: str):
    x, out = batch(8, b=10, d=3)
    obj = DIPVAE(variant=variant, lambda_od=3.0)
    parts = obj(x, out, beta=2.0)
    penalty = slow_dip(out.mu, out.logvar, variant, 3.0, obj.lambda_d)
    assert parts["dip_penalty"].item() == pytest.approx(penalty, rel=1e-4)
    expected = parts["recon"].item() + 2.0 * independent_kl(out).item() + penalty
    assert parts["loss"].item() == pytest.approx(expected, rel=1e-5)


def test_dip_penalty_is_zero_at_identity_covariance_and_grows_off_diagonal():
    torch.manual_seed(0)
    raw = torch.randn(200, 3)
    raw = raw - raw.mean(0)
    white = raw @ torch.linalg.inv(torch.linalg.cholesky(raw.T @ raw / 200)).T
    zero_var = torch.full_like(white, -30.0)
    assert dip_penalty(dip_covariance(white, zero_var, "i"), 10, 100).item() < 1e-6
    mixed = [white @ torch.tensor([[1, t, 0], [0, 1, 0], [0, 0, 1.0]]) for t in (0.2, 0.5, 1.0)]
    penalties = [dip_penalty(dip_covariance(m, zero_var, "i"), 10, 0).item() for m in mixed]
    assert 0 < penalties[0] < penalties[1] < penalties[2]


def test_dip_ii_adds_the_mean_posterior_variance_to_the_diagonal_only():
    _, out = batch(6, b=12, d=3)
    diff = dip_covariance(out.mu, out.logvar, "ii") - dip_covariance(out.mu, out.logvar, "i")
    assert torch.allclose(diff, torch.diag(out.logvar.exp().mean(0)), atol=1e-6)


def test_unknown_dip_variant_is_an_error():
    with pytest.raises(ValueError, match="variant"):
        DIPVAE(variant="iii")


# ---- annealed β-VAE ------------------------------------------------------------------
def test_annealed_vae_holds_the_kl_near_a_rising_capacity():
    x, out = batch(7)
    obj = AnnealedVAE(gamma=1000.0, c_max=20.0, c_steps=100)
    kl = BetaVAE()(x, out, beta=1.0)["kl"]
    for step, capacity in [(0, 0.0), (50, 10.0), (100, 20.0), (1000, 20.0)]:
        parts = obj(x, out, beta=1.0, step=step)  # the weight is γ; β is not used
        assert parts["capacity"].item() == pytest.approx(capacity)
        assert parts["loss"].item() == pytest.approx(
            (parts["recon"] + 1000 * (kl - capacity).abs()).item()
        )
    with pytest.raises(ValueError, match="c_steps"):
        AnnealedVAE(c_steps=0)
    with pytest.raises(ValueError, match="gamma >= 0"):
        AnnealedVAE(gamma=-1.0)
    assert AnnealedVAE().gamma == 1000.0  # Burgess et al.'s γ
    free = AnnealedVAE(gamma=0.0, c_max=0.0, c_steps=1)  # the edges are allowed
    assert free(x, out, beta=1.0, step=5)["loss"].item() == pytest.approx(parts["recon"].item())


# ---- the papers' settings as defaults, for use from Python -------------------------------
def test_defaults_are_the_papers_settings():
    fvae = FactorVAE(latent_dim=10)
    assert (fvae.gamma, fvae.lr, fvae.betas) == (35.0, 1e-4, (0.5, 0.9))  # Kim & Mnih
    linears = [m for m in fvae.discriminator if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == (
        [(10, 1000)] + [(1000, 1000)] * 5 + [(1000, 2)]
    )
    slopes = {m.negative_slope for m in fvae.discriminator if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}
    group = fvae.auxiliary_optimizer().param_groups[0]
    assert (group["lr"], group["betas"]) == (1e-4, (0.5, 0.9))
    small = FactorVAE(latent_dim=3, hidden=8, layers=2).discriminator
    assert len(small) == 5  # 2 x (linear, activation) + the output layer
    annealed = AnnealedVAE()
    assert (annealed.capacity(0), annealed.capacity(50_000), annealed.capacity(100_000)) == (
        0.0, 12.5, 25.0,
    )  # fmt: skip
    tcvae = BetaTCVAE()
    assert (tcvae.alpha, tcvae.gamma, tcvae.estimator) == (1.0, 1.0, "mws")
    dip = DIPVAE()
    assert (dip.variant, dip.lambda_od, dip.lambda_d) == ("i", 10.0, 100.0)
    assert DIPVAE(lambda_od=2.0, lambda_d=3.0).lambda_d == 3.0


def test_bad_objective_settings_say_what_is_allowed():
    with pytest.raises(ValueError, match="factor_vae needs gamma >= 0, got -1"):
        FactorVAE(latent_dim=2, gamma=-1.0)
    assert FactorVAE(latent_dim=2, gamma=0.0).gamma == 0.0
    with pytest.raises(ValueError, match=r"estimator must be one of .*'exact'"):
        BetaTCVAE(estimator="exact")
    with pytest.raises(ValueError, match="needs a batch of at least 2"):
        importance_weights(1, 10, "mss")


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_tcvae_objective_uses_its_dataset_size_and_estimator(estimator: str):
    x, out = batch(9, b=8, d=4)
    out.mu = out.mu * 0.3
    parts = BetaTCVAE(dataset_size=20, estimator=estimator)(x, out, beta=6.0)
    mi, tc, dwkl = tc_decomposition(out.z, out.mu, out.logvar, 20, estimator)
    assert torch.allclose(torch.stack([parts["mi"], parts["tc"], parts["dwkl"]]),
                          torch.stack([mi, tc, dwkl]))  # fmt: skip
    other = "mss" if estimator == "mws" else "mws"
    other_tc = tc_decomposition(out.z, out.mu, out.logvar, 20, other)[1]
    assert not torch.allclose(parts["tc"], other_tc)
