"""Opening files from someone else runs no code from them: checkpoints (train.py, eval.py,
``load_run``), array files, saved configs; and secrets from the environment stay out of the
run folder."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab.checkpoint import PLAIN_TYPES
from vaelab.data import DataError
from vaelab.errors import ConfigError
from vaelab.runs import load_run

from .conftest import TINY, run_cli
from .data import formats
from .data.test_sources import DSPRITES_SIZES, TinyDSpritesFile, TinyProcedural
from .test_eval import eval_cli

SECRET = "0123456789abcdef0123456789abcdef01234567"  # looks like a W&B API key


class Marker:
    """Unpickling this creates the file ``path``: what a crafted checkpoint could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "epoch": 0, "payload": Marker(marker)}, path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny FactorVAE run (it has a discriminator) logged to W&B offline with an API key
    in the environment."""
    run_dir = tmp_path_factory.mktemp("untrusted") / "run"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_API_KEY", SECRET)
        result = run_cli(run_dir, *TINY, "model=factor_vae", "logger=wandb")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_a_crafted_checkpoint_given_to_train_runs_no_code(tmp_path: Path):
    marker = tmp_path / "marker"
    ckpt = crafted_checkpoint(tmp_path / "shared.ckpt", marker)
    result = run_cli(tmp_path / "run", *TINY, f"ckpt_path={ckpt}", process=False)
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr.strip()
    assert "`io.open` object" in message and "would run code" in message
    assert str(ckpt) in message and "allow_unsafe_checkpoints=true" in message
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert not marker.exists()


def test_a_crafted_checkpoint_in_a_run_folder_runs_no_code(run_copy: Path, tmp_path: Path):
    marker = tmp_path / "marker"
    crafted_checkpoint(run_copy / "checkpoints" / "last.ckpt", marker)
    result = eval_cli(f"run={run_copy}", "evaluation=fast", "evaluation.iwae_images=8",
                      data=run_copy.parent / "data")  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "`io.open` object" in result.stderr and "would run code" in result.stderr
    assert not marker.exists()
    with pytest.raises(ConfigError, match="would run code"):
        load_run(run_copy, device="cpu")
    assert not marker.exists()


def test_allow_unsafe_checkpoints_is_the_users_explicit_choice(
    run_copy: Path, tmp_path: Path, caplog
):
    marker = tmp_path / "marker"
    crafted_checkpoint(run_copy / "checkpoints" / "last.ckpt", marker)
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError):
        load_run(run_copy, device="cpu", allow_unsafe_checkpoints=True)  # its weights don't fit
    assert marker.exists()  # the full unpickler ran the file's code, as the user asked
    assert "weights_only=False, which runs any code" in caplog.text


def _types(value) -> set[type]:
    if isinstance(value, dict):
        return {dict} | {t for k, v in value.items() for t in _types(k) | _types(v)}
    if isinstance(value, (list, tuple)):
        return {type(value)} | {t for v in value for t in _types(v)}
    return {type(value)}


def test_vaelab_checkpoints_hold_only_plain_types_and_load_back(trained: Path):
    checkpoint = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    assert _types(checkpoint) <= set(PLAIN_TYPES)
    assert any(k.startswith("objective.discriminator") for k in checkpoint["state_dict"])
    assert load_run(trained, device="cpu").step == 6


def test_a_saved_config_naming_a_foreign_class_is_not_built(run_copy: Path, tmp_path: Path):
    saved = run_copy / ".hydra" / "config.yaml"
    text = saved.read_text()
    assert "_target_: vaelab.nets.ConvEncoder" in text
    saved.write_text(text.replace("_target_: vaelab.nets.ConvEncoder", "_target_: os.system"))
    result = eval_cli(f"run={run_copy}", "evaluation=fast", data=run_copy.parent / "data")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "names `os.system` as `arch.encoder._target_`" in result.stderr
    assert "a run folder is rebuilt only from vaelab's own classes" in result.stderr


def test_secrets_from_the_environment_stay_out_of_the_run_folder(trained: Path):
    files = [p for p in trained.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files)  # W&B's offline run was written
    leaked = [str(p) for p in files if SECRET.encode() in p.read_bytes()]
    assert leaked == []


def test_an_object_array_in_a_dsprites_npz_is_refused(tmp_path: Path):
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    n = int(np.prod(DSPRITES_SIZES))
    objects = np.array([{"row": i} for i in range(n)])
    formats.write_dsprites_npz(path, DSPRITES_SIZES, latents_classes=objects)
    with pytest.raises(DataError, match=r"\.npz cannot be used: it holds Python objects"):
        TinyDSpritesFile(tmp_path).check_available()


def test_an_object_array_as_the_dsprites_cache_is_refused(tmp_path: Path):
    data = TinyProcedural(tmp_path, use_file=False)
    np.save(tmp_path / data.cache_name, np.array([{"image": 0}] * 3), allow_pickle=True)
    for read in (data.images, lambda: data.images(np.array([0]))):
        with pytest.raises(DataError, match=r"it holds Python objects .* rendered again"):
            read()


def test_an_object_array_through_the_cli_is_exit_2(tmp_path: Path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = data_dir / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    np.savez(path, imgs=np.zeros((2, 64, 64), np.uint8),
             latents_classes=np.array([{"row": 0}, {"row": 1}]))  # fmt: skip
    result = run_cli(
        tmp_path / "run", *TINY, "data=dsprites_npz", f"paths.data_dir={data_dir}", process=False
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{path} cannot be used: it holds Python objects" in result.stderr
    assert "Traceback" not in result.stderr
