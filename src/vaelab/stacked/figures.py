"""Figures during training for each member of a stack: member k's ``callbacks.figures``
(a ``FigureCallback``) drawn from its own weights, data and settings into its own folder
and loggers, at the steps its single run draws them. Drawing touches no random stream (the
figures use seeded generators), so the members train as without it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L

from vaelab.data import ImageDataModule
from vaelab.stacked.module import StackedVAEModule
from vaelab.viz.callback import FigureCallback


class StackedFigures(L.Callback):
    """``callbacks[k]``: member k's FigureCallback (None: it draws none during training)."""

    def __init__(
        self,
        callbacks: Sequence[FigureCallback | None],
        datamodules: Sequence[ImageDataModule],
        folders: Sequence[Path],
    ) -> None:
        self.callbacks, self.datamodules, self.folders = list(callbacks), datamodules, folders

    def _draw(self, trainer: L.Trainer, stack: StackedVAEModule, due: str, value: int) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        for k, callback in enumerate(self.callbacks):
            if callback is None or k in stack.failed or not getattr(callback, due)(value):
                continue
            callback.draw(stack.member(k), self.datamodules[k], stack.member_loggers[k],
                          trainer.global_step, self.folders[k])  # fmt: skip

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_) -> None:
        self._draw(trainer, pl_module, "due_after_step", trainer.global_step)  # type: ignore[arg-type]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw(trainer, pl_module, "due_after_epoch", trainer.current_epoch)  # type: ignore[arg-type]
