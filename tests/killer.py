"""A Hydra callback that SIGKILLs the training process right after the checkpoint of a chosen
step is written: a kill at an exact point, however loaded the machine. It is given as Hydra
overrides (``+hydra.callbacks.killer._target_=tests.killer.KillAfterCheckpoint`` and
``+hydra.callbacks.killer.step=40``), so the run's own overrides, which a resume matches,
stay those of the command.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning as L
from hydra.experimental.callback import Callback


class _Kill(L.Callback):
    def __init__(self, step: int, sent: str = "SIGKILL", stage: str = "train") -> None:
        self.step, self.signal, self.stage = step, getattr(signal, sent), stage

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.stage == "train" and trainer.global_step == self.step:  # ModelCheckpoint, run
            os.kill(os.getpid(), self.signal)  # before this, has saved it

    def on_test_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self.stage == "test":  # training has ended: the test pass
            os.kill(os.getpid(), self.signal)


class KillAfterCheckpoint(Callback):
    """``signal``: SIGKILL (kill -9), or SIGINT (Ctrl-C) to stop the run as a user does;
    ``stage``: ``train`` (after the checkpoint of ``step``) or ``test`` (as the test pass
    starts)."""

    def __init__(self, step: int, signal: str = "SIGKILL", stage: str = "train") -> None:
        self.step, self.signal, self.stage = step, signal, stage

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        import vaelab.training

        build = vaelab.training.build_trainer

        def build_with_kill(cfg, **settings):
            trainer = build(cfg, **settings)
            trainer.callbacks.append(_Kill(self.step, self.signal, self.stage))  # after the
            return trainer  # checkpoints

        vaelab.training.build_trainer = build_with_kill


def kill_at(step: int, sent: str = "SIGKILL", stage: str = "train") -> list[str]:
    """The Hydra overrides that kill a run (or, with ``sent="SIGINT"``, press Ctrl-C) right
    after its checkpoint of ``step`` (``stage="test"``: as its test pass starts)."""
    return ["+hydra.callbacks.killer._target_=tests.killer.KillAfterCheckpoint",
            f"+hydra.callbacks.killer.step={step}",
            f"+hydra.callbacks.killer.signal={sent}",
            f"+hydra.callbacks.killer.stage={stage}"]  # fmt: skip


class KillStackAfterCheckpoint(Callback):
    """The same for ``hydra/launcher=stacked``: the stack's process is killed right after the
    stack's checkpoint of ``step``."""

    def __init__(self, step: int, signal: str = "SIGKILL", stage: str = "train") -> None:
        self.step, self.signal, self.stage = step, signal, stage

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        import vaelab.stacked.training

        build = vaelab.stacked.training.build_stack_trainer

        def build_with_kill(cfg, stack_dir, *extra, **settings):
            trainer = build(cfg, stack_dir, *extra, **settings)
            trainer.callbacks.append(_Kill(self.step, self.signal, self.stage))
            return trainer

        vaelab.stacked.training.build_stack_trainer = build_with_kill
