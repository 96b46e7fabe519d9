"""Interventional robustness score (Suter et al. 2019), as in disentanglement_lib.

Factors are binned as the latents are (20 equal-width bins, ``discretize``); latents that
never vary are dropped. For latent i and factor j, with the codes of the images that share
the value v of factor j,

    dev[i, j] = mean_v  quantile_q( |z_i - E[z_i | v_j = v]| ),   q = 0.99,
    R[i, j]   = 1 - dev[i, j] / max |z_i - E[z_i]|,

and IRS = sum_i w_i max_j R[i, j] / sum_i w_i with w_i = max |z_i - E[z_i]| (a latent that
keeps still when its factor is held fixed scores 1).
"""

from __future__ import annotations

import numpy as np

from vaelab.metrics.settings import NUM_BINS
from vaelab.metrics.utils import discretize

DIFF_QUANTILE = 0.99


def irs_matrix(
    codes: np.ndarray, factors: np.ndarray, diff_quantile: float = DIFF_QUANTILE
) -> tuple[np.ndarray, np.ndarray]:
    """``(R [D, K], max deviations [D])`` of codes ``[N, D]`` and factor bins ``[N, K]``."""
    codes = np.asarray(codes, dtype=np.float64)
    max_dev = np.abs(codes - codes.mean(0)).max(0)
    dev = np.zeros((codes.shape[1], factors.shape[1]))
    for j in range(factors.shape[1]):
        values = np.unique(factors[:, j])
        for v in values:
            group = codes[factors[:, j] == v]
            dev[:, j] += np.quantile(np.abs(group - group.mean(0)), diff_quantile, axis=0)
        dev[:, j] /= len(values)
    return 1.0 - dev / max_dev[:, None], max_dev


def irs_from_codes(
    codes: np.ndarray,
    factors: np.ndarray,
    diff_quantile: float = DIFF_QUANTILE,
    num_bins: int = NUM_BINS,
) -> dict[str, float]:
    """``{"irs", "active_dims"}`` of mean codes ``[N, D]`` and factor classes ``[N, K]``."""
    codes = np.asarray(codes, dtype=np.float64)
    active = codes[:, codes.var(0) > 0]
    if active.shape[1] == 0:
        return {"irs": 0.0, "active_dims": 0.0}
    r, max_dev = irs_matrix(active, discretize(factors, num_bins), diff_quantile)
    return {"irs": float(np.average(r.max(1), weights=max_dev)), "active_dims": float(len(r))}
