"""What a run shows while it trains: a bar in a terminal, log lines elsewhere.

In a terminal, Lightning's rich bar counts training steps against ``trainer.max_steps``
("Training 1200/20000", elapsed • remaining, steps/s) with the loss, images/s and the last
validation ELBO; validation and testing have bars of their own. When the output is not a
terminal (a log file, nohup, a cluster job), the bar is off and one line is logged every
``every_s`` seconds: step / max_steps, the loss, images/s, elapsed and remaining time; and
a line as validation and testing start.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import ProcessingSpeedColumn
from rich.console import Console, RenderableType
from rich.progress import Task
from rich.text import Text

log = logging.getLogger(__name__)

SHOWN = {"train/loss": "loss", "train/images_per_sec": "images/s", "val/elbo": "val ELBO"}


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class MeasuredSpeed(ProcessingSpeedColumn):
    """Lightning's it/s column, blank until rich has measured a speed (a 1-batch test bar
    read ``0.00it/s``)."""

    def render(self, task: Task) -> RenderableType:
        return super().render(task) if task.speed is not None else Text("")


class StepProgress(RichProgressBar):
    """Training progress in steps: the rich bar in a terminal, a log line every ``every_s``
    seconds otherwise. ``terminal``: None detects it (rich's ``Console().is_terminal``)."""

    def __init__(
        self, refresh_rate: int = 4, every_s: float = 30.0, terminal: bool | None = None
    ) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self.every_s = every_s
        self.terminal = Console().is_terminal if terminal is None else terminal
        self._started: float | None = None
        self._first_step = 0
        self._last_line = 0.0
        if not self.terminal:
            self.disable()

    # ---- the bar (terminal) --------------------------------------------------------
    @property
    def total_train_batches(self) -> int | float:
        """The steps the run trains: ``max_steps``, or ``max_epochs`` epochs of batches."""
        max_steps, max_epochs = self.trainer.max_steps, self.trainer.max_epochs
        if max_steps and max_steps > 0:
            return max_steps
        return super().total_train_batches * (max_epochs if max_epochs and max_epochs > 0 else 1)

    def configure_columns(self, trainer: L.Trainer) -> list:
        return [
            MeasuredSpeed(style=self.theme.processing_speed)
            if isinstance(column, ProcessingSpeedColumn) else column
            for column in super().configure_columns(trainer)
        ]  # fmt: skip

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{'Training':{len(self.validation_description)}}"

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The bar is made at the first epoch, at the step a resumed run starts from, and counts
        on across epochs (Lightning resets it at each: it read 0/max_steps, 0:00:00 elapsed and
        a burst of it/s at every epoch's start)."""
        if self.train_progress_bar_id is None or self._leave:
            super().on_train_epoch_start(trainer, pl_module)
            self._start_at_step(trainer)

    def _start_at_step(self, trainer: L.Trainer) -> None:
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.reset(
                self.train_progress_bar_id,
                total=self.total_train_batches,
                completed=trainer.global_step,  # a resumed run starts where it stopped
                description=self._get_train_description(trainer.current_epoch),
            )

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        return {short: metrics[key] for key, short in SHOWN.items() if key in metrics}

    # ---- both ------------------------------------------------------------------------
    def _writes_lines(self, trainer: L.Trainer) -> bool:
        """The log-line form, in one process only: DDP's other ranks would repeat each line."""
        return not self.terminal and trainer.is_global_zero

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._started = self._last_line = time.monotonic()
        self._first_step = trainer.global_step
        if self._writes_lines(trainer):
            log.info("training from step %d to %d", trainer.global_step, trainer.max_steps)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if self.terminal:  # Lightning's update, in steps instead of the epoch's batches
            if not self.is_disabled and self.train_progress_bar_id is None:
                self._initialize_train_progress_bar_id()  # resumed mid-epoch
                self._start_at_step(trainer)
            self._update(self.train_progress_bar_id, trainer.global_step)
            self._update_metrics(trainer, pl_module)
            self.refresh()
            return
        now = time.monotonic()
        if self._writes_lines(trainer) and now - self._last_line >= self.every_s:
            self._last_line = now
            log.info("%s", self.line(trainer, pl_module, now))

    def line(self, trainer: L.Trainer, pl_module: L.LightningModule, now: float) -> str:
        """``step 1200/20000 (6%), loss 123.4, images/s 734, 0:01:40 elapsed, 0:25:00 left``"""
        step, total = trainer.global_step, trainer.max_steps
        elapsed = now - (self._started or now)
        done = step - self._first_step
        parts = [f"step {step}/{total} ({step / total:.0%})" if total > 0 else f"step {step}"]
        metrics = super().get_metrics(trainer, pl_module)
        for key, short in SHOWN.items():
            if isinstance(metrics.get(key), int | float):
                parts.append(f"{short} {metrics[key]:,.1f}")
        parts.append(f"{_clock(elapsed)} elapsed")
        if total > 0 and done > 0:
            parts.append(f"{_clock(elapsed / done * (total - step))} left")
        return ", ".join(parts)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_start(trainer, pl_module)
        if self._writes_lines(trainer) and not trainer.sanity_checking:
            log.info("validating at step %d", trainer.global_step)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_test_start(trainer, pl_module)
        if self._writes_lines(trainer):
            log.info("testing at step %d", trainer.global_step)
