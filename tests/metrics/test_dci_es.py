"""DCI-ES explicitness and size (Eastwood et al. 2023): the area formula on curves worked by
hand, the cut forests against forests grown to each depth, the known answers of perfect,
rotated, noise and duplicated codes; and Tripod's random-forest DCI beside them."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from tests.metrics.toy import (
    ToySource,
    duplicate_encoder,
    identity_encoder,
    mixing_encoder,
    noise_encoder,
)
from vaelab.metrics.classifiers import forest_classifier
from vaelab.metrics.codes import sample_codes
from vaelab.metrics.dci import dci_from_codes
from vaelab.metrics.dci_es import (
    cut_forest_proba,
    dci_es_from_codes,
    explicitness,
    loss_capacity_curves,
    probe_forest,
    size,
)
from vaelab.metrics.settings import DEPTHS

FEW_TREES = 20


def codes_of(encode, n=1000, seed=0):
    rng = np.random.default_rng(seed)
    return (*sample_codes(ToySource(), encode, n, rng), *sample_codes(ToySource(), encode, n, rng))


def test_explicitness_by_hand():
    """Capacities 1, 2, 4, baseline 0.5, Z = ½ · 3 · 0.5 = 0.75:
    losses 0.5, 0.25, 0: area 0.375 + 0.25 -> E = 1 - 0.625 / 0.75 = 1/6;
    0.5, 0.1, 0.3 is taken as 0.5, 0.1, 0.1 (best so far): area 0.3 + 0.2 -> E = 1/3;
    perfect at once -> 1; never below the baseline -> -1."""
    losses = np.array([[0.5, 0.25, 0.0], [0.5, 0.1, 0.3], [0.0, 0.0, 0.0], [0.5, 0.5, 0.6]])
    got = explicitness(losses, [1, 2, 4], np.full(4, 0.5))
    np.testing.assert_allclose(got, [1 / 6, 1 / 3, 1.0, -1.0])
    # a loss falling linearly from the baseline to 0 over the grid scores 0
    assert explicitness(np.array([[0.8, 0.4, 0.0]]), [0, 1, 2], np.array([0.8]))[0] == 0.0
    # float32 losses and baselines are integrated in float64: exactly the float64 copy's result
    low, base = np.array([[0.7, 0.3, 0.1]], np.float32), np.array([0.9], np.float32)
    want = explicitness(low.astype(np.float64), [1, 2, 4], base.astype(np.float64))
    np.testing.assert_array_equal(explicitness(low, [1, 2, 4], base.astype(np.float64)), want)
    np.testing.assert_array_equal(explicitness(low.astype(np.float64), [1, 2, 4], base), want)


def test_size_is_factors_over_latents():
    assert size(3, 3) == 1.0 and size(3, 4) == 0.75 and size(5, 10) == 0.5


def test_a_cut_tree_is_the_tree_grown_to_that_depth():
    """One tree on all rows and the one feature (no random choice of rows or features): cut at
    each depth it predicts exactly what a tree fitted with that maximum depth predicts."""
    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(2000, 1)), rng.normal(size=(500, 1))
    y = (np.abs(x[:, 0]) * 6).astype(int) % 7
    kw = {"n_estimators": 1, "bootstrap": False, "max_features": None, "random_state": 0}
    full = RandomForestClassifier(**kw).fit(x, y)
    depths = [1, 2, 3, 5, 8, 40]
    for depth, proba in zip(depths, cut_forest_proba(full, x_test, depths), strict=True):
        grown = RandomForestClassifier(**kw, max_depth=depth).fit(x, y)
        np.testing.assert_allclose(proba, grown.predict_proba(x_test), atol=1e-12)


def test_a_cut_forest_averages_its_trees_in_any_order_of_depths():
    """Several bootstrapped trees on integer codes, whose split thresholds are the half-way
    points 0.5, 1.5, ...: cut below their depth the forest is the forest (its probabilities
    averaged over trees), rows lying on a threshold go left as in scikit-learn, and a float64
    row within float32 rounding of a threshold is compared as the float32 that scikit-learn
    sees. Depths given out of order give each depth's probabilities in that order."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 7, size=(600, 2)).astype(np.float64)
    y = (x[:, 0] + 2 * (x[:, 1] > 3)) % 5
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    on = np.stack(np.meshgrid(np.arange(7) + 0.5, np.arange(7) + 0.5), -1).reshape(-1, 2)
    near = on + 1e-12  # rounds to the threshold in float32
    x_test = np.concatenate([x[:50], on, near])
    (full,) = cut_forest_proba(forest, x_test, [60])
    np.testing.assert_allclose(full, forest.predict_proba(x_test), atol=1e-12)
    assert not np.allclose(full[-len(near) :], forest.predict_proba(near.astype(np.float32) + 1e-6))
    ordered = cut_forest_proba(forest, x_test, [1, 2, 3, 60])
    shuffled = cut_forest_proba(forest, x_test, [3, 60, 1, 2])
    for got, want in zip(shuffled, [ordered[i] for i in (2, 3, 0, 1)], strict=True):
        np.testing.assert_array_equal(got, want)


