"""Experiment loggers that never prompt and never hang, and a CSV log that a resumed run
continues instead of replacing."""

from __future__ import annotations

import csv
import netrc
import os
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

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
    if offline:  # the line above says where and how to sync: wandb's own ~30 lines say it again
        import wandb

        kwargs.setdefault("settings", wandb.Settings(silent=True))
    logger = WandbLogger(save_dir=save_dir, project=project, offline=offline, **kwargs)
    # Lightning passes anonymous=None, which wandb >= 0.19 warns "has no effect"
    if logger._wandb_init.get("anonymous", "") is None:
        del logger._wandb_init["anonymous"]
    return logger


def finish_loggers(trainer: L.Trainer, failed: bool) -> None:
    """Close W&B runs (``wandb.finish``) whether the run succeeded or not."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish(exit_code=1 if failed else 0)


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSV logger (``<save_dir>/<name>/metrics.csv``), whose file a run resumed in
    the same folder continues: Lightning's writer deletes an existing ``metrics.csv``; here its
    rows are written back at once, and at the first step logged after the resume those from
    that step on (logged after the checkpoint, before the kill) are dropped, as the resumed
    run logs them again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._earlier: tuple[list[str], list[dict[str, str]]] | None = None

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / "metrics.csv"
        if path.is_file():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                self._earlier = (list(reader.fieldnames or []), list(reader))
        writer = super().experiment  # removes metrics.csv
        if self._earlier is not None:
            self._write_earlier(writer, None)
        return writer

    def _write_earlier(self, writer, before_step: int | None) -> None:
        """``metrics.csv`` holding the earlier rows (those before ``before_step``), which the
        writer's next rows are appended to."""
        header, rows = self._earlier
        if before_step is not None:
            rows = [r for r in rows if r.get("step", "") == "" or float(r["step"]) < before_step]
        with (Path(self.log_dir) / "metrics.csv").open("w", newline="") as handle:
            table = csv.DictWriter(handle, fieldnames=header)
            table.writeheader()
            table.writerows(rows)
        writer.metrics_keys = list(header)  # the file's columns, in its order

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self._earlier is not None and step is not None:
            self._write_earlier(self.experiment, step)
            self._earlier = None
        super().log_metrics(metrics, step)
