"""The BetaVAE and FactorVAE scores beyond the toy known answers: every factor is drawn, the
one- and two-class edges, the FactorVAE score's invariance to a latent's scale, the pruning
boundary (s_d >= 0.05 with ddof = 1), and the settings each function passes on."""

import inspect

import numpy as np
import pytest
import torch

from tests.data.test_own_data import ToyTable
from tests.metrics.toy import ToySource, identity_encoder, noise_encoder
from vaelab.metrics.beta_vae import (
    beta_vae_features,
    beta_vae_from_draws,
    beta_vae_points,
    beta_vae_score,
    draw_beta_vae_points,
)
from vaelab.metrics.codes import CodeTable, DirectCodes
from vaelab.metrics.factor_vae import (
    FactorVAEDraw,
    VoteDraw,
    count_votes,
    draw_factor_vae,
    draw_votes,
    factor_vae_from_draws,
    factor_vae_score,
    factor_vae_votes,
    majority_vote_accuracy,
)


class TwoFactors(ToySource):
    factor_names = ("a", "b")
    factor_sizes = (4, 5)


class OneFactor(ToySource):
    factor_names = ("a",)
    factor_sizes = (6,)


def test_every_factor_is_drawn_as_the_fixed_one():
    for draw in (draw_beta_vae_points, draw_votes):
        labels = draw(ToySource(), 300, np.random.default_rng(0), 4).labels
        assert set(labels.tolist()) == {0, 1, 2}, draw.__name__


def test_a_batch_takes_the_fixed_class_of_its_first_sampled_row():
    """As disentanglement_lib: labels first, then the sampled rows; every row of a batch gets
    the class of factor k of the batch's first row, its other classes stay as sampled (a
    BetaVAE point: the second batch takes the first batch's class, row by row)."""
    source, p, b = ToySource(), 40, 5
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, p)
    sampled = source.sample_factors(p * b, rng).reshape(p, b, 3)
    want = sampled.copy()
    want[np.arange(p), :, labels] = sampled[np.arange(p), 0, labels][:, None]
    votes = draw_votes(source, p, np.random.default_rng(2), b)
    np.testing.assert_array_equal(votes.labels, labels)
    np.testing.assert_array_equal(source.factors_of(votes.indices.reshape(-1)), want.reshape(-1, 3))

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, p)
    first, second = (source.sample_factors(p * b, rng).reshape(p, b, 3) for _ in range(2))
    second[np.arange(p), :, labels] = first[np.arange(p), :, labels]
    points = draw_beta_vae_points(source, p, np.random.default_rng(3), b)
    np.testing.assert_array_equal(points.labels, labels)
    got = source.factors_of(points.indices.reshape(-1)).reshape(2, p, b, 3)
    np.testing.assert_array_equal(got, np.stack([first, second]))


def test_draws_from_a_source_that_is_not_a_grid_follow_the_seed():
    """About 60% of the toy grid's rows: the rows sharing a class are drawn among the observed
    ones by the seeded generator, so a seed gives the same draw again."""
    rows = np.flatnonzero(np.random.default_rng(1).random(len(ToySource())) < 0.6)
    assert not ToyTable(rows).is_grid
    for draw in (draw_votes, draw_beta_vae_points):
        a, b = (draw(ToyTable(rows), 50, np.random.default_rng(4), 6) for _ in range(2))
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_two_factors_are_classified_not_guessed():
    scores = beta_vae_score(TwoFactors(), identity_encoder, 0, 8, 200, 100)
    assert scores == {"train_accuracy": 1.0, "eval_accuracy": 1.0}


def test_one_factor_is_a_constant_classifier_that_is_always_right():
    scores = beta_vae_score(OneFactor(), identity_encoder, 0, 8, 50, 20)
    assert scores == {"train_accuracy": 1.0, "eval_accuracy": 1.0}


def test_one_training_point_is_a_constant_classifier_of_its_class():
    source = ToySource()
    codes = DirectCodes(source, identity_encoder)
    train = draw_beta_vae_points(source, 1, np.random.default_rng(0), 4)
    evaluation = draw_beta_vae_points(source, 60, np.random.default_rng(1), 4)
    share = float(np.mean(evaluation.labels == train.labels[0]))
    assert 0 < share < 1
    assert beta_vae_from_draws(train, evaluation, codes) == {
        "train_accuracy": 1.0,
        "eval_accuracy": share,
    }


