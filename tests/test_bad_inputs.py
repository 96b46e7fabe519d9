"""The catalogue of bad inputs, through the CLI: exit status 2, one clear message, and no run
folder that claims success."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from .conftest import run_cli

# overrides (with {tmp} for the test's folder), words the message must contain
BAD_INPUTS = [
    ("beta=-1", "`beta` must be >= 0"),
    ("beta=abc", "`beta` must be a number, got 'abc'"),
    ("arch.latent_dim=0", "`arch.latent_dim` must be >= 1"),
    ("arch.latent_dim=2.5", "`arch.latent_dim` must be a whole number"),
    ("optimizer.lr=0", "`optimizer.lr` must be > 0"),
    ("optimizer.lr=-0.1", "`optimizer.lr` must be > 0"),
    ("data.batch_size=0", "`data.batch_size` must be >= 1"),
    ("data.batch_size=-64", "`data.batch_size` must be >= 1"),
    ("data.subset=50", "is larger than the ~49 training images"),
    ("data.subset=0", "`data.subset` must be null"),
    ("data.val_fraction=0.9", "`data.val_fraction` must be a fraction"),
    ("data.image_size=50", "must be a multiple of 16"),
    ("data.image_size=8", "must be a multiple of 16"),
    ("data.likelihood=poisson", "`data.likelihood` must be one of bernoulli, gaussian"),
    ("model=vae beta=4", "model=vae is the β = 1 VAE"),
    ("model=ae beta=2", "model=ae has no KL term"),
    ("model=factor_vae model.gamma=-10", "`model.gamma` must be >= 0"),
    ("model=beta_tcvae model.estimator=exact", "`model.estimator` must be one of mws, mss"),
    ("model=annealed_vae model.c_steps=0", "`model.c_steps` must be >= 1"),
    ("model=annealed_vae model.c_max=-5", "`model.c_max` must be >= 0"),
    ("model=annealed_vae beta=4", "set model.gamma=4 instead"),
    ("model=annealed_vae beta_schedule=linear", "a linear β schedule would do nothing"),
    ("model=dip_vae model.variant=iii", "`model.variant` must be one of i, ii"),
    ("model=dip_vae model.lambda_od=-1", "`model.lambda_od` must be >= 0"),
    ("beta_schedule=linear beta_schedule.steps=0", "`beta_schedule.steps` must be >= 1"),
    ("beta_schedule=cyclical beta_schedule.ratio=1.5", "`beta_schedule.ratio` must be <= 1"),
    ("beta_schedule=cyclical trainer.max_steps=-1", "needs trainer.max_steps > 0"),
    ("trainer.nan_policy=sometimes", "`trainer.nan_policy` must be one of stop, skip"),
    ("model=nope", "Available options in 'model':"),
    ("arch=transformer", "Available options in 'arch':"),
    ("hydra/launcher=ray", "pip install hydra-ray-launcher"),
    ("ckpt_path=/no/such/file.ckpt", "is not a file"),
    ("ckpt_path={tmp}/corrupt.ckpt", "cannot be read as a checkpoint"),
    ("ckpt_path={tmp}/other_arch.ckpt", "was trained with a different architecture"),
    ("data=mnist data.source.download=false paths.data_dir={tmp}/empty",
     "Looked in {tmp}/empty/MNIST/raw for train-images-idx3-ubyte"),
    ("hydra.run.dir=/proc/vaelab/run", "the output folder /proc/vaelab/run cannot be written"),
]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "corrupt.ckpt").write_bytes(b"PK\x03\x04 this is not a whole checkpoint")
    torch.save({"state_dict": {"encoder.fc1.weight": torch.zeros(3, 3)}}, tmp / "other_arch.ckpt")
    (tmp / "empty").mkdir()
    return tmp


def test_the_catalogue_has_at_least_25_cases():
    assert len(BAD_INPUTS) >= 25


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_exits_2_with_its_message(files: Path, overrides: str, message: str):
    run_dir = files / "runs" / re.sub(r"[^A-Za-z0-9_.-]", "_", overrides)[:60]
    args = [o.replace("{tmp}", str(files)) for o in overrides.split()]
    result = run_cli(run_dir, "trainer=cpu", "evaluation=none", *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message.replace("{tmp}", str(files)) in result.stderr
    assert "Traceback" not in result.stderr
    metrics = run_dir / "metrics.json"
    assert not metrics.exists() or json.loads(metrics.read_text())["status"] != "completed"
