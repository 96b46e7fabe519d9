"""InfoMEC (Hsu et al. 2023): the ratio scores and the pruning rules on hand-made inputs, the
logistic-regression port on a case whose log-loss is known in closed form, and the known
answers of the toy codes (perfect, rotated, noise, duplicated)."""

import numpy as np
import pytest
from sklearn.feature_selection import mutual_info_classif

from tests.metrics.toy import (
    ToySource,
    duplicate_encoder,
    identity_encoder,
    mixing_encoder,
    noise_encoder,
)
from vaelab.metrics.codes import sample_codes
from vaelab.metrics.infomec import (
    _log_loss_of_fit,
    active_latents,
    infoe,
    infom_infoc,
    infomec_from_codes,
    normalized_mutual_info,
)
from vaelab.metrics.utils import discrete_entropy


def codes_of(encode, n=1000, seed=0):
    return sample_codes(ToySource(), encode, n, np.random.default_rng(seed))


def test_ratio_scores_by_hand():
    """NMI [K=2, D=3]: every latent informs one factor (InfoM 1); factor 0 keeps 0.9 of its
    0.9 + 0.1 in one latent, factor 1 all: InfoC = ((0.9 + 1) / 2 - 1/3) / (1 - 1/3) = 0.925."""
    nmi = np.array([[0.9, 0.1, 0.0], [0.0, 0.0, 0.5]])
    infom, infoc = infom_infoc(nmi, np.ones(3, bool))
    assert infom == pytest.approx(1.0) and infoc == pytest.approx(0.925)
    # two latents each 0.6 of one factor and 0.2 of the other: both ratios 0.75 -> 0.5
    mixed = np.array([[0.6, 0.2], [0.2, 0.6]])
    assert infom_infoc(mixed, np.ones(2, bool)) == pytest.approx((0.5, 0.5))
    # pruning latent 1 leaves one latent per factor: InfoC 1
    assert infom_infoc(nmi, np.array([True, False, True])) == pytest.approx((1.0, 1.0))


@pytest.mark.filterwarnings("error")
def test_ratio_edges():
    """No active latent: 0 and 0 (Tripod); one: InfoC 1; a latent with no information counts
    as chance (ratio 1/K), which adds 0, without dividing 0 by 0 on the way (no numpy
    warning reaches the user); one factor: InfoM 1."""
    nmi = np.array([[0.8, 0.0], [0.0, 0.0]])
    assert infom_infoc(nmi, np.zeros(2, bool)) == (0.0, 0.0)
    assert infom_infoc(nmi, np.array([True, False]))[1] == 1.0
    # latent 1 is empty: InfoM = mean(1, 1/2) -> ((0.75 - 0.5) / 0.5) = 0.5; factor 1 is empty
    # (chance 1/2): InfoC = mean(1, 1/2) -> 0.5
    assert infom_infoc(nmi, np.ones(2, bool)) == pytest.approx((0.5, 0.5))
    assert infom_infoc(np.array([[0.3, 0.1]]), np.ones(2, bool))[0] == 1.0


def test_the_two_pruning_rules():
    """Latent 0 spans 2, latent 1 0.05 (under 2 / 20), latent 2 is constant but for one
    outlier: its range keeps it under QLAE's rule, its interquartile range (0) drops it under
    Tripod's (IQR > max IQR / 10)."""
    rng = np.random.default_rng(0)
    codes = np.stack([rng.uniform(-1, 1, 400), rng.uniform(0, 0.05, 400), np.zeros(400)], 1)
    codes[0, 2] = 3.0
    np.testing.assert_array_equal(active_latents(codes, "range"), [True, False, True])
    np.testing.assert_array_equal(active_latents(codes, "iqr"), [True, False, False])
    # the bounds themselves: a latent at 1 / 20.5 of the widest is dropped, at 1 / 19.5 kept
    # (ranges and IQRs scale alike; IQR: 1 / 10.5 dropped, 1 / 9.5 kept)
    line = np.linspace(-3, 3, 400)  # IQR 3: the quantized rule's fixed 0.1 would differ
    edge = np.stack([line, line / 20.5, line / 19.5], 1)
    np.testing.assert_array_equal(active_latents(edge, "range"), [True, False, True])
    edge = np.stack([line, line / 10.5, line / 9.5], 1)
    np.testing.assert_array_equal(active_latents(edge, "iqr"), [True, False, True])
    with pytest.raises(ValueError, match="unknown InfoMEC pruning 'std'"):
        active_latents(codes, "std")


