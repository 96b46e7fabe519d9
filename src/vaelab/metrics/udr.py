"""UDR, the unsupervised disentanglement ranking of Duan et al. (2020), with
disentanglement_lib's definitions: models trained alike (same hyperparameters, other seeds)
that disentangle agree on their latents up to permutation and sign; entangled ones do not.

For models a and b encoded on the same N inputs (mean codes, each latent standardised):

- a latent is active when its KL(q(z_d|x) || N(0, 1)), averaged over the inputs, exceeds
  ``kl_threshold`` (0.01); inactive latents are zeroed and left out;
- R_ab ``[D_a, D_b]`` is the similarity of latents: |W| of a Lasso (α = 0.1) that predicts
  b's codes from a's (the default), or |Spearman ρ| of each pair;
- the pair's score is R's relative strength over the active latents,
  UDR_ab = ½ (mean_j max_i R_ij² / Σ_i R_ij + mean_i max_j R_ij² / Σ_j R_ij),
  a row or column of zeros counting 0: 1 for a permutation matrix of ones, lower when a latent
  of one model spreads over several of the other. Lasso shrinks a perfect match to 1 − α,
  so copies of one model score 0.9 with it and 1 with Spearman;
- a model's UDR is the median of UDR_ab over the other models a of its group (with b the
  model; disentanglement_lib's ``model_scores``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import Lasso

Similarity = Literal["lasso", "spearman"]
KL_THRESHOLD = 0.01  # nats: latents below it are inactive
LASSO_ALPHA = 0.1


def kl_per_latent(mu: np.ndarray, logvar: np.ndarray | None) -> np.ndarray:
    """Mean over inputs of KL(N(μ, σ²) || N(0, 1)) = ½ (μ² + σ² − log σ² − 1), ``[D]``;
    a deterministic code (no ``logvar``) counts every latent as active (+inf)."""
    if logvar is None:
        return np.full(mu.shape[1], np.inf)
    return np.mean(0.5 * (mu**2 + np.exp(logvar) - logvar - 1.0), axis=0)


def relative_strength(r: np.ndarray) -> float:
    """½ (mean over columns of max² / sum + mean over rows of the same); 0/0 counts 0."""
    if r.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        columns = np.nan_to_num(r.max(axis=0) ** 2 / r.sum(axis=0))
        rows = np.nan_to_num(r.max(axis=1) ** 2 / r.sum(axis=1))
    return float((columns.mean() + rows.mean()) / 2.0)


def similarity(
    a: np.ndarray, b: np.ndarray, method: Similarity, alpha: float = LASSO_ALPHA
) -> np.ndarray:
    """R ``[D_a, D_b]`` between the latents of codes ``a [N, D_a]`` and ``b [N, D_b]``."""
    if method == "lasso":
        return np.abs(Lasso(alpha=alpha).fit(a, b).coef_).reshape(b.shape[1], a.shape[1]).T
    if method == "spearman":
        ranks = rankdata(np.concatenate([a, b], axis=1), axis=0)  # ρ: Pearson of ranks
        with np.errstate(invalid="ignore"):
            rho = np.corrcoef(ranks, rowvar=False)[: a.shape[1], a.shape[1] :]
        return np.nan_to_num(np.abs(rho))  # constant (zeroed) latents: 0
    raise ValueError(f"unknown similarity {method!r}; choose lasso or spearman")


def standardised(codes: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Each latent to mean 0 and variance 1 (constant ones to 0), inactive ones zeroed."""
    codes = np.asarray(codes, dtype=np.float64)
    std = codes.std(axis=0)
    scaled = (codes - codes.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return scaled * active


@dataclass
class UDRResult:
    """``pairwise[a, b]`` = UDR_ab (NaN on the diagonal) and each model's ``scores [M]``."""

    pairwise: np.ndarray
    scores: np.ndarray
    active: list[np.ndarray]


def udr(
    codes: Sequence[np.ndarray],
    kls: Sequence[np.ndarray],
    method: Similarity = "lasso",
    kl_threshold: float = KL_THRESHOLD,
    alpha: float = LASSO_ALPHA,
) -> UDRResult:
    """UDR of M ≥ 2 models from their mean codes on the same inputs ``[N, D_m]`` and their
    KL per latent ``[D_m]`` (module docstring)."""
    if len(codes) < 2 or len(codes) != len(kls):
        raise ValueError(f"UDR needs the codes and KLs of 2 or more models, got "
                         f"{len(codes)} and {len(kls)}")  # fmt: skip
    active = [np.asarray(kl) > kl_threshold for kl in kls]
    scaled = [standardised(c, m) for c, m in zip(codes, active, strict=True)]
    m = len(codes)
    pairwise = np.full((m, m), np.nan)
    for a in range(m):
        for b in range(m):
            if a != b:
                r = similarity(scaled[a], scaled[b], method, alpha)
                pairwise[a, b] = relative_strength(r[active[a]][:, active[b]])
    scores = np.array([np.median(np.delete(pairwise[:, b], b)) for b in range(m)])
    return UDRResult(pairwise, scores, active)