def test_cut_forests_follow_the_curve_of_forests_grown_to_each_depth():
    train, y, test, y_test = codes_of(mixing_encoder(), n=600)
    depths = (1, 2, 3, 4, 8)
    cut = loss_capacity_curves(train, y, test, y_test, depths, FEW_TREES)
    grown = loss_capacity_curves(train, y, test, y_test, depths, FEW_TREES, refit=True)
    assert np.abs(cut - grown).max() < 0.06
    assert (cut[:, 0] > cut[:, -1] + 0.2).all()  # stumps cannot tell 4 to 6 classes apart


def test_perfect_and_duplicated_codes():
    """Perfect codes: a factor of n classes needs depth ~log2 n, then the loss is 0, so E is
    high but under 1; a duplicated latent keeps E and lowers S to 3/4."""
    perfect = dci_es_from_codes(*codes_of(identity_encoder), num_trees=FEW_TREES)
    assert perfect["explicitness"] > 0.9 and perfect["size"] == 1.0
    assert perfect["losses"].shape == (3, len(DEPTHS)) and perfect["losses"][:, -1].max() == 0
    duplicated = dci_es_from_codes(*codes_of(duplicate_encoder), num_trees=FEW_TREES)
    assert duplicated["explicitness"] > 0.9 and duplicated["size"] == 0.75


