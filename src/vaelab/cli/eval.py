"""``vaelab-eval`` (``python src/eval.py``): evaluate trained runs without training,
``run=<folder> evaluation=full`` or ``sweep=<folder>`` (add ``-m`` and a launcher to spread a
sweep's jobs); ``sweep=<folder> evaluation=udr`` compares the sweep's models (vaelab.eval_udr);
``represent=<module>:<function> data=<name>`` scores any model's codes (vaelab.eval_runs).

Exit status 2 means bad input (no such folder, no checkpoint or config, a config this version
cannot build, missing data), said in one paragraph; 1 means some evaluations failed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from vaelab import eval_runs, eval_udr
from vaelab.allocator import keep_freed_memory
from vaelab.cli import command, config_path, with_user_configs
from vaelab.cli.arguments import call_hydra_main, exit_interrupted, task_started
from vaelab.config import build_error
from vaelab.console import cut_log_files, log_file_sizes
from vaelab.errors import EXIT_BAD_INPUT, ConfigError
from vaelab.eval_args import expand_sweep, register_resolvers, target_problem, with_default_data
from vaelab.eval_runs import (
    evaluate_represent,
    evaluate_run,
    evaluate_sweep,
    in_multirun,
    record_failure,
    seed_part,
)
from vaelab.eval_udr import UDREvaluation, evaluate_sweep_udr
from vaelab.run_folder import drop_if_empty, entries, remove_added

failed = 0  # evaluations that failed in sweep=<folder> mode


@hydra.main(version_base="1.3", config_path=config_path(), config_name="eval")
def task(cfg: DictConfig) -> float | None:
    global failed
    task_started()
    name = HydraConfig.get().runtime.choices["evaluation"]
    keys = ("ckpt_path", "force", "device", "seed", "allow_unsafe_checkpoints")
    options = {key: cfg[key] for key in keys}
    logged = log_file_sizes()  # eval.log as it was: a refused evaluation leaves no line in it
    try:
        if cfg.represent is not None:
            runtime = HydraConfig.get().runtime
            out, before = Path(runtime.output_dir), entries(Path(runtime.output_dir))
            try:
                evaluate_represent(cfg, name, runtime.choices["data"], runtime.output_dir)
            except ConfigError:  # refused: its log and the folder Hydra made go
                remove_added(out, before)
                drop_if_empty(out)
                raise
            return None
        if sweep_level(cfg.evaluation):
            failed += _evaluate_sweep_level(cfg, name)
            return None
        if cfg.sweep_dir is not None:
            failed += evaluate_sweep(cfg.sweep_dir, cfg.evaluation, name, **options)
            return None
        evaluate_run(cfg.run, cfg.evaluation, name, **options)
    except Exception as error:
        if in_multirun():  # one job of `-m`: recorded, the other jobs go on
            record_failure(cfg.run, name, error, seed_part(cfg.run, cfg.evaluation, cfg.seed))
            return float("nan")
        if isinstance(error, ConfigError):
            cut_log_files(logged)
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        raise
    return None


def sweep_level(evaluation: DictConfig) -> bool:
    """Whether the evaluation compares the models of a sweep (UDR) rather than one run."""
    from hydra.utils import get_class

    try:
        return issubclass(get_class(evaluation._target_), UDREvaluation)
    except Exception:  # not a class: evaluate_run says what is wrong with it
        return False


def _evaluate_sweep_level(cfg: DictConfig, name: str) -> int:
    from hydra.utils import instantiate

    if cfg.sweep_dir is None or cfg.ckpt_path is not None:
        raise ConfigError(
            f"evaluation={name} compares the models of a sweep that differ only in seed, so it "
            f"takes the sweep's folder and the final checkpoints: {command('eval')} "
            f"sweep=<sweep folder> evaluation={name} (without run= or ckpt_path=)."
        )
    try:
        evaluation = instantiate(cfg.evaluation, **({} if cfg.seed is None else {"seed": cfg.seed}))
    except Exception as error:
        raise ConfigError(f"evaluation={name} cannot be built: {build_error(error)}") from None
    return evaluate_sweep_udr(
        cfg.sweep_dir, evaluation, force=cfg.force, device=cfg.device,
        allow_unsafe_checkpoints=cfg.allow_unsafe_checkpoints,
    )  # fmt: skip


def main() -> None:
    global failed
    keep_freed_memory()  # before any tensor: the CPU's activations reuse freed memory
    failed = 0
    eval_runs.failed_jobs.clear()
    register_resolvers()
    args = sys.argv[1:]
    if {"-m", "--multirun"} & set(args) and f"evaluation={eval_udr.NAME}" in args:
        print(
            f"error: evaluation={eval_udr.NAME} scores the models of a sweep together in one "
            f"process; run it without -m: {command('eval')} sweep=<folder> "
            f"evaluation={eval_udr.NAME}",
            file=sys.stderr,
        )
        sys.exit(EXIT_BAD_INPUT)
    try:
        sys.argv[1:] = with_user_configs(with_default_data(expand_sweep(sys.argv[1:])))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    problem = target_problem(sys.argv[1:])
    if problem and not {"--help", "-h", "--cfg", "-c", "--info"} & set(sys.argv[1:]):
        print(problem, file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    try:
        call_hydra_main(task)
    except KeyboardInterrupt:  # Ctrl-C: one line, not Python's traceback
        exit_interrupted(
            "interrupted: the evaluations that finished are written; the same command skips "
            "them and does the rest"
        )
    if failed or eval_runs.failed_jobs:
        logging.shutdown()
        sys.exit(1)


if __name__ == "__main__":
    main()
