"""vaelab from Python (a notebook, a script): ``vaelab.train`` and ``vaelab.load_run``.

    import vaelab
    run = vaelab.train(["model=beta_vae", "beta=4", "trainer.max_steps=2000"])
    run.metrics["val/elbo"], run.sample(16), run.traverse(run.images(n=3))
    run = vaelab.load_run("outputs/runs/2026-12-04/10-00-00_beta_vae")

``train`` composes ``train.yaml`` with the overrides exactly as ``vaelab-train`` does (the
same configs, the user's own folders of ``$VAELAB_CONFIG_PATH``, the same checks) and runs
the job in this process as Hydra runs it: its own run folder with ``.hydra/``, ``train.log``
and ``metrics.json``. Bad input raises ``ConfigError`` with the CLI's paragraph.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import run_job
from hydra.errors import ConfigCompositionException
from hydra.types import HydraContext
from omegaconf import DictConfig

from vaelab.allocator import keep_freed_memory
from vaelab.cli import config_path, with_user_configs
from vaelab.cli.arguments import normalize_overrides, removed_group_problem
from vaelab.config import validate
from vaelab.console import logging_restored
from vaelab.errors import ConfigError
from vaelab.hydra_errors import composition_error
from vaelab.run_folder import drop_if_empty
from vaelab.runs import LoadedRun, load_run, pick_device

__all__ = ["load_run", "train"]


def _initialize():
    """Hydra's compose API over the configs the CLI reads (vaelab.cli.config_path)."""
    where = config_path()
    if where.startswith("pkg://"):
        return initialize_config_module(where.removeprefix("pkg://"), version_base="1.3",
                                        job_name="train")  # fmt: skip
    return initialize_config_dir(where, version_base="1.3", job_name="train")


def _task(cfg: DictConfig) -> float | Exception | None:
    """The CLI's task; an error is returned, to be raised by ``train`` outside Hydra's job."""
    try:
        validate(cfg)
        from vaelab.training import run

        return run(cfg)
    except Exception as error:
        if isinstance(error, ConfigError):  # refused: no empty folder left behind
            drop_if_empty(Path(HydraConfig.get().runtime.output_dir))
        return error


def train(overrides: Sequence[str] = (), device: str = "auto") -> LoadedRun:
    """Train one model as ``vaelab-train <overrides>`` would and return it read back from
    its folder (``load_run``): the trained module on ``device``, its data, config and
    metrics. A sweep (``-m``) is the CLI's job; give one value per key here."""
    keep_freed_memory()  # as the programs do (vaelab.allocator)
    if isinstance(overrides, str):
        raise TypeError("give the overrides as a list, e.g. ['model=beta_vae', 'beta=4']")
    pick_device(device)  # a device that cannot be used is said before training, not after
    if any(a in ("-m", "--multirun") for a in overrides):
        raise ConfigError("vaelab.train runs one model; run sweeps with vaelab-train -m ...")
    removed = removed_group_problem(list(overrides))
    if removed:
        raise ConfigError(removed)
    args = with_user_configs(normalize_overrides(list(overrides)))
    GlobalHydra.instance().clear()
    with _initialize(), logging_restored():  # Hydra's job logging lasts as long as the job
        try:
            cfg = compose("train", overrides=args, return_hydra_config=True)
        except Exception as error:  # an unknown option or key, a sweep's a,b list
            message = _first_paragraph(error)
            if message is None:
                raise
            raise ConfigError(f"the overrides {list(overrides)} cannot be composed: "
                              f"{message}") from None  # fmt: skip
        context = HydraContext(
            config_loader=GlobalHydra.instance().config_loader(),
            callbacks=_callbacks(cfg),
        )
        try:
            job = run_job(
                hydra_context=context,
                task_function=_task,
                config=cfg,
                job_dir_key="hydra.run.dir",
                job_subdir_key=None,
            )
            if isinstance(job.return_value, Exception):
                raise job.return_value
            out_dir = Path(job.hydra_cfg.hydra.runtime.output_dir)
        finally:
            HydraConfig.instance().cfg = None  # later direct calls are not this job
    return load_run(out_dir, device=device)


def _first_paragraph(error: Exception) -> str | None:
    """Hydra's message as one paragraph (``hydra_errors.composition_error``; None for an
    error that is not one of composing); a list of values is a sweep."""
    if isinstance(error, ConfigCompositionException) and "--multirun" in str(error):
        return "a list of values is a sweep, which vaelab.train does not run (vaelab-train -m)"
    return composition_error(error)


def _callbacks(cfg: DictConfig):
    """The ``hydra.callbacks`` of the config, as Hydra's own launcher builds them."""
    from hydra._internal.callbacks import Callbacks

    return Callbacks(cfg)
