"""Scores that need no factors (disentanglement_lib's unsupervised metrics), from the
covariance Σ of the mean codes ``[N, D]`` and their discretised mutual information.

- Gaussian total correlation: KL(N(0, Σ) || N(0, diag Σ)) = ½ (Σ_i log Σ_ii − log det Σ);
- Gaussian Wasserstein dependency: W2²(N(0, Σ), N(0, diag Σ))
  = 2 tr Σ − 2 tr (diag(Σ)^½ Σ diag(Σ)^½)^½, and the same divided by tr Σ;
- mutual information score: the mean over pairs i ≠ j of I(z_i; z_j) in nats, each latent in
  20 equal-width bins.

Each is 0 for independent latents and grows with their dependence.
"""

from __future__ import annotations

import numpy as np

from vaelab.metrics.settings import NUM_BINS
from vaelab.metrics.utils import discrete_mutual_info, discretize


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """½ (Σ_i log Σ_ii − log det Σ) of a covariance ``[D, D]``, over the latents that vary:
    a constant latent (a quantized model's unused one) is independent of all others and adds
    0, where the formula would give log 0 − log 0."""
    varying = np.diag(cov) > 0
    cov = cov[varying][:, varying]
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_dependency(cov: np.ndarray) -> float:
    """2 tr Σ − 2 tr (D^½ Σ D^½)^½ with D = diag Σ (the symmetric form of the same trace)."""
    root = np.sqrt(np.diag(cov))
    eig = np.linalg.eigvalsh(root[:, None] * cov * root[None, :])
    return float(2.0 * np.trace(cov) - 2.0 * np.sum(np.sqrt(np.clip(eig, 0.0, None))))


def mutual_info_score(codes: np.ndarray, num_bins: int = NUM_BINS) -> float:
    """Mean I(z_i; z_j) over the D (D − 1) ordered pairs i ≠ j (0 for one latent)."""
    d = codes.shape[1]
    if d < 2:
        return 0.0
    binned = discretize(codes, num_bins)
    mi = discrete_mutual_info(binned, binned)
    np.fill_diagonal(mi, 0.0)
    return float(mi.sum() / (d * d - d))


def unsupervised_from_codes(codes: np.ndarray, num_bins: int = NUM_BINS) -> dict[str, float]:
    """The four scores of mean codes ``[N, D]``."""
    cov = np.atleast_2d(np.cov(np.asarray(codes, dtype=np.float64), rowvar=False))
    wasserstein = gaussian_wasserstein_dependency(cov)
    return {
        "gaussian_tc": gaussian_total_correlation(cov),
        "gaussian_wasserstein": wasserstein,
        "gaussian_wasserstein_norm": wasserstein / float(np.trace(cov)),
        "mutual_info": mutual_info_score(codes, num_bins),
    }
