"""Known answers: identity codes are perfectly disentangled, rotated codes are not, noise
codes carry nothing, duplicated latents lower completeness only."""

import numpy as np
import pytest

from tests.metrics.toy import (
    ToySource,
    duplicate_encoder,
    identity_encoder,
    mixing_encoder,
    noise_encoder,
)
from vaelab.metrics.beta_vae import beta_vae_points, beta_vae_score
from vaelab.metrics.codes import sample_codes
from vaelab.metrics.dci import completeness, dci_from_codes, disentanglement
from vaelab.metrics.factor_vae import factor_vae_score, factor_vae_votes
from vaelab.metrics.mig import mig_from_codes
from vaelab.metrics.modularity import explicitness_from_codes, modularity_from_mi
from vaelab.metrics.sap import sap_from_codes
from vaelab.metrics.suite import evaluate_disentanglement

SMALL = {"num_train": 1000, "num_test": 500, "num_variance_estimate": 1000, "batch_size": 32,
         "downstream_sizes": (10, 100), "fairness_per_class": 5}  # fmt: skip


def codes_of(encode, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return (*sample_codes(ToySource(), encode, n, rng), *sample_codes(ToySource(), encode, n, rng))


@pytest.fixture(scope="module")
def identity_scores():
    return evaluate_disentanglement(ToySource(), identity_encoder, seed=0, **SMALL)


def test_identity_codes_are_perfectly_disentangled(identity_scores):
    s = identity_scores
    assert s["disent/mig"] > 0.9
    assert s["disent/dci[gbt]/d"] > 0.95 and s["disent/dci[gbt]/c"] > 0.95
    assert s["disent/dci[gbt]/i_test"] == pytest.approx(1.0)
    assert s["disent/beta_vae_train"] == 1.0 and s["disent/beta_vae_eval"] == 1.0
    assert s["disent/factor_vae_train"] == 1.0 and s["disent/factor_vae_eval"] == 1.0
    assert s["disent/factor_vae_active_dims"] == 3
    assert s["disent/modularity"] > 0.95
    assert s["disent/explicitness_test"] > 0.8
    assert s["disent/sap"] > 0.15
    assert all(s[f"disent/time/{m}"] >= 0 for m in ("mig", "dci", "beta_vae", "factor_vae"))


def test_rotated_codes_score_lower(identity_scores):
    s = evaluate_disentanglement(
        ToySource(), mixing_encoder(), seed=0, metrics=("mig", "dci", "modularity"), **SMALL
    )
    assert s["disent/mig"] < identity_scores["disent/mig"] - 0.4
    assert s["disent/dci[gbt]/d"] < identity_scores["disent/dci[gbt]/d"] - 0.3
    assert s["disent/modularity"] < identity_scores["disent/modularity"] - 0.05
    assert s["disent/dci[gbt]/i_test"] > 0.9  # the information is all still there


def test_noise_codes_score_at_chance():
    """Codes drawn afresh at every request carry nothing. (A code table would fix one random
    code per image, and on 120 images that code identifies the image: the metric functions'
    direct path, which encodes every request anew, is the one to test here.)"""
    train, y, test, y_test = codes_of(noise_encoder(), n=1000)
    assert mig_from_codes(train, y) < 0.05
    assert sap_from_codes(train, y, test, y_test) < 0.05
    assert dci_from_codes(train, y, test, y_test)["informativeness_test"] < 0.4  # chance ~0.2
    assert explicitness_from_codes(train, y, test, y_test)["test"] < 0.6  # chance AUC is 0.5
    beta = beta_vae_score(ToySource(), noise_encoder(), 0, 32, 1000, 500)
    assert beta["eval_accuracy"] < 0.5  # chance is 1/3
    factor = factor_vae_score(ToySource(), noise_encoder(), 0, 32, 1000, 500, 1000)
    assert factor["eval_accuracy"] < 0.55


def test_duplicated_latent_lowers_completeness_only():
    train, y, test, y_test = codes_of(duplicate_encoder, n=1000)
    dci = dci_from_codes(train, y, test, y_test)
    assert dci["disentanglement"] > 0.9
    assert dci["completeness"] < 0.9
    ident = dci_from_codes(*codes_of(identity_encoder, n=1000))
    assert dci["completeness"] < ident["completeness"] - 0.1


def test_mig_of_duplicated_latent_is_low_for_that_factor():
    train, y, _, _ = codes_of(duplicate_encoder)
    # factor a has two equally informative latents (gap ~0); b and c have gap ~1
    assert mig_from_codes(train, y) == pytest.approx(2 / 3, abs=0.07)


def test_dci_hand_matrices():
    assert disentanglement(np.eye(3)) == pytest.approx(1.0)
    assert completeness(np.eye(3)) == pytest.approx(1.0)
    assert disentanglement(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-9)
    assert completeness(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-9)
    dup = np.array([[0.5, 0.0], [0.5, 0.0], [0.0, 1.0]])  # factor 0 split over two codes
    assert disentanglement(dup) == pytest.approx(1.0)
    expected_c = 0.5 * (1 - np.log(2) / np.log(3)) + 0.5 * 1.0
    assert completeness(dup) == pytest.approx(expected_c, abs=1e-6)


def test_modularity_hand_matrix():
    # row 0 sees one factor (1), row 1 two equally (0), row 2 nothing (0 by convention)
    mi = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    assert modularity_from_mi(mi) == pytest.approx(1 / 3)
    # three factors, a latent with (2, 1, 0): delta = 1 / (4 * 2)
    assert modularity_from_mi(np.array([[2.0, 1.0, 0.0]])) == pytest.approx(1 - 1 / 8)


def test_sap_separates_structure_from_noise():
    ident = sap_from_codes(*codes_of(identity_encoder, n=1000))
    noise = sap_from_codes(*codes_of(noise_encoder(), n=1000))
    assert ident > noise + 0.15


def test_explicitness_perfect_for_identity():
    e = explicitness_from_codes(*codes_of(identity_encoder, n=1000))
    noise = explicitness_from_codes(*codes_of(noise_encoder(), n=1000))
    assert e["test"] > noise["test"] + 0.25
    assert noise["test"] == pytest.approx(0.5, abs=0.06)


def test_beta_vae_features_vanish_on_the_fixed_factor():
    feats, labels = beta_vae_points(
        ToySource(), identity_encoder, 200, np.random.default_rng(0), 16
    )
    assert feats.shape == (200, 3)
    np.testing.assert_allclose(feats[np.arange(200), labels], 0.0, atol=1e-6)
    others = np.ones_like(feats, dtype=bool)
    others[np.arange(200), labels] = False
    assert (feats[others] > 0).all()


def test_factor_vae_votes_on_the_diagonal():
    rng = np.random.default_rng(0)
    codes, _ = sample_codes(ToySource(), identity_encoder, 500, rng)
    var = codes.var(axis=0, ddof=1)
    votes = factor_vae_votes(ToySource(), identity_encoder, 300, rng, var, var > 0, 16)
    assert votes.sum() == 300
    assert np.trace(votes) == 300


def test_factor_vae_prunes_collapsed_latents():
    def encode(x):
        z, _ = identity_encoder(x)
        return np.concatenate([z.numpy(), np.full((len(z), 2), 0.3)], 1)  # 2 dead latents

    s = factor_vae_score(ToySource(), encode, 0, 16, 300, 200, 500)
    assert s["num_active_dims"] == 3 and s["eval_accuracy"] == 1.0


def test_scores_are_reproducible_and_seeded():
    a = beta_vae_score(ToySource(), noise_encoder(), 3, 16, 200, 100)
    b = beta_vae_score(ToySource(), noise_encoder(), 3, 16, 200, 100)
    assert a == b


def test_unknown_settings_are_rejected():
    with pytest.raises(TypeError, match="num_trian"):
        evaluate_disentanglement(ToySource(), identity_encoder, num_trian=10)
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate_disentanglement(ToySource(), identity_encoder, metrics=("mig", "foo"))


def test_mig_is_normalised_by_the_factors_entropy_not_the_codes():
    # a binary factor read exactly by a code spread over 20 bins (H(code) = log 20 > H(v) =
    # log 2) and a second code of pure noise: MI(z_0; v) = H(v), so MIG is close to 1
    rng = np.random.default_rng(0)
    factor = rng.integers(0, 2, (4000, 1))
    codes = np.concatenate([factor + rng.uniform(0, 0.9, (4000, 1)), rng.normal(size=(4000, 1))], 1)
    assert mig_from_codes(codes, factor) == pytest.approx(1.0, abs=0.02)
