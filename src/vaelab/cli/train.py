"""``vaelab-train`` (``python src/train.py``): train one model, or a sweep with ``-m``.

Exit status 2 means bad input (a config that cannot run, an unknown group option, missing
data), reported in one paragraph before any work starts; 1 means a sweep's job failed; 130
means Ctrl-C, said in one line with the checkpoint the same command resumes from.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from vaelab import sweep
from vaelab.allocator import keep_freed_memory
from vaelab.cli import config_path, with_user_configs
from vaelab.cli.arguments import (
    call_hydra_main,
    exit_interrupted,
    exit_said,
    normalize_overrides,
    output_location_problem,
    removed_group_problem,
    task_started,
)
from vaelab.config import validate
from vaelab.console import quiet_libraries
from vaelab.errors import EXIT_BAD_INPUT, FolderInUse
from vaelab.run_folder import fingerprints, mark_failed
from vaelab.sweep import note_refused


@hydra.main(version_base="1.3", config_path=config_path(), config_name="train")
def task(cfg: DictConfig) -> float | None:
    task_started()
    try:
        validate(cfg)
        from vaelab.training import run  # torch and Lightning load only for a valid config

        return run(cfg)
    except Exception as error:
        if in_sweep():  # the job is marked failed; the other jobs run on (vaelab.sweep)
            message = f"{type(error).__name__}: {error}"
            logging.getLogger("vaelab").error("job failed: %s", message)
            out_dir = Path(cfg.paths.output_dir)
            if isinstance(error, FolderInUse):  # another launch trains it now: the summary
                return float("nan")  # says it is still running, not refused
            if not mark_failed(out_dir, message, job_fingerprints(cfg)):  # its folder holds a
                # result, or another config's run: kept as it is
                note_refused(out_dir.parent, out_dir.name, message)  # the sweep's folder
            return float("nan")
        exit_said(error)
        raise


def job_fingerprints(cfg: DictConfig) -> tuple[str, ...] | None:
    """The fingerprints a run of ``cfg`` is recorded under; None when the config cannot be
    hashed (then any unfinished record is marked)."""
    try:
        return fingerprints(cfg)
    except Exception:
        return None


def in_sweep() -> bool:
    return HydraConfig.get().mode == RunMode.MULTIRUN


def main() -> None:
    keep_freed_memory()  # before any tensor: the CPU's activations reuse freed memory
    quiet_libraries()
    sweep.failed_jobs.clear()
    sys.argv[1:] = with_user_configs(normalize_overrides(sys.argv[1:]))
    problem = output_location_problem(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    removed = removed_group_problem(sys.argv[1:])
    if removed:
        print(f"error: {removed}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    try:
        call_hydra_main(task)
    except KeyboardInterrupt as stop:  # Ctrl-C: one line, not Python's traceback
        exit_interrupted(f"interrupted: {stop}" if str(stop) else "interrupted")
    if sweep.failed_jobs:
        sys.exit(1)


if __name__ == "__main__":
    main()
