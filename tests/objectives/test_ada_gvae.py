"""Ada-GVAE / Ada-ML-VAE against disentanglement_lib's ``weak_vae.py``, formula by formula on
fixed tensors (a float64 numpy reimplementation and numbers worked by hand), and the module
trained on pairs through a real Lightning Trainer."""

from __future__ import annotations

import json
import math

import lightning as L
import numpy as np
import pytest
import torch

from tests.conftest import TINY, run_cli
from tests.data.test_datamodule import make as numbered_data
from vaelab.nets import MLPDecoder, MLPEncoder
from vaelab.objectives.ada_gvae import AdaGVAE, pair_divergence, shared_dimensions
from vaelab.objectives.base import VAEOutput
from vaelab.schedules import Constant
from vaelab.weak import AdaGVAEModule

# ---- disentanglement_lib's formulas, in float64 numpy, one loop per pair -------------------


def ref_compute_kl(z1, z2, logvar1, logvar2):
    var1, var2 = np.exp(logvar1), np.exp(logvar2)
    return var1 / var2 + np.square(z2 - z1) / var2 - 1 + logvar2 - logvar1


def ref_histogram_bins(x, lo, hi, nbins=2):
    """tf.histogram_fixed_width_bins: floor(nbins * (x - lo) / (hi - lo)) clipped; a NaN
    (hi == lo) casts to INT_MIN, i.e. not bin 1."""
    out = []
    for v in x:
        with np.errstate(invalid="ignore", divide="ignore"):
            scaled = np.floor(nbins * ((v - lo) / (hi - lo)))
        out.append(np.iinfo(np.int32).min if np.isnan(scaled) else int(min(max(scaled, 0), 1)))
    return np.array(out)


def ref_aggregate(mu1, lv1, mu2, lv2, averaging):
    kl = ref_compute_kl(mu1, mu2, lv1, lv2)
    var1, var2 = np.exp(lv1), np.exp(lv2)
    if averaging == "gvae":
        new_mean, new_lv = 0.5 * mu1 + 0.5 * mu2, np.log(0.5 * var1 + 0.5 * var2)
    else:
        new_var = 2 * var1 * var2 / (var1 + var2)
        new_mean, new_lv = (mu1 / var1 + mu2 / var2) * new_var * 0.5, np.log(new_var)
    mask = np.stack([ref_histogram_bins(row, row.min(), row.max()) == 1 for row in kl])
    first = np.where(mask, mu1, new_mean), np.where(mask, lv1, new_lv)
    second = np.where(mask, mu2, new_mean), np.where(mask, lv2, new_lv)
    return first, second, ~mask


def ref_loss(x1, x2, logits1, logits2, post1, post2, beta):
    """``GroupVAEBase.model_fn``: 0.5 (recon_1 + recon_2) + beta 0.5 (KL_1 + KL_2)."""

    def bernoulli(x, logits):  # sigmoid cross-entropy summed over pixels, mean over batch
        per = np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))
        return per.reshape(len(x), -1).sum(1).mean()

    def gaussian_kl(mu, lv):
        return (0.5 * (np.square(mu) + np.exp(lv) - lv - 1)).sum(1).mean()

    recon = 0.5 * bernoulli(x1, logits1) + 0.5 * bernoulli(x2, logits2)
    kl = 0.5 * gaussian_kl(*post1) + 0.5 * gaussian_kl(*post2)
    return recon + beta * kl, recon, kl


def codes(seed: int, n: int = 6, d: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, d)), rng.normal(size=(n, d)) * 0.7,
            rng.normal(size=(n, d)), rng.normal(size=(n, d)) * 0.7]  # fmt: skip


def t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64)


# ---- formula by formula --------------------------------------------------------------------


