"""Separated Attribute Predictability (Kumar et al. 2018), discrete factors, as in
disentanglement_lib.

S[i, j] is the test accuracy of a linear SVM (``LinearSVC(C=0.01, class_weight="balanced")``)
predicting factor j from latent i alone; SAP = mean_j (S_(1)j - S_(2)j), the mean gap between
the two best latents of each factor.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.codes import sample_codes
from vaelab.metrics.utils import Encode, as_rng


def sap_matrix(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray
) -> np.ndarray:
    """Score matrix ``[D, K]`` of one-latent linear-SVM test accuracies."""
    d, k = codes.shape[1], factors.shape[1]
    scores = np.zeros((d, k))
    for i in range(d):
        for j in range(k):
            if len(np.unique(factors[:, j])) < 2:  # nothing to learn: predict the one class
                scores[i, j] = np.mean(factors_test[:, j] == factors[0, j])
                continue
            svm = LinearSVC(C=0.01, class_weight="balanced")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                svm.fit(codes[:, i : i + 1], factors[:, j])
            scores[i, j] = np.mean(svm.predict(codes_test[:, i : i + 1]) == factors_test[:, j])
    return scores


def sap_from_codes(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray
) -> float:
    """SAP score from train codes/factors ``[N, D]``/``[N, K]`` and test ones."""
    top = np.sort(sap_matrix(codes, factors, codes_test, factors_test), axis=0)
    return float(np.mean(top[-1] - top[-2]))


def sap_score(
    source: GroundTruthSource,
    encode: Encode,
    seed: int | np.random.Generator | None = 0,
    num_train: int = 10_000,
    num_test: int = 5_000,
) -> float:
    """SAP on the mean codes of ``num_train`` / ``num_test`` random images of ``source``."""
    rng = as_rng(seed)
    codes, factors = sample_codes(source, encode, num_train, rng)
    codes_test, factors_test = sample_codes(source, encode, num_test, rng)
    return sap_from_codes(codes, factors, codes_test, factors_test)
