"""The Hydra plugin class of ``sweep=optuna``: ``ResumableOptunaSweeper``.

Hydra imports this module at every start (its plugin scan), so it imports neither optuna nor
hydra-optuna-sweeper: a vaelab installed without ``[sweep]`` starts without warnings. The
search is ``vaelab_optuna._resumable.ResumableOptunaSweeperImpl``.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ResumableOptunaSweeper(Sweeper):
    """Hydra's Optuna sweeper (the same settings, ``hydra.sweeper.*``) whose study, kept in
    ``hydra.sweeper.storage``, is continued when the same command runs again."""

    def __init__(self, **settings: Any) -> None:
        from vaelab.console import optuna_through_logging

        optuna_through_logging()  # alembic's lines are quieted before Hydra's plugin scan
        from ._resumable import ResumableOptunaSweeperImpl

        self.sweeper = ResumableOptunaSweeperImpl(**settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.sweeper.sweep(arguments)