def test_the_nearest_neighbour_estimate_follows_the_seed():
    """scikit-learn breaks the ties of continuous latents with seeded noise: on codes with
    ties the same seed gives the same NMI bit for bit, another seed another NMI."""
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, (500, 2))
    ties = np.stack([factors[:, 0] + (rng.random(500) < 0.2), rng.integers(0, 3, 500)], 1)
    codes = ties.astype(float)
    first = infomec_from_codes(codes, factors, seed=0)["nmi"]
    np.testing.assert_array_equal(infomec_from_codes(codes, factors, seed=0)["nmi"], first)
    assert np.abs(infomec_from_codes(codes, factors, seed=1)["nmi"] - first).max() > 1e-3


def test_normalized_mutual_info_of_a_perfect_and_an_independent_latent():
    """A latent equal to a factor's class (jittered) carries H(v): NMI ~ 1; an independent
    latent ~ 0 (the k-nearest-neighbour estimate is clipped at 0)."""
    rng = np.random.default_rng(1)
    factors = rng.integers(0, 5, (2000, 2))
    codes = np.stack([factors[:, 0] + 0.01 * rng.normal(size=2000), rng.normal(size=2000)], 1)
    nmi = normalized_mutual_info(codes, factors)
    assert nmi[0, 0] == pytest.approx(1.0, abs=0.03)
    assert nmi[0, 1] < 0.02 and nmi[1].max() < 0.02


def test_infoe_port_on_a_closed_form_case():
    """One binary latent z and a balanced binary factor with P(v = z) = 0.75: the logistic
    regression is saturated, so its log-loss is H(v | z) = h(0.75); the null model with
    balanced weights predicts 1/2, log-loss log 2: InfoE = 1 - h(0.75) / log 2 = 0.18872."""
    z = np.repeat([0.0, 0.0, 1.0, 1.0], [150, 50, 150, 50])[:, None]
    v = np.repeat([0, 1, 1, 0], [150, 50, 150, 50])
    h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert _log_loss_of_fit(z, v) == pytest.approx(h, abs=1e-4)
    assert _log_loss_of_fit(np.zeros_like(z), v) == pytest.approx(np.log(2))
    assert infoe(z, v[:, None]) == pytest.approx(1 - h / np.log(2), abs=2e-4)
    # an imbalanced factor: balanced weights still make the null model uniform (log 3)
    labels = np.repeat([0, 1, 2], [300, 60, 40])
    assert _log_loss_of_fit(np.zeros((400, 2)), labels) == pytest.approx(np.log(3))


def test_perfect_codes():
    codes, factors = codes_of(identity_encoder)
    s = infomec_from_codes(codes, factors)
    assert s["infom"] > 0.97 and s["infoc"] > 0.97 and s["infoe"] == pytest.approx(1, abs=1e-3)
    assert s["active_dims"] == 3 and s["nmi"].shape == (3, 3)


def test_rotated_codes_lose_modularity_and_compactness_not_explicitness():
    codes, factors = codes_of(mixing_encoder())
    s = infomec_from_codes(codes, factors)
    assert s["infom"] < 0.5 and s["infoc"] < 0.5
    assert s["infoe"] > 0.95  # a linear model still reads every factor


def test_noise_codes_carry_nothing():
    """InfoE is ~0. InfoM and InfoC are ratios of the NMI's estimation noise here (the
    reference's definition has no floor), so only the NMI itself is checked."""
    codes, factors = codes_of(noise_encoder())
    s = infomec_from_codes(codes, factors)
    assert abs(s["infoe"]) < 0.02
    assert s["nmi"].max() < 0.05


def test_duplicated_latent_lowers_compactness_only():
    """Factor a in two latents: its ratio is ~1/2, (0.5 - 1/4) / (3/4) = 1/3, the others 1:
    InfoC ~ (1/3 + 2) / 3 = 0.78; every latent still informs one factor (InfoM ~ 1)."""
    codes, factors = codes_of(duplicate_encoder)
    s = infomec_from_codes(codes, factors)
    assert s["infom"] > 0.97
    assert s["infoc"] == pytest.approx(0.78, abs=0.03)
    assert s["active_dims"] == 4


