"""VAEModule in a real Lightning Trainer on the CPU: x = images / 255, z = mu + sigma * eps,
the objective's N taken from the training split, one optimizer per network, the logging
cadence and the NaN policy."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from tests.data.test_datamodule import make as numbered_data
from tests.poison import PoisonedBetaVAE
from vaelab.errors import NonFiniteLossError
from vaelab.module import VAEModule, reparameterize
from vaelab.nets import MLPDecoder, MLPEncoder
from vaelab.objectives import AnnealedVAE, BetaTCVAE, BetaVAE, FactorVAE
from vaelab.schedules import Constant, Linear


def module(objective=None, variational: bool = True, side: int = 4, **kwargs) -> VAEModule:
    torch.manual_seed(0)
    shape = (1, side, side)
    return VAEModule(
        MLPEncoder(shape, 8, 3, variational=variational), MLPDecoder(shape, 8, 3),
        objective or BetaVAE(), Constant(1.0), lambda p: torch.optim.Adam(p, lr=1e-3),
        latent_dim=3, **kwargs,
    )  # fmt: skip


def fit(model: VAEModule, data, max_steps: int = 6, **kwargs) -> L.Trainer:
    settings = dict(accelerator="cpu", logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer = L.Trainer(max_steps=max_steps, **{**settings, **kwargs})
    if isinstance(data, L.LightningDataModule):
        trainer.fit(model, datamodule=data)
    else:
        trainer.fit(model, train_dataloaders=DataLoader(data, batch_size=8))
    return trainer


def images(n: int = 48) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator())


def test_uint8_batches_become_x_in_0_1():
    x = module().on_after_batch_transfer(torch.tensor([0, 51, 255], dtype=torch.uint8), 0)
    assert x.dtype == torch.float32 and x[0] == 0.0 and x[2] == 1.0
    assert x[1].item() == pytest.approx(0.2, abs=1e-7)


def test_reparameterize_is_mu_plus_sigma_eps_with_the_generators_eps():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(4, 3, dtype=torch.float64, generator=g), torch.randn(4, 3, generator=g)
    logvar = logvar.double()
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(3))
    eps = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert z.dtype == torch.float64 and torch.equal(z, mu + torch.exp(0.5 * logvar) * eps)
    for rank in (0, 1):  # each rank's half of the one draw for the global batch
        rows = slice(2 * rank, 2 * rank + 2)
        part = reparameterize(mu[rows], logvar[rows], torch.Generator().manual_seed(3), (rank, 2))
        assert torch.equal(part, z[rows])


def test_forward_samples_z_with_the_generator_and_the_autoencoder_uses_mu():
    x = torch.rand(5, 1, 4, 4)
    vae = module()
    one, two = (vae(x, torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(one.z, two.z) and not torch.equal(one.z, one.mu)
    ae = module(variational=False)
    out = ae(x, torch.Generator().manual_seed(7))
    assert out.logvar is None and torch.equal(out.z, out.mu)


def test_the_objective_gets_n_from_the_training_split():
    data = numbered_data(batch_size=8)  # 120 images of which 96 train
    objective = BetaTCVAE()
    fit(module(objective, side=8), data, max_steps=1)
    assert objective.dataset_size == len(data.split_indices["train"]) == 96


class PlainImages(L.LightningDataModule):
    """A user's own data module: batches of images, no vaelab splits."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(images(16), batch_size=8)


def test_a_data_module_without_splits_trains_and_n_stays_as_given():
    objective = BetaTCVAE(dataset_size=500)
    fit(module(objective), PlainImages(), max_steps=2)
    assert objective.dataset_size == 500


def test_one_optimizer_for_the_vae_and_one_for_factorvaes_discriminator():
    vae = module()
    opt = vae.configure_optimizers()
    params = {id(p) for group in opt.param_groups for p in group["params"]}
    assert params == {id(p) for p in [*vae.encoder.parameters(), *vae.decoder.parameters()]}
    factor = module(FactorVAE(latent_dim=3, hidden=8))
    vae_opt, disc_opt = factor.configure_optimizers()
    disc = {id(p) for group in disc_opt.param_groups for p in group["params"]}
    assert disc == {id(p) for p in factor.objective.discriminator.parameters()}
    assert len({id(p) for g in vae_opt.param_groups for p in g["params"]} & disc) == 0


def test_factor_vae_trains_both_networks_and_counts_vae_steps_only():
    factor = FactorVAE(latent_dim=3, hidden=8)
    model = module(factor)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = fit(model, images(), max_steps=3, log_every_n_steps=1)
    assert trainer.global_step == 3  # the discriminator's steps are not counted
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert any(n.startswith("encoder.") for n in changed)
    assert any(n.startswith("objective.discriminator.") for n in changed)
    logged = trainer.callback_metrics
    assert 0 <= logged["train/disc_accuracy"] <= 1 and torch.isfinite(logged["train/disc_loss"])
    assert "train/loss" in trainer.progress_bar_metrics
    assert "train/tc" in logged and "train/tc" not in trainer.progress_bar_metrics


def test_step_logs_are_written_every_log_every_n_steps(tmp_path):
    fit(module(), images(), logger=CSVLogger(tmp_path, name="", version=""), log_every_n_steps=2)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [int(r["step"]) for r in rows if r.get("train/loss")]
    assert logged == [1, 3, 5] == [int(r["step"]) for r in rows if r.get("train/beta")]


