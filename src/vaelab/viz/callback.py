"""``FigureCallback``: figures during training, every ``every_n_steps`` optimizer steps
and/or every ``every_n_epochs`` epochs, written to ``dirpath`` as ``<name>_step<NNNNNNN>.png``
and logged to W&B / TensorBoard under ``progress/<name>`` at the global step, so the
dashboard's image panels step through how the traversals (and the rest) evolve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L

from vaelab.errors import whole_number
from vaelab.viz.figures import make_figures
from vaelab.viz.publish import log_figures
from vaelab.viz.settings import FigureSettings

DEFAULT_INCLUDE = ("reconstructions", "samples", "traversal")


class FigureCallback(L.Callback):
    """Makes ``include`` (names from ``vaelab.viz.settings.FIGURES``) from ``split`` images.

    ``every_n_steps`` / ``every_n_epochs``: None or 0 turns that trigger off. ``save``: also
    keep the files (under ``dirpath``, default ``<default_root_dir>/figures/progress``).
    ``settings``: the ``figures:`` node (or ``FigureSettings``) the figures follow; GIFs are
    not made here. Model randomness is untouched: samples use a seeded generator of their own.
    """

    def __init__(
        self,
        every_n_steps: int | None = None,
        every_n_epochs: int | None = None,
        include: Sequence[str] = DEFAULT_INCLUDE,
        split: str = "val",
        dirpath: str | Path | None = None,
        save: bool = True,
        settings: FigureSettings | Mapping[str, Any] | None = None,
    ) -> None:
        base = FigureSettings.from_config(settings)
        self.settings = replace(
            base,
            include=tuple(include),
            split=split,
            traversal=replace(base.traversal, gif=False),
        )
        for name, every in (("every_n_steps", every_n_steps), ("every_n_epochs", every_n_epochs)):
            if every is not None and not whole_number(every, 0):
                raise ValueError(f"callbacks.figures.{name}={every!r}: null or 0 (off), or a "
                                 f"whole number >= 1")  # fmt: skip
        self.every_n_steps, self.every_n_epochs = every_n_steps or 0, every_n_epochs or 0
        self.dirpath, self.save = dirpath, save
        self.last_step: int | None = None
        self.written: list[Path] = []

    def due_after_step(self, step: int) -> bool:
        return bool(self.every_n_steps) and step > 0 and step % self.every_n_steps == 0

    def due_after_epoch(self, epoch: int) -> bool:
        return bool(self.every_n_epochs) and (epoch + 1) % self.every_n_epochs == 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if self.due_after_step(trainer.global_step):
            self.make(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.due_after_epoch(trainer.current_epoch):
            self.make(trainer, pl_module)

    def make(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Path]:
        """Figures at the current global step (once per step), on the global-zero rank."""
        if not trainer.is_global_zero or trainer.sanity_checking:
            return {}
        root = Path(trainer.default_root_dir)
        return self.draw(pl_module, trainer.datamodule, trainer.loggers, trainer.global_step, root)

    def draw(
        self, module: L.LightningModule, datamodule, loggers, step: int, root_dir: Path
    ) -> dict[str, Path]:
        """``module``'s figures at ``step`` (once per step) into ``dirpath`` (default
        ``<root_dir>/figures/progress``), logged to ``loggers``; ``{name: path}``."""
        if step == self.last_step:
            return {}
        self.last_step = step
        root = Path(self.dirpath or root_dir / "figures" / "progress")
        figures = make_figures(module, datamodule, root, self.settings, suffix=f"_step{step:07d}")
        log_figures(loggers, figures, step, prefix="progress")
        if self.save:
            self.written.extend(figures.values())
        else:
            for path in figures.values():
                path.unlink(missing_ok=True)
        return figures
