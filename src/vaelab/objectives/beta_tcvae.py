"""β-TCVAE (Chen et al. 2018): the KL split into index-code MI, total correlation (TC) and
dimension-wise KL, each with its own weight:

    loss = recon + α · MI + β · TC + γ · DWKL,
    MI   = E[log q(z|x) − log q(z)],
    TC   = E[log q(z) − Σ_d log q(z_d)],
    DWKL = E[Σ_d log q(z_d) − log p(z)],

with z one sample per image and the aggregate posterior q(z) estimated on the minibatch by
minibatch-weighted sampling (MWS), log q(z_i) ≈ logsumexp_j log q(z_i|x_j) − log(N·M), or
minibatch stratified sampling (MSS). β is the scheduled β; α = γ = 1 in the paper.
"""

from __future__ import annotations

import math

import torch

from vaelab.objectives.base import Objective, Parts, VAEOutput

ESTIMATORS = ("mws", "mss")
LOG_2PI = math.log(2 * math.pi)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) elementwise."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def log_importance_weights(batch: int, dataset_size: int, estimator: str) -> torch.Tensor:
    """``[M, M]`` log-weights w_ij in log q(z_i) ≈ logsumexp_j (w_ij + log q(z_i|x_j)).

    MWS: w_ij = −log(N·M). MSS (Chen et al., appendix): with m = M − 1, the own sample gets
    1/N, one other sample (N − m)/(N·m), the rest 1/m.
    """
    if estimator == "mws":
        return torch.full((batch, batch), -math.log(dataset_size * batch))
    m = batch - 1
    if m < 1:
        raise ValueError("minibatch stratified sampling needs a batch of at least 2")
    strat = (dataset_size - m) / (dataset_size * m)
    weights = torch.full((batch, batch), 1.0 / m)
    flat = weights.view(-1)
    flat[:: m + 1] = 1.0 / dataset_size
    flat[1 :: m + 1] = strat
    weights[m - 1, 0] = strat
    return weights.log()


def tc_decomposition(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int, estimator: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch means of (MI, TC, DWKL), computed in float32 with logsumexp."""
    z, mu, logvar = z.float(), mu.float(), logvar.float()
    batch = len(z)
    pairwise = log_normal(z[:, None], mu[None], logvar[None])  # [i, j, d] = log q(z_id | x_j)
    log_qz_given_x = log_normal(z, mu, logvar).sum(1)
    log_pz = log_normal(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
    weights = log_importance_weights(batch, dataset_size, estimator).to(z.device)
    log_qz = torch.logsumexp(pairwise.sum(2) + weights, dim=1)
    log_prod_qzd = torch.logsumexp(pairwise + weights[:, :, None], dim=1).sum(1)
    mi = (log_qz_given_x - log_qz).mean()
    tc = (log_qz - log_prod_qzd).mean()
    dwkl = (log_prod_qzd - log_pz).mean()
    return mi, tc, dwkl


class BetaTCVAE(Objective):
    """recon + α MI + β TC + γ DWKL."""

    def __init__(
        self,
        likelihood: str = "bernoulli",
        alpha: float = 1.0,
        gamma: float = 1.0,
        estimator: str = "mws",
        dataset_size: int | None = None,
    ) -> None:
        super().__init__(likelihood)
        if estimator not in ESTIMATORS:
            raise ValueError(f"beta_tcvae estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.alpha, self.gamma, self.estimator = alpha, gamma, estimator
        self.dataset_size = dataset_size

    def setup(self, dataset_size: int) -> None:
        self.dataset_size = dataset_size

    def regularizer(
        self, out: VAEOutput, parts: Parts, beta: float, step: int
    ) -> tuple[torch.Tensor, Parts]:
        n = self.dataset_size or len(out.z)
        mi, tc, dwkl = tc_decomposition(out.z, out.mu, out.logvar, n, self.estimator)
        penalty = self.alpha * mi + beta * tc + self.gamma * dwkl
        return penalty, {"mi": mi, "tc": tc, "dwkl": dwkl}
