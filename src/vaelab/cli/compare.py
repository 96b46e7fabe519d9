"""``vaelab-compare`` (``python src/compare.py``): train an AE and a VAE alike and draw them
side by side, ``vaelab-compare experiment=ae_vs_vae``. The same composed config runs twice,
with ``model=ae`` into ``<run dir>/ae`` and ``model=vae`` into ``<run dir>/vae``; their last
checkpoints are loaded and ``<run dir>/figures/ae_vs_vae.png`` shows prior samples and
latent scatters of both.

Exit status 2 means bad input (no run folder is left behind), 1 a loss that became NaN, 130
Ctrl-C, said in one line, as for ``src/train.py``. A comparison does not resume: the same
command trains both models again in a new run folder.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from vaelab.allocator import keep_freed_memory
from vaelab.cli import command, config_path, with_user_configs
from vaelab.cli.arguments import (
    call_hydra_main,
    exit_interrupted,
    exit_said,
    normalize_overrides,
    task_started,
)
from vaelab.config import validate
from vaelab.errors import ConfigError, Interrupted
from vaelab.run_folder import restate_interruption

log = logging.getLogger(__name__)
MODELS = ("ae", "vae")


def side_config(model: str, out_dir: Path) -> DictConfig:
    """This job's config composed again with ``model=<model>``, written to ``out_dir``."""
    overrides = HydraConfig.get().overrides
    task = [o for o in overrides.task if not o.startswith(("model=", "beta="))]
    task += [o for o in overrides.hydra if o.startswith("hydra.searchpath=")]  # user configs
    return hydra.compose(
        config_name="train",
        overrides=[*task, f"model={model}", f"paths.output_dir={out_dir}", "resume=false"],
    )


def train_and_load(cfg: DictConfig):
    """``vaelab.training.run(cfg)``, then the module rebuilt from its ``last.ckpt``. Ctrl-C
    raises ``Interrupted`` naming the side, in its record too (training's advice to resume does
    not hold here: the sides run with ``resume=false``)."""
    from vaelab.checkpoint import load_weights
    from vaelab.training import build_module, run

    out_dir = Path(cfg.paths.output_dir)
    try:
        run(cfg)
    except Interrupted as stop:
        said = (
            f"the {out_dir.name} run stopped at step {stop.step} ({out_dir}); "
            f"{command('compare')} does not resume: the same command trains both models again, "
            f"in a new run folder"
        )
        restate_interruption(out_dir, said)  # its record said the same command resumes it
        raise Interrupted(said, step=stop.step) from None
    checkpoint = out_dir / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        raise ConfigError(
            f"{checkpoint} was not written; set callbacks.model_checkpoint.every_n_train_steps "
            f"to trainer.max_steps (experiment=ae_vs_vae does)."
        )
    module = build_module(cfg)
    load_weights(checkpoint, module)
    return module.eval()


def compare(cfg: DictConfig) -> Path:
    """Both runs and the figure; returns the figure's path."""
    from hydra.utils import instantiate

    from vaelab.viz import ae_vs_vae_figure
    from vaelab.viz.figures import pick_label, split_sample

    sweep = HydraConfig.get().sweeper.get("params")
    if sweep:  # compare_2024, reproduce_dsprites: many models, not this pair
        name = HydraConfig.get().runtime.choices.get("experiment")
        raise ConfigError(
            f"experiment={name} is a sweep (over {', '.join(sweep)}): run it with "
            f"{command('train')} -m experiment={name}. {command('compare')} trains an AE and a "
            f"VAE side by side (experiment=ae_vs_vae, the default here)."
        )
    out_dir = Path(cfg.paths.output_dir)
    sides = {m: side_config(m, out_dir / m) for m in MODELS}
    for side in sides.values():
        validate(side)
    modules = {m: train_and_load(side) for m, side in sides.items()}
    datamodule = instantiate(sides["vae"].data)
    datamodule.setup()
    settings = cfg.get("compare") or {}
    images, labels = split_sample(datamodule, "test", settings.get("n_points", 1000))
    label, name = pick_label(labels, datamodule.source.label_names, None)
    path = ae_vs_vae_figure(
        modules["ae"],
        modules["vae"],
        images,
        label,
        out_dir / "figures" / "ae_vs_vae.png",
        n_samples=settings.get("n_samples", 36),
        seed=cfg.seed,
        label_name=name,
    )
    log.info("AE vs VAE figure: %s", path)
    return path


@hydra.main(version_base="1.3", config_path=config_path(), config_name="train")
def task(cfg: DictConfig) -> None:
    task_started()
    try:
        validate(cfg)
        compare(cfg)
    except Exception as error:
        exit_said(error)
        raise


def main() -> None:
    keep_freed_memory()  # before any tensor: the CPU's activations reuse freed memory
    if not any(a.lstrip("+~").startswith("experiment=") for a in sys.argv[1:]):
        sys.argv.insert(1, "experiment=ae_vs_vae")  # the comparison's settings (it trained
        # the default β-VAE's: all of dSprites, 20,000 steps, in a folder named beta_vae)
    sys.argv[1:] = with_user_configs(normalize_overrides(sys.argv[1:]))
    try:
        call_hydra_main(task)
    except KeyboardInterrupt as stop:  # Ctrl-C: one line, not Python's traceback
        exit_interrupted(f"interrupted: {stop}" if str(stop) else "interrupted")


if __name__ == "__main__":
    main()
