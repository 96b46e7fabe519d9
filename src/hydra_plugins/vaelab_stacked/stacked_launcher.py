"""The Hydra plugin class of ``hydra/launcher=stacked``: ``StackedLauncher``."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from vaelab.errors import whole_number


class StackedLauncher(Launcher):
    """Trains a sweep's compatible jobs together, ``max_stack`` models a process at most
    (``vaelab.stacked``); each job gets the folder a single run writes."""

    def __init__(self, max_stack: int = 16, vectorize: bool | str = "auto") -> None:
        if isinstance(max_stack, str) and max_stack.isdigit():  # ${oc.env:MAX_STACK}
            max_stack = int(max_stack)
        if not whole_number(max_stack, 1):
            raise ValueError(f"hydra.launcher.max_stack={max_stack!r}: the most models one stack "
                             "trains, a whole number >= 1 (16 by default)")  # fmt: skip
        if vectorize not in ("auto", True, False):
            raise ValueError(f"hydra.launcher.vectorize={vectorize!r}: auto, true or false")
        self.max_stack, self.vectorize = max_stack, vectorize
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from vaelab.cli.arguments import unset_full_error
        from vaelab.stacked.launch import launch_stacks

        unset_full_error()  # no task function runs here: training starts now
        return launch_stacks(self, job_overrides, initial_job_idx)
