"""Preemption under SLURM: the scheduler's warning signal saves the run and requeues the job.

SLURM can signal a job before it stops it (``#SBATCH --signal=B:USR1@120``: SIGUSR1 to the
batch script 120 s before the time limit; ``scancel --batch --signal=USR1 <job>`` at once).
``SlurmRequeue`` notes the signal; at the end of the step under way it writes ``last.ckpt``
(the checkpoint every resume reads), asks SLURM to put the job back in the queue
(``scontrol requeue $SLURM_JOB_ID``) and ends the process, exactly as a kill right after that
checkpoint would. The requeued job runs the same command, which resumes the run from that
checkpoint (its own folder, or the newest unfinished run of the same overrides), so its result
equals an uninterrupted run's (tests/test_slurm.py). Outside a SLURM batch job it does nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


def in_slurm_batch_job() -> bool:
    """Whether this process is part of a SLURM batch job (not an interactive allocation)."""
    return "SLURM_JOB_ID" in os.environ and os.environ.get("SLURM_JOB_NAME") not in (
        "bash",
        "interactive",
    )


class SlurmRequeue(L.Callback):
    """On ``signal_name`` in a SLURM batch job: checkpoint at the step's end, requeue, exit."""

    def __init__(self, signal_name: str = "SIGUSR1") -> None:
        self.signal = signal.Signals[signal_name]
        self.warned = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and in_slurm_batch_job():
            signal.signal(self.signal, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        self.warned = True

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if not self.warned:
            return
        saver = next(c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint))
        saver._save_last_checkpoint(trainer, saver._monitor_candidates(trainer))
        trainer.strategy.barrier("requeue")
        if trainer.is_global_zero:
            job = os.environ["SLURM_JOB_ID"]
            log.info("%s at step %d: %s saved, requeueing SLURM job %s", self.signal.name,
                     trainer.global_step, saver.last_model_path, job)  # fmt: skip
            subprocess.run(["scontrol", "requeue", job], check=True)
        logging.shutdown()
        os._exit(0)  # as a kill after the checkpoint: the requeued job resumes from it
