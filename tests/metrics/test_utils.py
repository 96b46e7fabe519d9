import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from tests.metrics.toy import ToySource, identity_encoder
from vaelab.metrics.codes import sample_codes
from vaelab.metrics.utils import (
    discrete_entropy,
    discrete_mutual_info,
    discretize,
    mutual_info,
)


def test_mutual_info_by_hand():
    a = np.array([0, 0, 1, 1])
    assert mutual_info(a, np.array([0, 1, 0, 1])) == pytest.approx(0.0, abs=1e-12)
    assert mutual_info(a, a) == pytest.approx(np.log(2))
    # p(a,b) = [[1/2, 0], [1/4, 1/4]] -> I = 1/2 log(4/3) + 1/4 log(2/3) + 1/4 log 2
    expected = 0.5 * np.log(4 / 3) + 0.25 * np.log(2 / 3) + 0.25 * np.log(2)
    assert mutual_info(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])) == pytest.approx(expected)


def test_mi_matrix_matches_sklearn():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 20, (500, 3))
    factors = np.stack([codes[:, 0] // 4, rng.integers(0, 3, 500)], 1)
    m = discrete_mutual_info(codes, factors)
    ref = [[mutual_info_score(factors[:, j], codes[:, i]) for j in range(2)] for i in range(3)]
    np.testing.assert_allclose(m, ref, atol=1e-12)
    assert m[0, 0] == pytest.approx(discrete_entropy(factors[:, :1])[0])  # factor is f(code)


def test_entropy_of_uniform():
    factors = np.repeat(np.arange(4), 25)[:, None]
    assert discrete_entropy(factors)[0] == pytest.approx(np.log(4))


def test_discretize_matches_disentanglement_lib():
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(1000, 2))
    ref = np.stack(
        [np.digitize(c, np.histogram(c, 20)[1][:-1]) for c in codes.T], 1
    )  # bins 1..20 in disentanglement_lib
    out = discretize(codes)
    np.testing.assert_array_equal(out, ref - 1)
    assert out.min() == 0 and out.max() == 19


def test_sample_codes_encodes_the_sampled_factors():
    codes, factors = sample_codes(ToySource(), identity_encoder, 300, np.random.default_rng(0), 64)
    np.testing.assert_allclose(codes * 2, factors, atol=1e-5)