def test_quantized_latents_are_classes():
    """Every combination of two 3-class factors 20 times; latents on the grid {-1, 0, 1}:
    z0 = f0, z1 = f1, z2 constant. The plug-in NMI is exactly the identity (independent
    classes: I = 0), z2 is pruned (range 0; IQR 0 <= 0.1), InfoM = InfoC = 1; the one-hot
    logistic regression reads both factors (InfoE ~ 1)."""
    factors = np.tile(np.array([[a, b] for a in range(3) for b in range(3)]), (20, 1))
    codes = np.concatenate([factors - 1.0, np.zeros((len(factors), 1))], 1)
    for pruning in ("range", "iqr"):
        s = infomec_from_codes(codes, factors, pruning, discrete_latents=True)
        np.testing.assert_allclose(s["nmi"], [[1, 0, 0], [0, 1, 0]], atol=1e-12)
        np.testing.assert_array_equal(s["active"], [True, True, False])
        assert (s["infom"], s["infoc"]) == pytest.approx((1.0, 1.0))
        assert s["infoe"] > 0.99
    # a quantized latent of range 2 beside one of range 80: kept (range > 0), where the
    # continuous rule (range > 80 / 20) would drop it
    wide = np.stack([40.0 * (factors[:, 0] - 1), factors[:, 1] - 1.0], 1)
    s = infomec_from_codes(wide, factors, "range", discrete_latents=True)
    np.testing.assert_array_equal(s["active"], [True, True])
    assert s["infoc"] == pytest.approx(1.0)
    # and a binary latent (IQR 1) beside one of IQR 80: kept under the IQR rule (IQR > 0.1),
    # where the continuous rule (IQR > 80 / 10) would drop it
    binary = np.stack([wide[:, 0], factors[:, 1] > 0], 1).astype(float)
    s = infomec_from_codes(binary, factors, "iqr", discrete_latents=True)
    np.testing.assert_array_equal(s["active"], [True, True])
    # InfoE reads quantized latents one-hot: a factor that is 1 on the middle value of three
    # is read exactly, which no linear function of the value itself can do
    grid = np.repeat([-1.0, 0.0, 1.0], 100)[:, None]
    middle = (grid[:, 0] == 0).astype(int)[:, None]
    assert infomec_from_codes(grid, middle, discrete_latents=True)["infoe"] > 0.99
    assert infomec_from_codes(grid, middle)["infoe"] < 0.1
    # a latent with one class in a hundred off its value: range 1 keeps it, IQR 0 drops it
    rare = np.zeros((100, 1))
    rare[0] = 1.0
    assert active_latents(rare, "range", discrete_latents=True)[0]
    assert not active_latents(rare, "iqr", discrete_latents=True)[0]


def test_float32_codes_are_scored_as_their_float64_values():
    """Encoders give float32: the kNN estimate and the logistic regression both run on the
    codes cast to float64, so a float32 array scores exactly as its float64 copy."""
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, (400, 2))
    low = (factors + rng.normal(0, 0.7, (400, 2))).astype(np.float32)
    got, want = (
        infomec_from_codes(low, factors),
        infomec_from_codes(low.astype(np.float64), factors),
    )
    for key in ("infom", "infoe", "infoc"):
        assert got[key] == want[key], key
    np.testing.assert_array_equal(got["nmi"], want["nmi"])


@pytest.mark.filterwarnings("error")
def test_a_constant_factor_carries_nothing_and_the_factors_after_it_are_measured():
    """A factor with one class (H = 0) has NMI 0 without dividing by its entropy; the factor
    after it is still measured."""
    rng = np.random.default_rng(1)
    factors = np.stack([np.zeros(1000, int), rng.integers(0, 5, 1000)], 1)
    codes = np.stack([factors[:, 1] + 0.01 * rng.normal(size=1000), rng.normal(size=1000)], 1)
    s = infomec_from_codes(codes, factors)
    np.testing.assert_array_equal(s["nmi"][0], [0.0, 0.0])
    assert s["nmi"][1, 0] == pytest.approx(1.0, abs=0.03)
    assert np.isfinite([s["infom"], s["infoe"], s["infoc"]]).all()
    assert s["infoe"] > 0.95  # factor 1 is read from latent 0
    # no factor varies: nothing to predict, InfoE 0
    assert infoe(codes, np.zeros((1000, 2), int)) == 0.0


def test_the_nmi_is_the_references_nearest_neighbour_estimate():
    """NMI_kj = mutual_info_classif(standardized z, v_k, k = 10 neighbours, the seed) / H(v_k),
    the reference's call, on codes where k = 3 (scikit-learn's default) gives other values."""
    rng = np.random.default_rng(2)
    factors = rng.integers(0, 3, (300, 2))
    codes = factors + rng.normal(0, 0.8, (300, 2))
    z = (codes - codes.mean(0)) / codes.std(0)
    want = np.stack([
        mutual_info_classif(z, factors[:, k], n_neighbors=10, random_state=7)
        / discrete_entropy(factors[:, k : k + 1])[0]
        for k in range(2)
    ])  # fmt: skip
    np.testing.assert_allclose(normalized_mutual_info(codes, factors, seed=7), want, rtol=1e-12)
