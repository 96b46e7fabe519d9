"""The fast DCI estimator agrees with disentanglement_lib's GradientBoostingClassifier."""

import numpy as np
import pytest

from vaelab.metrics.dci import dci_from_codes


def model_like_codes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Codes with a known, imperfect structure: nonlinear, partly mixed, noisy, one dead."""
    factors = np.stack([rng.integers(0, s, n) for s in (3, 6, 10)], 1)
    v = factors / np.array([2, 5, 9])
    codes = np.stack(
        [
            np.tanh(3 * (v[:, 2] - 0.5)) + 0.1 * rng.normal(size=n),
            v[:, 1] + 0.4 * (factors[:, 0] == 1) + 0.1 * rng.normal(size=n),
            0.5 * (factors[:, 0] == 2) + 0.3 * v[:, 1] + 0.1 * rng.normal(size=n),
            0.4 * v[:, 2] - 0.3 * v[:, 1] + 0.1 * rng.normal(size=n),
            0.02 * rng.normal(size=n),
        ],
        1,
    )
    return codes, factors


@pytest.mark.parametrize("seed", [0, 1])
def test_hist_agrees_with_sklearn_reference(seed):
    rng = np.random.default_rng(seed)
    train, test = model_like_codes(600, rng), model_like_codes(300, rng)
    fast = dci_from_codes(*train, *test, estimator="hist")
    ref = dci_from_codes(*train, *test, estimator="sklearn")
    assert 0.2 < ref["disentanglement"] < 0.95  # a structure that is neither 0 nor 1
    assert abs(fast["disentanglement"] - ref["disentanglement"]) < 0.05
    assert abs(fast["completeness"] - ref["completeness"]) < 0.05
    assert abs(fast["informativeness_test"] - ref["informativeness_test"]) < 0.1


def test_unknown_estimator():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"unknown DCI estimator 'xgb'; choose from \['hist', "):
        dci_from_codes(*model_like_codes(50, rng), *model_like_codes(20, rng), estimator="xgb")