def test_the_divergence_is_twice_the_kl_between_the_two_posteriors():
    mu1, lv1, mu2, lv2 = codes(0)
    got = pair_divergence(t(mu1), t(lv1), t(mu2), t(lv2)).numpy()
    assert np.allclose(got, ref_compute_kl(mu1, mu2, lv1, lv2), rtol=1e-12)
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(t(mu1), t(lv1).mul(0.5).exp()),
        torch.distributions.Normal(t(mu2), t(lv2).mul(0.5).exp()),
    )
    assert np.allclose(got, 2 * kl.numpy(), rtol=1e-12)


def test_shared_dimensions_are_the_lower_of_two_equal_width_bins_by_hand():
    delta = torch.tensor(
        [
            [0.0, 0.01, 4.0, 9.0],  # midpoint 4.5: the first three are shared
            [0.0, 1.0, 2.0, 0.5],  # the midpoint itself (1.0) is in the upper bin
            [3.0, 3.0, 3.0, 3.0],  # all equal: TF's bin is NaN -> every dimension averaged
            [5.0, 1.0, 4.9, 2.9],  # midpoint 3.0
        ]
    )
    expected = [[1, 1, 1, 0], [1, 0, 0, 1], [1, 1, 1, 1], [0, 1, 0, 1]]
    assert shared_dimensions(delta).int().tolist() == expected
    for row, want in zip(delta.numpy(), expected, strict=True):
        assert ((ref_histogram_bins(row, row.min(), row.max()) != 1) == np.array(want)).all()


@pytest.mark.parametrize("averaging", ["gvae", "ml"])
def test_the_aggregated_posteriors_match_the_reference(averaging):
    mu1, lv1, mu2, lv2 = codes(1)
    mu1[2], lv1[2] = mu2[2], lv2[2]  # an identical pair: everything averaged
    (m1, l1), (m2, l2), shared = AdaGVAE(averaging=averaging).aggregate(
        t(mu1), t(lv1), t(mu2), t(lv2)
    )
    (r_m1, r_l1), (r_m2, r_l2), r_shared = ref_aggregate(mu1, lv1, mu2, lv2, averaging)
    assert (shared.numpy() == r_shared).all() and shared[2].all() and not shared.all()
    for got, want in [(m1, r_m1), (l1, r_l1), (m2, r_m2), (l2, r_l2)]:
        assert np.allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    assert torch.allclose(m1[2], t(mu1[2])) and torch.allclose(l1[2], t(lv1[2]))


def test_gvae_averages_and_ml_vae_multiplies_by_hand():
    # one pair, two dims: mu = (0, 1) vs (2, 3), var = (1, 1) vs (3, 1); delta = (1/3 + 4/3 -
    # 1 + ln 3, 1 + 4 - 1) = (1.765, 4) -> midpoint 2.88: dim 0 shared, dim 1 not.
    mu1, mu2 = torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0, 3.0]])
    lv1, lv2 = torch.log(torch.tensor([[1.0, 1.0]])), torch.log(torch.tensor([[3.0, 1.0]]))
    (m, lv), (m2, lv2_out), shared = AdaGVAE(averaging="gvae").aggregate(mu1, lv1, mu2, lv2)
    assert shared.tolist() == [[True, False]]
    assert torch.allclose(m, torch.tensor([[1.0, 1.0]])) and torch.allclose(m2[0, 1], mu2[0, 1])
    assert torch.allclose(lv2_out[0, 1], lv2[0, 1]) and torch.allclose(lv2_out[0, 0], lv[0, 0])
    assert math.isclose(lv[0, 0].exp().item(), 2.0, rel_tol=1e-6)  # (1 + 3) / 2
    (m, lv), _, _ = AdaGVAE(averaging="ml").aggregate(mu1, lv1, mu2, lv2)
    assert math.isclose(lv[0, 0].exp().item(), 1.5, rel_tol=1e-6)  # 2 * 1 * 3 / (1 + 3)
    assert math.isclose(m[0, 0].item(), (0 / 1 + 2 / 3) * 1.5 * 0.5, rel_tol=1e-6)  # 0.5


