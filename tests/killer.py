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
    def __init__(self, step: int, sent: str = "SIGKILL") -> None:
        self.step, self.signal = step, getattr(signal, sent)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:  # ModelCheckpoint, run before this, has saved it
            os.kill(os.getpid(), self.signal)


class KillAfterCheckpoint(Callback):
    """``signal``: SIGKILL (kill -9), or SIGINT (Ctrl-C) to stop the run as a user does."""

    def __init__(self, step: int, signal: str = "SIGKILL") -> None:
        self.step, self.signal = step, signal

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        import vaelab.training

        build = vaelab.training.build_trainer

        def build_with_kill(cfg):
            trainer = build(cfg)
            trainer.callbacks.append(_Kill(self.step, self.signal))  # after the checkpoints
            return trainer

        vaelab.training.build_trainer = build_with_kill


def kill_at(step: int, sent: str = "SIGKILL") -> list[str]:
    """The Hydra overrides that kill a run (or, with ``sent="SIGINT"``, press Ctrl-C) right
    after its checkpoint of ``step``."""
    return ["+hydra.callbacks.killer._target_=tests.killer.KillAfterCheckpoint",
            f"+hydra.callbacks.killer.step={step}",
            f"+hydra.callbacks.killer.signal={sent}"]  # fmt: skip


class KillStackAfterCheckpoint(Callback):
    """The same for ``hydra/launcher=stacked``: the stack's process is killed right after the
    stack's checkpoint of ``step``."""

    def __init__(self, step: int, signal: str = "SIGKILL") -> None:
        self.step, self.signal = step, signal

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        import vaelab.stacked.training

        build = vaelab.stacked.training.build_stack_trainer

        def build_with_kill(cfg, stack_dir, *extra):
            trainer = build(cfg, stack_dir, *extra)
            trainer.callbacks.append(_Kill(self.step, self.signal))
            return trainer

        vaelab.stacked.training.build_stack_trainer = build_with_kill