@pytest.mark.filterwarnings("error")
def test_votes_of_batches_of_two_are_counted_as_integers():
    """Batches of 2 (the smallest with a variance, ddof = 1, no 0/0): images (0,0), (0,1),
    (1,0); the batch {0, 1} holds latent 0, the batch {0, 2} latent 1."""
    table = CodeTable(np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    draw = VoteDraw(np.array([[0, 1], [0, 2]]), np.array([0, 1]))
    votes = count_votes(draw, table, np.ones(2), np.ones(2, dtype=bool), 2)
    np.testing.assert_array_equal(votes, [[1, 0], [0, 1]])
    assert votes.dtype == np.int64


def test_the_batch_size_reaches_the_draws():
    source, b = ToySource(), 5
    features, labels = beta_vae_points(source, identity_encoder, 40, np.random.default_rng(1), b)
    draw = draw_beta_vae_points(source, 40, np.random.default_rng(1), b)
    np.testing.assert_array_equal(labels, draw.labels)
    np.testing.assert_array_equal(
        features, beta_vae_features(draw, DirectCodes(source, identity_encoder))
    )
    var, active = np.ones(3), np.ones(3, dtype=bool)
    noisy = noisy_codes(1.0)  # noise: which latent wins depends on the batch drawn
    votes = factor_vae_votes(source, noisy, 40, np.random.default_rng(1), var, active, b)
    draw = draw_votes(source, 40, np.random.default_rng(1), b)
    want = count_votes(draw, DirectCodes(source, noisy_codes(1.0)), var, active, 3)
    np.testing.assert_array_equal(votes, want)


def test_images_are_encoded_encode_batch_at_a_time():
    sizes: list[int] = []

    def encode(x):
        sizes.append(len(x))
        return identity_encoder(x)

    rng, var, active = np.random.default_rng(0), np.ones(3), np.ones(3, dtype=bool)
    calls = (
        lambda: beta_vae_points(ToySource(), encode, 30, rng, 4, encode_batch=7),
        lambda: beta_vae_score(ToySource(), encode, 0, 4, 30, 10, encode_batch=7),
        lambda: factor_vae_votes(ToySource(), encode, 30, rng, var, active, 4, encode_batch=7),
        lambda: factor_vae_score(ToySource(), encode, 0, 4, 30, 10, 50, encode_batch=7),
    )
    for call in calls:
        sizes.clear()
        call()
        assert max(sizes) == 7


def noisy_codes(scale: float):
    """Factors / 2 plus seeded noise of std 0.3, latent 0 multiplied by ``scale``."""
    noise = noise_encoder(3, seed=0)

    def encode(x):
        z = identity_encoder(x)[0] + 0.3 * noise(x)
        return z * torch.tensor([scale, 1.0, 1.0])

    return encode


def test_the_factor_vae_score_does_not_depend_on_a_latents_scale():
    """Votes compare Var_batch(z_d) / s_d^2, so multiplying z_0 by 1,000 changes nothing;
    without the division z_0 would never be the least variable latent."""
    base = factor_vae_score(ToySource(), noisy_codes(1.0), 0, 16, 300, 200, 500)
    scaled = factor_vae_score(ToySource(), noisy_codes(1000.0), 0, 16, 300, 200, 500)
    assert base == scaled
    assert base["eval_accuracy"] == 1.0  # the noise (std 0.3) is below the factors' spread


def vote_draw() -> FactorVAEDraw:
    """A hand-made draw over a code table: 3 images, latent 0 = (0, x, 0), latent 1 = 0."""
    votes = VoteDraw(np.array([[0, 1], [1, 2]]), np.array([0, 0]))
    return FactorVAEDraw(np.array([0, 1, 2]), votes, votes)


def test_pruning_keeps_s_d_equal_to_the_threshold_and_uses_ddof_1():
    x = 0.37
    table = CodeTable(np.array([[0.0, 0.0], [x, 0.0], [0.0, 0.0]]))
    s_d = float(np.sqrt(np.var([0.0, x, 0.0], ddof=1)))
    kept = factor_vae_from_draws(vote_draw(), table, 2, prune_threshold=s_d)
    assert kept == {"train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": 1.0}
    pruned = factor_vae_from_draws(vote_draw(), table, 2, prune_threshold=s_d * (1 + 1e-9))
    assert pruned == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}


def test_a_threshold_above_every_latent_prunes_all():
    scores = factor_vae_score(ToySource(), identity_encoder, 0, 4, 20, 10, 50, prune_threshold=1e9)
    assert scores == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}


def test_one_vote_rightly_classified_is_accuracy_one():
    assert majority_vote_accuracy(np.array([[1, 0], [0, 0]]), np.array([0, 0])) == 1.0
    assert majority_vote_accuracy(np.array([[0, 0], [1, 0]]), np.array([0, 0])) == 0.0


def test_defaults_are_disentanglement_libs():
    """Batches of 64, 10,000 training and 5,000 evaluation points, 10,000 images for the
    variances, prune at s_d < 0.05, seed 0."""
    want = {"batch_size": 64, "num_train": 10_000, "num_eval": 5_000,
            "num_variance_estimate": 10_000, "prune_threshold": 0.05, "seed": 0}  # fmt: skip
    functions = (beta_vae_score, beta_vae_points, draw_beta_vae_points, factor_vae_score,
                 factor_vae_votes, draw_factor_vae, draw_votes, factor_vae_from_draws)  # fmt: skip
    for function in functions:
        defaults = {
            name: p.default
            for name, p in inspect.signature(function).parameters.items()
            if name in want
        }
        assert defaults and defaults == {k: want[k] for k in defaults}, function.__name__
