"""Every option of every config group composes, resolves, validates and instantiates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from vaelab.cli.arguments import normalize_overrides
from vaelab.config import validate
from vaelab.errors import ConfigError
from vaelab.training import build_module

from .conftest import CONF, ROOT

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]


def compose_train(*overrides: str, tmp: Path = Path("/tmp/vaelab-test-run")):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("train", overrides=[f"paths.output_dir={tmp}", *overrides])


def test_all_groups_have_options():
    assert {
        "data",
        "model",
        "arch",
        "size",
        "beta_schedule",
        "trainer",
        "precision",
        "logger",
        "callbacks",
        "paths",
        "experiment",
        "debug",
    } <= set(GROUPS)
    named = {
        ("model", "ae"),
        ("model", "vae"),
        ("model", "beta_vae"),
        ("arch", "mlp"),
        ("arch", "conv"),
        ("size", "small"),
        ("size", "base"),
        ("size", "large"),
        ("trainer", "cpu"),
        ("trainer", "gpu"),
        ("trainer", "auto"),
        ("precision", "32-true"),
        ("precision", "16-mixed"),
        ("precision", "bf16-mixed"),
        ("logger", "csv"),
        ("logger", "tensorboard"),
        ("logger", "wandb"),
        ("callbacks", "default"),
    }
    assert named <= set(OPTIONS)


REQUIRED = {
    "data=images": ["data.path=my_images"],
    "data=factors": ["data.path=my_images", "data.factors=my_factors.csv"],
}


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_builds(group: str, option: str, tmp_path: Path):
    given = REQUIRED.get(f"{group}={option}", [])
    if given:  # the user's data: its files are named on the command line
        key = given[0].split("=")[0]
        with pytest.raises(ConfigError, match=re.escape(f"`{key}` has no value")):
            validate(compose_train(f"{group}={option}", tmp=tmp_path))
    cfg = compose_train(f"{group}={option}", *given, tmp=tmp_path)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    validate(cfg)
    module = build_module(cfg)
    assert sum(p.numel() for p in module.parameters()) > 0
    datamodule = instantiate(cfg.data)
    assert datamodule.image_shape == tuple(cfg.arch.image_shape)
    for callback in cfg.callbacks.values():
        instantiate(callback)


def test_beta_on_the_command_line_reaches_the_objective_schedule(tmp_path: Path):
    cfg = compose_train("model=beta_vae", "beta=16", tmp=tmp_path)
    assert build_module(cfg).beta_schedule(123) == 16.0
    assert compose_train("model=vae", tmp=tmp_path).beta == 1.0
    assert compose_train(tmp=tmp_path).beta == 4.0


def test_precision_option_sets_the_trainer_precision(tmp_path: Path):
    assert compose_train("precision=bf16-mixed", tmp=tmp_path).trainer.precision == "bf16-mixed"
    assert compose_train(tmp=tmp_path).trainer.precision == "32-true"


def test_size_scales_width_and_latent(tmp_path: Path):
    dims = {
        s: compose_train(f"size={s}", tmp=tmp_path).arch.latent_dim
        for s in ("small", "base", "large")
    }
    assert dims["small"] < dims["base"] == 10 < dims["large"]
    assert compose_train("arch=mlp", tmp=tmp_path).arch.latent_dim == 20


def test_model_specific_beta_mismatch_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="model=beta_vae beta=4"):
        validate(compose_train("model=vae", "beta=4", tmp=tmp_path))
    with pytest.raises(ConfigError, match="no KL term"):
        validate(compose_train("model=ae", "beta=2", tmp=tmp_path))


def test_whole_counts_written_as_floats_pass_as_lightning_takes_them(tmp_path: Path):
    """``trainer.max_steps=3e5`` (Hydra reads a float) trained before the counts were checked."""
    validate(compose_train("trainer.max_steps=3e5", "trainer.log_every_n_steps=1e2", tmp=tmp_path))
    with pytest.raises(ConfigError, match=r"`trainer.max_steps` must be a whole number >= 0"):
        validate(compose_train("trainer.max_steps=2.5", tmp=tmp_path))


def test_mlp_takes_any_image_size(tmp_path: Path):
    validate(compose_train("arch=mlp", "data.image_size=28", tmp=tmp_path))


def test_the_ae_vs_vae_comparison_gets_a_folder_named_after_it():
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        plain = compose("train", return_hydra_config=True)
        compared = compose("train", ["experiment=ae_vs_vae"], return_hydra_config=True)
    assert plain.hydra.run.dir.endswith("_beta_vae")  # a training run: its model
    assert compared.hydra.run.dir.endswith("_ae_vs_vae")  # not the default model, beta_vae


def cookbook_training_commands() -> list[list[str]]:
    """The overrides of each ``python src/train.py`` line of the README's cookbook (a sweep's
    ``-m`` line: each of its jobs), leaving out lines with a placeholder such as ``<date>``."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Cookbook", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    commands = []
    for line in block.splitlines():
        words = line.split(" #", 1)[0].split()
        if words[:2] != ["python", "src/train.py"] or any("<" in w for w in words):
            continue
        if "--cfg" in words:  # prints the config of what follows it
            words.remove(words[words.index("--cfg") + 1])
        overrides = [w for w in words[2:] if not w.startswith("-")]
        if "-m" in words:
            parsed = OverridesParser.create().parse_overrides(overrides)
            commands += [job for batch in BasicSweeper.split_arguments(parsed, None)
                         for job in batch]  # fmt: skip
        else:
            commands.append(overrides)
    return commands


COOKBOOK = cookbook_training_commands()


def test_the_cookbook_has_its_training_commands():
    assert len(COOKBOOK) >= 34  # 25 commands (the resumed run's line left out), 9 sweep jobs
    assert ["model=tripod", "model.lambda_hessian=0"] in COOKBOOK
    assert ["model=beta_vae", "beta=16", "seed=2"] in COOKBOOK  # the sweep's last job


@pytest.mark.parametrize("overrides", COOKBOOK, ids=[" ".join(c) or "defaults" for c in COOKBOOK])
def test_each_cookbook_command_passes_the_config_check(overrides: list[str], tmp_path: Path):
    cfg = compose_train(*overrides, tmp=tmp_path)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    validate(cfg)


def test_a_path_with_an_equals_sign_is_quoted_only_where_hydra_cannot_read_it():
    """A sweep's job folder holds `=`; Hydra refuses it unquoted. A value the user escaped or
    quoted, and a list of paths, are left for Hydra to read as given."""
    given = [r"ckpt_path=runs/0_beta=4_seed=0/last.ckpt", "+data.path=my=data",
             r"ckpt_path=runs/0_beta\=4/last.ckpt", "ckpt_path='runs/0_beta=4/last.ckpt'",
             "ckpt_path=a=1,b=2", "beta=4", "precision=32"]  # fmt: skip
    assert normalize_overrides(given) == [
        "ckpt_path='runs/0_beta=4_seed=0/last.ckpt'", "+data.path='my=data'", *given[2:5],
        "beta=4", "precision=32-true",
    ]  # fmt: skip