@pytest.mark.parametrize("averaging", ["gvae", "ml"])
def test_the_pair_loss_is_the_mean_of_the_two_images_beta_vae_losses(averaging):
    mu1, lv1, mu2, lv2 = codes(2, n=4, d=3)
    rng = np.random.default_rng(3)
    x1, x2 = rng.random((4, 1, 2, 2)), rng.random((4, 1, 2, 2))
    logits1, logits2 = rng.normal(size=(4, 1, 2, 2)), rng.normal(size=(4, 1, 2, 2))
    objective = AdaGVAE(averaging=averaging)
    first, second, _ = objective.aggregate(t(mu1), t(lv1), t(mu2), t(lv2))
    out1 = VAEOutput(mu=first[0], logvar=first[1], z=first[0], logits=t(logits1))
    out2 = VAEOutput(mu=second[0], logvar=second[1], z=second[0], logits=t(logits2))
    parts = objective.pair_loss(t(x1), out1, t(x2), out2, beta=4.0)
    post1, post2, _ = ref_aggregate(mu1, lv1, mu2, lv2, averaging)
    loss, recon, kl = ref_loss(x1, x2, logits1, logits2, post1, post2, 4.0)
    assert math.isclose(parts["loss"].item(), loss, rel_tol=1e-6)
    assert math.isclose(parts["recon"].item(), recon, rel_tol=1e-6)
    assert math.isclose(parts["kl"].item(), kl, rel_tol=1e-6)
    assert math.isclose(parts["kl_per_dim"].sum().item(), kl, rel_tol=1e-6)


def test_an_unknown_averaging_is_refused():
    with pytest.raises(ValueError, match="averaging must be one of"):
        AdaGVAE(averaging="mean")


# ---- the module on pairs ---------------------------------------------------------------------


def ada_module(averaging: str = "gvae") -> AdaGVAEModule:
    torch.manual_seed(0)
    shape = (1, 8, 8)
    return AdaGVAEModule(
        MLPEncoder(shape, 16, 4), MLPDecoder(shape, 16, 4), AdaGVAE(averaging=averaging),
        Constant(1.0), lambda p: torch.optim.Adam(p, lr=1e-3), latent_dim=4,
    )  # fmt: skip


def test_pair_forward_encodes_averages_and_decodes_each_image():
    model = ada_module()
    x = torch.rand(5, 2, 1, 8, 8)
    x[0, 1] = x[0, 0]  # an identical pair shares every dimension
    out1, out2, shared = model.pair_forward(x, torch.Generator().manual_seed(0))
    mu_a, lv_a = model.encode(x[:, 0])
    mu_b, lv_b = model.encode(x[:, 1])
    (m1, l1), (m2, l2), want = model.objective.aggregate(mu_a, lv_a, mu_b, lv_b)
    assert torch.equal(shared, want) and shared[0].all()
    assert torch.allclose(out1.mu, m1) and torch.allclose(out1.logvar, l1)
    assert torch.allclose(out2.mu, m2) and torch.allclose(out2.logvar, l2)
    generator = torch.Generator().manual_seed(0)
    eps1, eps2 = torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)
    assert torch.allclose(out1.z, m1 + (0.5 * l1).exp() * eps1, atol=1e-6)
    assert torch.allclose(out2.z, m2 + (0.5 * l2).exp() * eps2, atol=1e-6)
    assert torch.allclose(out2.logits, model.decode(out2.z), atol=1e-6)
    with pytest.raises(ValueError, match="trains on pairs"):
        model.pair_forward(torch.rand(5, 1, 8, 8))


def test_the_step_loss_is_the_pair_loss_of_each_image_against_its_own_pixels():
    from vaelab.weak import pair_parts

    model = ada_module()
    x = torch.rand(5, 2, 1, 8, 8)
    out1, out2, shared = model.pair_forward(x, torch.Generator().manual_seed(0))
    parts = pair_parts(model.objective, x, out1, out2, shared, beta=4.0, step=3)
    first, second = model.objective(x[:, 0], out1, 4.0), model.objective(x[:, 1], out2, 4.0)
    for key in ("loss", "recon", "kl"):
        torch.testing.assert_close(parts[key], (first[key] + second[key]) / 2)
    torch.testing.assert_close(parts["shared_dims"], shared.float().sum(1).mean())


