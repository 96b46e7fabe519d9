"""InfoMEC: InfoM (modularity), InfoE (explicitness), InfoC (compactness) of Hsu et al. 2023,
"Disentanglement via Latent Quantization" (NeurIPS), as their reference code computes them
(kylehkhsu/latent_quantization and kylehkhsu/tripod, ``metrics/infomec.py``).

Normalized mutual information ``NMI [K, D]`` of factor v_k and latent z_j,
NMI_kj = I(v_k; z_j) / H(v_k), with H the plug-in entropy of the factor's classes and I the
k-nearest-neighbour estimate of scikit-learn's ``mutual_info_classif`` (Ross 2014, k = 10) on
standardized latents: the reference does not bin continuous latents. The L latents kept by
the pruning rule (below) form NMI~ ``[K, L]``; with the ratio r = max / sum,

    InfoM = (mean_j r(NMI~_.j) - 1/K) / (1 - 1/K)   (each latent's information in one factor)
    InfoC = (mean_k r(NMI~_k.) - 1/L) / (1 - 1/L)   (each factor's information in one latent)
    InfoE = mean_k (H_null(v_k) - H_lr(v_k | z)) / H_null(v_k)

H_lr is the mean log-loss, on the codes it was fitted to, of an unpenalized multinomial
logistic regression from all standardized latents with balanced class weights (lbfgs, at most
100 iterations); H_null the same model given only zeros, which with balanced weights predicts
the uniform distribution: H_null = log(number of classes). The reference's
``LogisticRegression(penalty=None, multi_class="multinomial", ...)`` is written here as
``C=inf`` without ``multi_class``: lbfgs fits the multinomial model by default since
scikit-learn 1.5, and 1.7 removed the argument (the unpenalized binary model has the same
optimum).

Pruning of inactive latents, the one point where the two reference copies differ:
``"range"`` (QLAE) keeps latents whose range max - min exceeds max_j range / 20; ``"iqr"``
(Tripod) those whose interquartile range exceeds max_j IQR / 10. Without active latents InfoM
and InfoC are 0 (Tripod); with one, InfoC is 1 (its normalization 0/0: every factor sits in
that latent). Where the reference divides 0 by 0 (a latent or factor with no information at
all) the ratio counts as chance, 1/K or 1/L, which adds 0 to the mean.

Quantized latents (``discrete_latents=True``, for QLAE-like models) are treated as the
reference treats them: each latent's values are classes, I is the plug-in mutual information
of the two class variables, the logistic regression reads the latents one-hot, and the
pruning keeps latents whose range exceeds 0 (``"range"``) or whose IQR exceeds 0.1
(``"iqr"``).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, mutual_info_score
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from vaelab.metrics.utils import discrete_entropy, standardize

Pruning = Literal["range", "iqr"]
PRUNINGS: tuple[str, ...] = ("range", "iqr")
NEIGHBOURS = 10  # k of the reference's mutual_info_classif
MAX_ITER = 100  # lbfgs iterations of the reference's logistic regression


def active_latents(
    codes: np.ndarray, pruning: Pruning = "range", discrete_latents: bool = False
) -> np.ndarray:
    """Boolean ``[D]``: range > max range / 20 (``"range"``) or IQR > max IQR / 10 (``"iqr"``);
    for discrete latents range > 0 or IQR > 0.1."""
    if pruning == "range":
        spread = codes.max(0) - codes.min(0)
        floor = 0.0 if discrete_latents else spread.max() / 20
    elif pruning == "iqr":
        q1, q3 = np.quantile(codes, [0.25, 0.75], axis=0)
        spread = q3 - q1
        floor = 0.1 if discrete_latents else spread.max() / 10
    else:
        raise ValueError(f"unknown InfoMEC pruning {pruning!r}; choose from {list(PRUNINGS)}")
    return spread > floor


def normalized_mutual_info(
    codes: np.ndarray, factors: np.ndarray, seed: int = 0, discrete_latents: bool = False
) -> np.ndarray:
    """NMI ``[K, D]``: kNN estimate of I(v_k; z_j) (k = 10) over the plug-in H(v_k); the
    plug-in I of the classes for discrete latents."""
    z, _ = standardize(np.asarray(codes, dtype=np.float64))
    nmi = np.zeros((factors.shape[1], z.shape[1]))
    entropy = discrete_entropy(factors)
    for k in range(factors.shape[1]):
        if entropy[k] == 0:
            continue
        if discrete_latents:
            classes = [np.unique(column, return_inverse=True)[1] for column in codes.T]
            mi = [mutual_info_score(factors[:, k], c) for c in classes]
        else:
            mi = mutual_info_classif(
                z, factors[:, k], discrete_features=False, n_neighbors=NEIGHBOURS,
                random_state=seed,
            )  # fmt: skip
        nmi[k] = np.asarray(mi) / entropy[k]
    return nmi


def _ratio_score(nmi: np.ndarray, axis: int) -> float:
    """(mean over the other axis of max / sum along ``axis`` - 1/n) / (1 - 1/n)."""
    n = nmi.shape[axis]
    total = nmi.sum(axis=axis)
    ratio = np.where(total > 0, nmi.max(axis=axis) / np.where(total > 0, total, 1.0), 1.0 / n)
    return float((ratio.mean() - 1.0 / n) / (1.0 - 1.0 / n))


def infom_infoc(nmi: np.ndarray, active: np.ndarray) -> tuple[float, float]:
    """InfoM and InfoC of ``nmi [K, D]`` restricted to the ``active`` latents."""
    pruned = nmi[:, active]
    if pruned.shape[1] == 0:
        return 0.0, 0.0
    infoc = 1.0 if pruned.shape[1] == 1 else _ratio_score(pruned, axis=1)
    infom = _ratio_score(pruned, axis=0) if nmi.shape[0] > 1 else 1.0
    return infom, infoc


def _log_loss_of_fit(inputs: np.ndarray, labels: np.ndarray) -> float:
    """Mean log-loss, on its own training rows, of the reference's logistic regression."""
    model = LogisticRegression(C=np.inf, class_weight="balanced", max_iter=MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the reference stops at 100 too
        model.fit(inputs, labels)
    return float(log_loss(labels, model.predict_proba(inputs), labels=model.classes_))


def infoe(codes: np.ndarray, factors: np.ndarray, discrete_latents: bool = False) -> float:
    """InfoE: mean over factors of 1 - H_lr(v_k | z) / H_null(v_k) (module docstring)."""
    if discrete_latents:
        z = OneHotEncoder(sparse_output=False).fit_transform(codes)
    else:
        z, _ = standardize(np.asarray(codes, dtype=np.float64))
    scores = []
    with threadpool_limits(1):
        for k in range(factors.shape[1]):
            labels = factors[:, k]
            if len(np.unique(labels)) < 2:  # nothing to predict: the null model is perfect
                continue
            fitted = _log_loss_of_fit(z, labels)
            null = _log_loss_of_fit(np.zeros((len(z), codes.shape[1])), labels)
            scores.append((null - fitted) / null)
    return float(np.mean(scores)) if scores else 0.0


def infomec_from_codes(
    codes: np.ndarray,
    factors: np.ndarray,
    pruning: Pruning = "range",
    seed: int = 0,
    discrete_latents: bool = False,
) -> dict[str, float | np.ndarray]:
    """``{"infom", "infoe", "infoc", "active_dims", "nmi" [K, D], "active" [D]}`` from codes
    ``[N, D]`` and factor classes ``[N, K]``, all on the same rows as the reference does."""
    active = active_latents(codes, pruning, discrete_latents)
    with threadpool_limits(1):
        nmi = normalized_mutual_info(codes, factors, seed, discrete_latents)
    infom, infoc = infom_infoc(nmi, active)
    return {
        "infom": infom,
        "infoe": infoe(codes, factors, discrete_latents),
        "infoc": infoc,
        "active_dims": float(active.sum()),
        "nmi": nmi,
        "active": active,
    }
