"""β-TCVAE (Chen et al. 2018): the KL split into index-code MI, total correlation (TC) and
dimension-wise KL, each with its own weight:

    loss = recon + α · MI + β · TC + γ · DWKL,
    MI   = E[log q(z|x) − log q(z)],
    TC   = E[log q(z) − Σ_d log q(z_d)],
    DWKL = E[Σ_d log q(z_d) − log p(z)],

with z one sample per image, the aggregate posterior q(z) = 1/N Σ_n q(z|x_n) estimated on the
minibatch of M images as log q(z_i) ≈ logsumexp_j (w_ij + log q(z_i|x_j)), and the same
weights for each q(z_d). MI + TC + DWKL = E[log q(z|x) − log p(z)], the sampled KL that the
loss uses (``kl_sampled``; ``kl`` is the closed-form KL, equal in expectation).

Estimators (``estimator``), both with rows of w that sum to one, so each term is an estimate
of the quantity its name says and all three are 0 when q(z|x) is the prior:

- ``mws``, minibatch-weighted sampling: w_ij = 1/M. The paper writes 1/(N·M), which adds
  constants that cancel in MI + TC + DWKL and leave the gradient unchanged: its terms are
  MI + log N, TC + (D − 1) log N and DWKL − D log N (``mws_paper_offsets``). disentanglement_lib's
  TC (``total_correlation``, no normalisation) is this TC − (D − 1) log M.
- ``mss``, minibatch stratified sampling (the paper's appendix): the own sample 1/N, one
  other sample (N − M + 1)/(N(M − 1)), the rest 1/(M − 1). The official code's
  ``log_importance_weight_matrix`` writes its 1/N with the stride M, which walks down the
  first column instead of the diagonal (only row 0 weighs its own sample 1/N, and row M − 2
  sums to 1 + 1/(M − 1)); vaelab follows the paper.

β is the scheduled β; α = γ = 1 in the paper. N, the number of training images, is required.
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


def importance_weights(batch: int, dataset_size: int, estimator: str) -> torch.Tensor:
    """``[M, M]`` weights w_ij (rows sum to one) of log q(z_i) ≈ log Σ_j w_ij q(z_i|x_j).

    mws: 1/M. mss: own sample 1/N, the next one (cyclically) (N − M + 1)/(N(M − 1)), the
    others 1/(M − 1).
    """
    if estimator == "mws":
        return torch.full((batch, batch), 1.0 / batch, dtype=torch.float64)
    if batch < 2:
        raise ValueError("minibatch stratified sampling needs a batch of at least 2")
    if dataset_size < batch:
        raise ValueError(
            f"minibatch stratified sampling needs N >= M, got N={dataset_size} training images "
            f"and a batch of M={batch}"
        )
    n, m = dataset_size, batch
    weights = torch.full((m, m), 1.0 / (m - 1), dtype=torch.float64)
    rows = torch.arange(m)
    weights[rows, rows] = 1.0 / n
    weights[rows, (rows + 1) % m] = (n - m + 1) / (n * (m - 1))
    return weights


def mws_paper_offsets(dataset_size: int, latent_dim: int) -> tuple[float, float, float]:
    """What the paper's MWS weight 1/(N·M) adds to (MI, TC, DWKL).

    log N, (D − 1) log N and −D log N: they sum to 0, so the loss's gradient is unchanged.
    """
    log_n = math.log(dataset_size)
    return log_n, (latent_dim - 1) * log_n, -latent_dim * log_n


def tc_decomposition(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int, estimator: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch means of (MI, TC, DWKL), computed in float32 with logsumexp."""
    z, mu, logvar = z.float(), mu.float(), logvar.float()
    batch = len(z)
    pairwise = log_normal(z[:, None], mu[None], logvar[None])  # [i, j, d] = log q(z_id | x_j)
    log_qz_given_x = log_normal(z, mu, logvar).sum(1)
    log_pz = log_normal(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
    log_w = importance_weights(batch, dataset_size, estimator).log().float().to(z.device)
    log_qz = torch.logsumexp(pairwise.sum(2) + log_w, dim=1)
    log_prod_qzd = torch.logsumexp(pairwise + log_w[:, :, None], dim=1).sum(1)
    mi = (log_qz_given_x - log_qz).mean()
    tc = (log_qz - log_prod_qzd).mean()
    dwkl = (log_prod_qzd - log_pz).mean()
    return mi, tc, dwkl


class BetaTCVAE(Objective):
    """recon + α MI + β TC + γ DWKL; logs mi, tc, dwkl and kl_sampled = mi + tc + dwkl."""

    batchable = True

    uses_batch_statistics = True

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
        if not self.dataset_size:
            raise ValueError(
                "BetaTCVAE needs N, the number of training images, for its estimate of q(z): "
                "pass BetaTCVAE(dataset_size=N) or call objective.setup(dataset_size=N) "
                "(VAEModule does so from its data module's training split)."
            )
        n = self.dataset_size
        mi, tc, dwkl = tc_decomposition(out.z, out.mu, out.logvar, n, self.estimator)
        penalty = self.alpha * mi + beta * tc + self.gamma * dwkl
        return penalty, {"mi": mi, "tc": tc, "dwkl": dwkl, "kl_sampled": mi + tc + dwkl}