def test_the_pair_module_refuses_another_objective_by_name():
    from vaelab.objectives import BetaVAE

    shape = (1, 8, 8)
    with pytest.raises(ValueError, match="trains with the AdaGVAE objective, got BetaVAE"):
        AdaGVAEModule(
            MLPEncoder(shape, 16, 4), MLPDecoder(shape, 16, 4), BetaVAE(),
            Constant(1.0), lambda p: torch.optim.Adam(p), latent_dim=4,
        )  # fmt: skip


def test_a_tiny_training_on_pairs_through_the_trainer(tmp_path):
    model = ada_module(averaging="ml")
    before = [p.detach().clone() for p in model.parameters()]
    data = numbered_data(pairs=True)
    trainer = L.Trainer(
        max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
        val_check_interval=3, log_every_n_steps=1, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 6
    logged = trainer.callback_metrics
    assert torch.isfinite(logged["train/loss"]) and 0 <= logged["train/shared_dims"] <= 4
    assert "val/elbo" in logged and logged["val/elbo"] < 0  # validation on single images
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_training_resumed_mid_epoch_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path):
    """The pair stream and ε come back: 120 images, 12 batches of 8 per epoch; stopped at
    step 9 of 15 (mid-epoch 1) and resumed, the weights equal those of one run of 15 steps."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from vaelab.callbacks import RandomState

    def train(max_steps: int, folder: str, ckpt_path: str | None = None) -> AdaGVAEModule:
        L.seed_everything(0, verbose=False)
        model = ada_module()
        checkpoints = ModelCheckpoint(tmp_path / folder, every_n_train_steps=9, save_top_k=-1)
        trainer = L.Trainer(
            max_steps=max_steps, accelerator="cpu", logger=False, enable_progress_bar=False,
            enable_model_summary=False, limit_val_batches=0, deterministic=True,
            callbacks=[checkpoints, RandomState()], default_root_dir=tmp_path,
        )  # fmt: skip
        trainer.fit(model, datamodule=numbered_data(pairs=True), ckpt_path=ckpt_path)
        assert trainer.global_step == max_steps
        return model

    whole = train(15, "whole")
    train(9, "stopped")
    (saved,) = (tmp_path / "stopped").glob("*.ckpt")
    resumed = train(15, "resumed", str(saved))
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    fresh = train(6, "fresh")  # 6 more steps from scratch differ: the resume did something
    assert not torch.equal(next(fresh.parameters()), next(whole.parameters()))


def test_the_module_needs_the_ada_gvae_objective():
    from vaelab.objectives import BetaVAE

    with pytest.raises(ValueError, match="AdaGVAE objective"):
        AdaGVAEModule(
            MLPEncoder((1, 8, 8), 16, 4), MLPDecoder((1, 8, 8), 16, 4), BetaVAE(),
            Constant(1.0), lambda p: torch.optim.Adam(p), latent_dim=4,
        )  # fmt: skip


# ---- through the CLI -----------------------------------------------------------------------


def test_data_without_factors_is_refused_before_training(tmp_path):
    result = run_cli(tmp_path / "run", "model=ada_gvae", "data=digits", "arch=mlp",
                     "data.image_size=8", *TINY[1:], process=False)  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "digits has no factors of variation" in result.stderr


def test_ada_gvae_trains_through_the_cli(tmp_path):
    run = tmp_path / "run"
    result = run_cli(run, "model=ada_gvae", "model.averaging=ml", *TINY, process=False)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["step"] == 6
    assert metrics["metrics"]["val/elbo"] < 0 and "train/shared_dims" in metrics["metrics"]
    config = (run / ".hydra" / "config.yaml").read_text()
    assert "module: vaelab.weak.AdaGVAEModule" in config and "averaging: ml" in config
    assert list((run / "figures").glob("*.png"))
