"""The Python API (vaelab.train, vaelab.load_run) on scikit-learn's digits, in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vaelab
from vaelab.errors import ConfigError

from .conftest import ROOT

DIGITS = [
    "data=digits",
    "arch=mlp",
    "size=small",
    "data.image_size=8",
    "trainer=cpu",
    "trainer.max_steps=25",  # not a multiple of every_n_train_steps: last.ckpt is step 25
    "callbacks.model_checkpoint.every_n_train_steps=10",
    "trainer.val_check_interval=10",
    "evaluation=none",
    "figures.include=[samples]",
]


@pytest.fixture(scope="module")
def api_run(tmp_path_factory: pytest.TempPathFactory) -> vaelab.runs.LoadedRun:
    folder = tmp_path_factory.mktemp("api") / "run"
    return vaelab.train([*DIGITS, f"hydra.run.dir={folder}"], device="cpu")


def test_train_runs_the_cli_job_in_process_and_returns_the_trained_run(api_run) -> None:
    folder = api_run.path
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "completed" and record["step"] == 25
    assert api_run.step == 25  # the final step was checkpointed, not step 20
    assert api_run.metrics == record["metrics"] and "val/elbo" in api_run.metrics
    for written in (".hydra/config.yaml", ".hydra/overrides.yaml", "train.log", "figures"):
        assert (folder / written).exists(), written
    assert api_run.cfg.data.source._target_ == "vaelab.data.digits.Digits"
    assert not api_run.module.training


def test_the_methods_agree_with_each_other_and_with_the_module(api_run) -> None:
    x = api_run.images("test", n=4)
    assert x.dtype == torch.uint8 and x.shape == (4, 1, 8, 8)
    mu, logvar = api_run.encode(x)
    assert mu.shape == logvar.shape == (4, api_run.cfg.arch.latent_dim)
    direct_mu, _ = api_run.module.encode(x.float() / 255)
    torch.testing.assert_close(mu, direct_mu.detach())
    recon = api_run.reconstruct(x)
    torch.testing.assert_close(recon, api_run.decode(mu))  # E[x | z = mu(x)]
    assert recon.min() >= 0 and recon.max() <= 1
    torch.testing.assert_close(api_run.sample(5, seed=3), api_run.sample(5, seed=3))
    assert not torch.equal(api_run.sample(5, seed=3), api_run.sample(5, seed=4))
    z = torch.randn(5, api_run.cfg.arch.latent_dim, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(api_run.sample(5, seed=3), api_run.decode(z))
    # one step at 1.5 in dimension 2: mu with z[2] = 1.5, decoded
    moved = mu.clone()
    moved[:, 2] = 1.5
    out = api_run.traverse(x, dims=[2], steps=1, limits=(1.5, 1.5))
    assert out.shape == (4, 1, 1, 1, 8, 8)
    torch.testing.assert_close(out[:, 0, 0], api_run.decode(moved))
    torch.testing.assert_close(api_run.traverse(x, dims=2, steps=1, limits=(1.5, 1.5)), out)
    torch.testing.assert_close(api_run.encode(x[0])[0], mu[:1])  # one image: a batch of one
    latents = api_run.cfg.arch.latent_dim
    with pytest.raises(ValueError, match=rf"dims \[{latents}\] are not latent dimensions"):
        api_run.traverse(x, dims=[latents])
    with pytest.raises(ValueError, match="split='tset': choose train, val or test"):
        api_run.images("tset")
    path = api_run.interpolate(x[0], x[1], steps=5)
    torch.testing.assert_close(path[0], api_run.decode(mu[:1])[0])
    torch.testing.assert_close(path[-1], api_run.decode(mu[1:2])[0])


def test_load_run_reads_back_the_same_model_and_figures_are_written(api_run, tmp_path) -> None:
    again = vaelab.load_run(api_run.path, device="cpu")
    x = api_run.images("val", n=3)
    torch.testing.assert_close(again.reconstruct(x), api_run.reconstruct(x))
    assert again.metrics == api_run.metrics
    written = again.save_figures(tmp_path, include=["samples", "interpolation"])
    assert sorted(p.name for p in written) == ["interpolation.png", "samples.png"]
    assert all(p.is_file() and p.parent == tmp_path / "figures" for p in written)


def test_bad_input_raises_the_cli_paragraph_and_a_sweep_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="`beta` must be >= 0"):
        vaelab.train([*DIGITS, "beta=-1", f"hydra.run.dir={tmp_path / 'bad'}"])
    assert not (tmp_path / "bad").exists()  # refused: no folder left behind
    with pytest.raises(ConfigError, match="vaelab-train -m"):
        vaelab.train(["-m", "beta=1,2"])
    with pytest.raises(TypeError, match="as a list"):
        vaelab.train("beta=4")
    with pytest.raises(
        vaelab.ConfigError, match=r"model=nope names no config: the options of `model` are ada_gvae"
    ):
        vaelab.train(["model=nope"])  # Hydra's own exception before, its search path dump
    with pytest.raises(ConfigError, match=r"experiment=null: a config group takes the name"):
        vaelab.train(["experiment=null"])  # a ValueError of Hydra's code before
    with pytest.raises(ConfigError, match=r"a list of values is a sweep.*vaelab-train -m"):
        vaelab.train(["beta=1,4"])
    with pytest.raises(ConfigError, match=r"~model removes the config group `model`"):
        vaelab.train(["~model"])  # an InterpolationKeyError of OmegaConf's before
    for device, words in (("gpu0", "is not a device"), ("cuda:7", "no GPU is visible")):
        if device.startswith("cuda") and torch.cuda.is_available():
            continue
        with pytest.raises(ConfigError, match=words):  # said before training, not after it
            vaelab.train([*DIGITS, f"hydra.run.dir={tmp_path / device}"], device=device)
        assert not (tmp_path / device).exists()


def test_import_vaelab_is_light_and_names_the_api() -> None:
    assert set(vaelab.__all__) == {"train", "load_run", "ConfigError"}
    assert vaelab.ConfigError is ConfigError
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, vaelab; print(sorted({'torch', 'hydra', 'lightning'}"
         " & set(sys.modules)))"], capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    assert loaded.stdout.strip() == "[]"  # vaelab.ConfigError too, without torch or Hydra
    with pytest.raises(AttributeError):
        vaelab.no_such_function  # noqa: B018
    assert Path(vaelab.load_run.__code__.co_filename).name == "runs.py"


def test_the_job_logging_ends_with_the_job(api_run) -> None:
    import logging

    root = logging.getLogger()
    files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    assert not [h for h in files if Path(h.baseFilename).parent == api_run.path]
    assert "val/elbo" in (api_run.path / "train.log").read_text()