def test_rotation_costs_axis_aligned_probes_capacity():
    """Two factors of 16 classes: as latents, each is read by few splits; rotated by 45°, the
    trees need a staircase of splits, so the loss falls later and E is lower."""
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 16, (3000, 2))
    rotation = np.array([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2)
    e = {}
    for name, codes in (("axis", factors * 1.0), ("rotated", factors @ rotation)):
        es = dci_es_from_codes(codes[:2000], factors[:2000], codes[2000:], factors[2000:],
                               num_trees=FEW_TREES)  # fmt: skip
        e[name] = es["explicitness"]
    assert e["axis"] > 0.85 and e["rotated"] < e["axis"] - 0.05  # measured 0.88 and 0.77


def test_noise_codes_never_beat_the_baseline():
    es = dci_es_from_codes(*codes_of(noise_encoder()), depths=(1, 4, 16), num_trees=FEW_TREES)
    assert es["explicitness"] < -0.85


@pytest.mark.filterwarnings("error")
def test_each_factor_against_its_own_baseline_and_constant_factors_left_out():
    """Factors: constant, binary, 4 classes. E_j is the area formula of the returned curve
    with the baseline 1 - 1/n_j of its own class count; the constant factor is NaN and left
    out of the mean; with no factor that varies, E is 0."""
    rng = np.random.default_rng(0)
    factors = np.stack([np.zeros(800, int), rng.integers(0, 2, 800), rng.integers(0, 4, 800)], 1)
    codes = np.stack([factors[:, 1], factors[:, 2], np.zeros(800)], 1) + rng.normal(
        0, 0.4, (800, 3)
    )
    depths = (1, 2, 4)
    es = dci_es_from_codes(codes[:400], factors[:400], codes[400:], factors[400:], depths, 10)
    assert np.isnan(es["per_factor"][0])
    want = explicitness(es["losses"][1:], depths, np.array([1 - 1 / 2, 1 - 1 / 4]))
    np.testing.assert_array_equal(es["per_factor"][1:], want)
    assert es["explicitness"] == np.mean(want)
    constant = np.zeros((400, 2), int)
    assert (
        dci_es_from_codes(codes[:400], constant, codes[400:], constant, depths, 10)["explicitness"]
        == 0.0
    )


@pytest.mark.parametrize("refit", [False, True])
def test_probes_grown_in_pieces_score_as_one_forest_grown_at_once(refit):
    """60 trees: pieces of 25, 25 and 10 trees, in this process and in two workers, give the
    losses of the probes fitted as one scikit-learn forest (cut, or grown to each depth)."""
    train, y, test, y_test = codes_of(mixing_encoder(), n=400)
    depths = (1, 2, 4, 8)
    want = np.zeros((y.shape[1], len(depths)))
    for j in range(y.shape[1]):
        if refit:
            probes = [probe_forest(d, 60, seed=5).fit(train, y[:, j]) for d in depths]
            predicted = [probe.predict(test) for probe in probes]
        else:
            forest = probe_forest(None, 60, seed=5).fit(train, y[:, j])
            proba = cut_forest_proba(forest, test, depths)
            predicted = [forest.classes_[p.argmax(axis=1)] for p in proba]
        want[j] = [1.0 - np.mean(p == y_test[:, j]) for p in predicted]
    for jobs in (1, 2):
        got = loss_capacity_curves(train, y, test, y_test, depths, 60, 5, refit, jobs)
        np.testing.assert_array_equal(got, want)


def test_the_seed_and_refit_reach_the_probes():
    """The same seed gives the same curves; another seed other forests (noisy codes); refit
    fits one forest per depth, as loss_capacity_curves does with the same seed."""
    train, y, test, y_test = codes_of(mixing_encoder(), n=300)
    depths = (1, 2, 4, 8)

    def losses(**kw):
        return dci_es_from_codes(train, y, test, y_test, depths, 10, **kw)["losses"]

    cut = losses(seed=3)
    np.testing.assert_array_equal(losses(seed=3), cut)
    assert np.abs(cut - losses(seed=4)).max() > 0
    refit = loss_capacity_curves(train, y, test, y_test, depths, 10, seed=3, refit=True)
    np.testing.assert_array_equal(losses(seed=3, refit=True), refit)
    assert np.abs(refit - cut).max() > 0
    assert np.abs(refit - losses(seed=4, refit=True)).max() > 0


def test_depths_must_increase():
    with pytest.raises(ValueError, match="must increase"):
        dci_es_from_codes(*codes_of(identity_encoder, n=50), depths=(4, 2))


def test_tripod_forest_dci():
    """Tripod's forest (100 trees, depth 10, entropy): a perfect code scores high D and C
    (one random latent offered per split, so some importance strays), a rotated one low; a
    duplicated latent lowers C more than D; noise codes are at chance on test codes."""
    forest = forest_classifier()
    assert (forest.n_estimators, forest.max_depth, forest.criterion) == (100, 10, "entropy")
    perfect = dci_from_codes(*codes_of(identity_encoder), estimator="rf")
    mixed = codes_of(mixing_encoder())
    rotated = dci_from_codes(*mixed, estimator="rf")
    assert perfect["disentanglement"] > 0.8 and perfect["completeness"] > 0.8
    assert perfect["informativeness_test"] == 1.0
    assert rotated["disentanglement"] < perfect["disentanglement"] - 0.3
    duplicated = dci_from_codes(*codes_of(duplicate_encoder), estimator="rf")
    assert duplicated["completeness"] < duplicated["disentanglement"] - 0.1
    noise = dci_from_codes(*codes_of(noise_encoder()), estimator="rf")
    assert noise["informativeness_test"] < 0.3  # chance ~0.2
    assert dci_from_codes(*mixed, estimator="rf", seed=0) == rotated  # the seed (default 0)
    assert dci_from_codes(*mixed, estimator="rf", seed=1) != rotated
