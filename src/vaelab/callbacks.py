"""Callbacks of our own; checkpoints, progress bar and LR monitor come from Lightning."""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch import callbacks
from lightning.pytorch.utilities.model_summary import ModelSummary as Summary
from lightning.pytorch.utilities.model_summary import summarize
from lightning.pytorch.utilities.model_summary.model_summary import (
    UNKNOWN_SIZE,
    get_formatted_model_size,
    get_human_readable_count,
)
from rich import box
from rich.console import Console
from rich.table import Table

from vaelab.module import logs_written_this_step

log = logging.getLogger(__name__)


class TrainingSpeed(L.Callback):
    """Training throughput in images per second, data loading included.

    images/s = (images in counted batches) / (wall time between their ends), skipping the
    first ``warmup`` batches and any interval that contained a validation run. Under DDP the
    images are those of the global batch (this rank's slice times the number of ranks); for a
    stack of models, those of one member's batch (its ``images_in``).
    Logged (and shown in the progress bar) on the steps Lightning writes logs.
    """

    def __init__(self, warmup: int = 5) -> None:
        self.warmup = warmup
        self.images, self.seconds = 0, 0.0
        self.start_step: int | None = None
        self._last: float | None = None
        self._seen = 0

    @property
    def images_per_sec(self) -> float | None:
        return self.images / self.seconds if self.seconds > 0 else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start_step = trainer.global_step

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.start_step is None:  # resumed at its last step: training did not start
            self.start_step = trainer.global_step

    def state_dict(self) -> dict[str, Any]:
        """What was counted, kept in checkpoints: a resumed run measures on over all the
        steps trained, and one resumed at its last step still has a figure."""
        return {"images": self.images, "seconds": self.seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.images, self.seconds = int(state_dict["images"]), float(state_dict["seconds"])

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs,
        batch: torch.Tensor,
        batch_idx: int,
    ) -> None:
        now = time.perf_counter()
        self._seen += 1
        if self._last is not None and self._seen > self.warmup:
            count = getattr(pl_module, "images_in", len)  # a stack: one member's batch
            self.images += count(batch) * trainer.world_size
            self.seconds += now - self._last
            if logs_written_this_step(trainer):
                pl_module.log("train/images_per_sec", self.images / self.seconds, prog_bar=True)
        self._last = now

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = None  # the next interval would include validation


class RandomState(L.Callback):
    """Keeps the torch, numpy and Python random states in each checkpoint and puts them back
    when training resumes, so a resumed run draws the same ε as one never interrupted.

    The states are set again in ``on_train_start``, after the sanity-check validation."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        states = _collect_rng_states(include_cuda=torch.cuda.is_available())
        name, keys, *rest = states["numpy"]  # plain lists load with torch's weights_only
        return {**states, "numpy": [name, keys.tolist(), *rest]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        name, keys, *rest = state_dict["numpy"]
        self._pending = {**state_dict, "numpy": (name, np.asarray(keys, dtype=np.uint32), *rest)}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None:
            _set_rng_states(self._pending)
            self._pending = None


class ModelSummary(L.Callback):
    """A table of the networks, logged once when fitting starts: each one's parameters and
    the FLOPs and tensor shapes of one forward pass of ``example_input_array`` (one image).

    A module that forward never reaches (the objective: it runs in the loss) shows "-" in the
    columns of that pass, and a module with no example input (``compile=true``) has none of
    them. The pass runs without touching the random streams: it draws ε, and training must
    draw the same ε with or without the summary (and on every DDP rank alike)."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cuda = pl_module.device.type == "cuda"
        with torch.random.fork_rng(devices=[pl_module.device] if cuda else []):
            summary = summarize(pl_module, max_depth=1)
        if trainer.is_global_zero:
            log.info(
                "networks\n%s", summary_table(summary, pl_module.example_input_array is not None)
            )


def summary_table(summary: Summary, example_pass: bool) -> str:
    """The table and its totals as plain text (box drawing, no colour) for terminal and log."""
    table = Table(box=box.SQUARE, header_style="bold")
    for name in ("Name", "Type", "Params", *(("FLOPs", "In", "Out") if example_pass else ())):
        table.add_column(name, justify="right" if name in ("Params", "FLOPs") else "left")
    outside = []  # modules forward never reached
    for name, kind, params, size_in, size_out in zip(
        summary.layer_names, summary.layer_types, summary.param_nums, summary.in_sizes,
        summary.out_sizes, strict=True,
    ):  # fmt: skip
        row = [name, kind, count(params)]
        if example_pass:
            flops = count(sum(summary.flop_counts[name].values()))
            reached = size_in != UNKNOWN_SIZE
            row += [flops, shape_text(size_in), shape_text(size_out)] if reached else ["-"] * 3
            outside += [] if reached else [name]
        table.add_row(*row)
    frozen = summary.total_parameters - summary.trainable_parameters
    lines = [
        f"params: {count(summary.trainable_parameters)} trainable, {count(frozen)} frozen, "
        f"{get_formatted_model_size(summary.model_size)} MB",
        f"forward FLOPs per image: {count(summary.total_flops)}"
        + (f" ({', '.join(outside)}: run outside forward, not counted)" if outside else "")
        if example_pass
        else "FLOPs: not counted (compiled networks: no example pass)",
    ]
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(table)
    return console.file.getvalue() + "\n".join(lines)


def count(number: int) -> str:
    """Lightning's short count, unpadded: 764 K, 32.5 M, 0."""
    return get_human_readable_count(number).strip()


def shape_text(size: list | str) -> str:
    """[1, 1, 64, 64] -> 1×1×64×64; [[1, 10], [1, 10]] -> 1×10, 1×10; [] -> scalar; no
    tensor -> -."""
    if isinstance(size, list) and size and isinstance(size[0], (list, str)):
        return ", ".join(shape_text(s) for s in size)
    return ("×".join(map(str, size)) or "scalar") if isinstance(size, list) else "-"


class ModelCheckpoint(callbacks.ModelCheckpoint):
    """Lightning's checkpoints, with ``last.ckpt`` at the final step of every completed fit:
    Lightning's saves it at the end only when it has saved no ``last`` yet, so a run of
    20,500 steps with ``every_n_train_steps=1000`` would keep step 20,000 as its last."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (
            self.save_last
            and trainer.global_step > 0
            and not self._should_skip_saving_checkpoint(trainer)
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        else:
            super().on_train_end(trainer, pl_module)