def test_a_bad_nan_policy_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^nan_policy must be one of \('stop', 'skip'\), got 'x'"):
        module(nan_policy="x")


def test_skip_counts_skipped_batches_and_stops_after_100_in_a_row():
    model = module(PoisonedBetaVAE(poison_calls=[0, 2, 3]), nan_policy="skip")
    fit(model, images())
    assert model.skipped_batches == 3
    model = module(PoisonedBetaVAE(poison_calls=list(range(200))), nan_policy="skip")
    with pytest.raises(NonFiniteLossError, match=r"at step \d+ \(100 batches skipped in a row"):
        fit(model, images(), max_steps=150)
    assert model.skipped_batches == 100


def test_validation_logs_the_loss_at_the_current_beta_and_the_elbo_and_is_repeatable():
    torch.manual_seed(0)
    shape = (1, 4, 4)
    model = VAEModule(
        MLPEncoder(shape, 8, 3), MLPDecoder(shape, 8, 3), BetaVAE(), Linear(end=4.0, steps=8),
        lambda p: torch.optim.Adam(p, lr=1e-3), latent_dim=3,
    )  # fmt: skip
    val = DataLoader(images(20), batch_size=8)
    trainer = fit(model, images(), max_steps=4)
    torch.manual_seed(1)
    first = trainer.validate(model, val, verbose=False)[0]
    torch.manual_seed(2)  # evaluation draws z from its own generator, not the global one
    assert first == trainer.validate(model, val, verbose=False)[0]
    assert first["val/elbo"] == pytest.approx(-(first["val/recon"] + first["val/kl"]), rel=1e-6)
    beta = 2.0  # the schedule at step 4
    assert first["val/loss"] == pytest.approx(first["val/recon"] + beta * first["val/kl"], rel=1e-5)
    assert "val/loss" in trainer.progress_bar_metrics
    tested = trainer.test(model, val, verbose=False)[0]
    assert (
        tested["test/loss"] == first["val/loss"] and "test/loss" not in trainer.progress_bar_metrics
    )


def test_validation_passes_the_current_step_to_the_objective():
    """annealed_vae's capacity C(t) is read at the trainer's step in validation too."""
    model = module(AnnealedVAE(gamma=10.0, c_max=8.0, c_steps=8))
    trainer = fit(model, images(), max_steps=4)
    one_batch = DataLoader(images(8), batch_size=8)
    logged = trainer.validate(model, one_batch, verbose=False)[0]
    capacity = 4.0  # C(4) = 8 * 4 / 8
    expected = logged["val/recon"] + 10.0 * abs(logged["val/kl"] - capacity)
    assert logged["val/loss"] == pytest.approx(expected, rel=1e-5)


def test_training_passes_the_current_step_to_the_objective():
    """annealed_vae's C(t) in training: the last of 4 steps (t = 3) trains against C = 3."""
    model = module(AnnealedVAE(gamma=10.0, c_max=8.0, c_steps=8))
    trainer = fit(model, images(), max_steps=4, log_every_n_steps=1)
    assert trainer.callback_metrics["train/capacity"].item() == pytest.approx(3.0)


def test_a_stop_names_the_parts_that_went_bad_and_skips_are_shown():
    model = module(PoisonedBetaVAE(poison_calls=[2]))
    with pytest.raises(
        NonFiniteLossError, match=r"at step 2 \(0 batches .*non-finite parts: recon\. "
    ):
        fit(model, images())
    model = module(PoisonedBetaVAE(poison_calls=[1, 4]), nan_policy="skip")
    trainer = fit(model, images())
    assert trainer.progress_bar_metrics["train/skipped_batches"] == 2.0


class ChosenModule(VAEModule):
    """A VAEModule subclass for ``model.module`` (as Ada-GVAE's will be)."""


def test_model_module_chooses_the_lightning_module_class_built_with_the_same_arguments():
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF
    from vaelab.errors import ConfigError
    from vaelab.training import build_module

    overrides = ["model=vae", "arch=mlp", "size=small"]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        default = compose("train", overrides=overrides)
        chosen = compose(
            "train", overrides=[*overrides, "+model.module=tests.test_module.ChosenModule"]
        )
        wrong = compose("train", overrides=[*overrides, "+model.module=torch.nn.Linear"])
        missing = compose("train", overrides=[*overrides, "+model.module=tests.nowhere.Module"])
    assert type(build_module(default)) is VAEModule
    built = build_module(chosen)
    assert type(built) is ChosenModule and built.latent_dim == default.arch.latent_dim
    for cfg in (wrong, missing):
        with pytest.raises(ConfigError, match=r"model\.module"):
            build_module(cfg)


def test_a_quantized_model_trains_its_codebook_and_encodes_to_codebook_values():
    from vaelab.objectives import QLAE

    model = module(QLAE(latent_dim=3, num_values=4), variational=False, decay_only_weights=True)
    before = model.objective.quantizer.codebook.detach().clone()
    out = model(torch.rand(8, 1, 4, 4))
    assert out.decode is not None and out.logvar is None
    torch.testing.assert_close(out.z, model.objective.quantizer.nearest(out.mu))
    fit(model, images(), max_steps=4)
    assert not torch.equal(model.objective.quantizer.codebook.detach(), before)  # trained
    codes, _ = model.encode(torch.rand(8, 1, 4, 4))
    values = model.codebook()
    assert all(set(codes[:, j].tolist()) <= set(values[j].tolist()) for j in range(3))
