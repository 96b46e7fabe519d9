"""Experiment loggers that never prompt and never hang."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import WandbLogger

_told_offline = False


def wandb_has_credentials() -> bool:
    """True when an API key is in the environment or in ~/.netrc for api.wandb.ai."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_logger(save_dir: str, project: str = "vaelab", **kwargs: Any) -> WandbLogger:
    """A WandbLogger that runs offline when there is no API key (or WANDB_MODE=offline).

    Offline runs are written under ``<save_dir>/wandb`` and can be uploaded later with
    ``wandb sync <that folder>``.
    """
    global _told_offline
    offline = os.environ.get("WANDB_MODE") in {"offline", "disabled"} or not wandb_has_credentials()
    if offline:
        os.environ.setdefault("WANDB_MODE", "offline")
        if not _told_offline:
            print(
                f"W&B: no API key found (or WANDB_MODE=offline), logging offline under "
                f"{save_dir}/wandb; upload later with `wandb sync {save_dir}/wandb/offline-run-*`."
            )
            _told_offline = True
    os.makedirs(save_dir, exist_ok=True)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        # the jobs of one sweep share a W&B group, each named by its overrides
        kwargs["group"] = kwargs.get("group") or Path(HydraConfig.get().sweep.dir).name
        kwargs["name"] = kwargs.get("name") or HydraConfig.get().job.override_dirname
    return WandbLogger(save_dir=save_dir, project=project, offline=offline, **kwargs)


def finish_loggers(trainer: L.Trainer, failed: bool) -> None:
    """Close W&B runs (``wandb.finish``) whether the run succeeded or not."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish(exit_code=1 if failed else 0)
