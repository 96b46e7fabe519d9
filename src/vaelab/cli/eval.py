"""``vaelab-eval`` (``python src/eval.py``): evaluate trained runs without training,
``run=<folder> evaluation=full`` or ``sweep=<folder>`` (add ``-m`` and a launcher to spread a
sweep's jobs).

Exit status 2 means bad input (no such folder, no checkpoint or config, a config this version
cannot build, missing data), said in one paragraph; 1 means some evaluations failed.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from vaelab import eval_runs
from vaelab.cli import config_path, with_user_configs
from vaelab.config import EXIT_BAD_INPUT, ConfigError, call_hydra_main
from vaelab.eval_args import expand_sweep, register_resolvers, target_problem
from vaelab.eval_runs import evaluate_run, evaluate_sweep, in_multirun, record_failure

failed = 0  # evaluations that failed in sweep=<folder> mode
started = False  # set once Hydra has composed the config and called the task


@hydra.main(version_base="1.3", config_path=config_path(), config_name="eval")
def task(cfg: DictConfig) -> float | None:
    global failed, started
    started = True
    name = HydraConfig.get().runtime.choices["evaluation"]
    keys = ("ckpt_path", "force", "device", "seed", "allow_unsafe_checkpoints")
    options = {key: cfg[key] for key in keys}
    try:
        if cfg.sweep_dir is not None:
            failed += evaluate_sweep(cfg.sweep_dir, cfg.evaluation, name, **options)
            return None
        evaluate_run(cfg.run, cfg.evaluation, name, **options)
    except Exception as error:
        if in_multirun():  # one job of `-m`: recorded, the other jobs go on
            record_failure(cfg.run, name, error)
            return float("nan")
        if isinstance(error, ConfigError):
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        raise
    return None


def main() -> None:
    global failed, started
    failed, started = 0, False
    eval_runs.failed_jobs.clear()
    register_resolvers()
    try:
        sys.argv[1:] = with_user_configs(expand_sweep(sys.argv[1:]))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    problem = target_problem(sys.argv[1:])
    if problem and not {"--help", "-h", "--cfg", "-c", "--info"} & set(sys.argv[1:]):
        print(problem, file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    call_hydra_main(task, lambda: started)
    if failed or eval_runs.failed_jobs:
        logging.shutdown()
        sys.exit(1)


if __name__ == "__main__":
    main()
