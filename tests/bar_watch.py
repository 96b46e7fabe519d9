"""A Lightning callback, given as ``+callbacks.bar_watch._target_=tests.bar_watch.BarWatch
+callbacks.bar_watch.path=<file>``, that writes what the training bar of ``StepProgress``
shows after each batch: the step, the bar's count and total, and when its clock started."""

from __future__ import annotations

import json

import lightning as L

from vaelab.progress import StepProgress


class BarWatch(L.Callback):
    def __init__(self, path: str) -> None:
        self.path, self.rows = path, []

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        (bar,) = [c for c in trainer.callbacks if isinstance(c, StepProgress)]
        task = bar.progress.tasks[bar.train_progress_bar_id]
        self.rows.append({"step": trainer.global_step, "epoch": trainer.current_epoch,
                          "completed": task.completed, "total": task.total,
                          "started": task.start_time})  # fmt: skip

    def on_train_end(self, trainer: L.Trainer, *args) -> None:
        with open(self.path, "w") as f:
            json.dump(self.rows, f)
