"""Evaluate trained runs again, without training: ``python src/eval.py run=<folder>`` or
``sweep=<folder>`` (``src/eval.py``).

For one run: rebuild the model and data from the run's saved config, load the checkpoint,
run the chosen evaluation (``conf/evaluation/<name>.yaml``) and write

- ``<run>/evaluation/<name>.json``: status, values, the checkpoint (file, step, sha256) and
  the evaluation's settings; a checkpoint other than the run's final one goes to
  ``<name>-step<k>.json`` instead, a seed other than the run's to ``<name>-seed<s>.json``
  (``result_path``);
- the values of ``<name>.json`` alone merged into ``<run>/metrics.json``, with the same
  details under ``evaluations.<name>``; both files are replaced atomically.

Checkpoints are only read. The same evaluation of the same checkpoint is skipped unless
``force``. A sweep is every job folder of the sweep whose training completed, one after
another (``evaluate_sweep``) or one Hydra job each with ``-m`` (``expand_sweep``), failures
isolated and listed at the end. (``vaelab.eval_args``: src/eval.py's command line.)
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vaelab.cli import command
from vaelab.config import build_error, evaluation_problems
from vaelab.data.files import file_digest
from vaelab.errors import EXIT_BAD_INPUT, ConfigError
from vaelab.io import folder_locked, write_json_atomic
from vaelab.metrics.settings import scored_settings
from vaelab.runs import CONFIG, LAST, METRICS, load_run, run_config, run_record
from vaelab.sweep import launcher_jobs

log = logging.getLogger(__name__)

RESULTS = "evaluation"  # the folder of a run that holds its evaluations
failed_jobs: list[str] = []  # filled at the end of `src/eval.py -m`, read by src/eval.py


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def file_sha256(path: str | Path) -> str:
    return file_digest(Path(path))


def evaluation_config(run_cfg: DictConfig, evaluation: DictConfig, seed: int | None) -> DictConfig:
    """The evaluation node placed in the run's config, so ``${seed}`` is the run's seed
    (the value the in-training evaluation used) unless ``seed`` is given."""
    merged = run_cfg.copy()
    merged.evaluation = OmegaConf.create(OmegaConf.to_container(evaluation, resolve=False))
    if seed is not None:
        merged.evaluation.seed = seed
    return merged


def seed_part(run_dir: str | Path, evaluation: DictConfig, seed: int | None) -> str:
    """``-seed<s>`` in a result's name when the command gave ``seed`` and it is not the seed the
    run's own evaluation draws with (``evaluation.seed`` in the run's config, the Evaluator's
    0 where it has none); "" for that draw. A run whose config cannot be read: "" too."""
    if seed is None:
        return ""
    try:
        own = evaluation_config(run_config(run_dir), evaluation, None).evaluation.get("seed", 0)
    except (ConfigError, OmegaConfBaseException):
        return ""
    return "" if seed == own else f"-seed{seed}"


def result_path(
    run_dir: str | Path,
    name: str,
    step: int | None = None,
    final_step: int | None = None,
    seeded: str = "",
) -> Path:
    """``<run>/evaluation/<name>.json``, the result merged into metrics.json: the run's final
    checkpoint (``step == final_step``; both None: that one) drawn with the run's own seed.
    Another checkpoint (any of a run whose training has not completed, ``final_step`` None)
    adds ``-step<k>``, another seed ``seeded`` (``seed_part``): ``full-step3-seed1.json``."""
    suffix = "" if step == final_step else f"-step{step}"
    return Path(run_dir) / RESULTS / f"{name}{suffix}{seeded}.json"


def _done_before(path: Path, sha: str, settings: dict[str, Any]) -> bool:
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return False
    same = record.get("checkpoint_sha256") == sha and record.get("settings") == settings
    return record.get("status") == "completed" and same


def check_evaluation(cfg: DictConfig, name: str) -> None:
    """``ConfigError`` for the settings of ``cfg.evaluation`` that src/train.py refuses too
    (unknown metrics or suite settings, ``suite.jobs``), in the same words."""
    problems = evaluation_problems(cfg)
    if problems:
        raise ConfigError(f"evaluation={name} cannot be built: {' '.join(problems)}")


def build_evaluation(run_dir: Path, evaluation: DictConfig, name: str, seed: int | None):
    """The evaluator of ``evaluation`` in the run's config, built and checked (its settings,
    FID's network and weights) before the run is loaded. ``ConfigError`` when it cannot be."""
    from hydra.utils import instantiate

    cfg = evaluation_config(run_config(run_dir), evaluation, seed)
    check_evaluation(cfg, name)
    try:
        evaluator = instantiate(cfg.evaluation)
    except Exception as error:
        raise ConfigError(f"evaluation={name} cannot be built: {build_error(error)}") from None
    evaluator.check_available()
    return evaluator


def evaluate_run(
    run_dir: str | Path,
    evaluation: DictConfig,
    name: str,
    ckpt_path: str | Path | None = None,
    force: bool = False,
    device: str = "auto",
    seed: int | None = None,
    allow_unsafe_checkpoints: bool = False,
    evaluator: Any = None,
) -> dict[str, Any]:
    """Evaluate one run folder (module docstring); returns the evaluation's record, with
    ``status`` ``completed`` or ``skipped`` (done before). ``ConfigError`` for bad input.
    ``evaluator``: ``build_evaluation``'s for this run when the caller has built it already."""

    run_dir = Path(run_dir)
    record = run_record(run_dir)
    if record.get("status") == "resumed" and ckpt_path is None:
        raise ConfigError(
            f"the training of {run_dir} was resumed in {record.get('resumed_in')} and went on "
            f"there (metrics.json status: resumed), so {LAST} here is not its final model. "
            f"Evaluate that folder (run={record.get('resumed_in')}), or give "
            f"ckpt_path={run_dir / LAST} to evaluate this checkpoint as it is (the result then "
            f"goes to {RESULTS}/ only)."
        )
    if record.get("status") != "completed" and ckpt_path is None:
        status = record.get("status", "missing")
        if status == "interrupted" and record.get("error"):  # how its training goes on
            status += f": {record['error']}"
        meanwhile = (
            f"or give ckpt_path={run_dir / LAST} to evaluate that checkpoint as it is (the "
            f"result then goes to {RESULTS}/ only)"
            if (run_dir / LAST).is_file()
            else f"it has no checkpoint to evaluate meanwhile ({LAST} is not there)"
        )
        raise ConfigError(
            f"the training of {run_dir} has not completed (metrics.json status: {status}), so "
            f"it has no final model. Evaluate it once training has finished; {meanwhile}."
        )
    evaluator = evaluator or build_evaluation(run_dir, evaluation, name, seed)
    settings = evaluator.settings()
    checkpoint = Path(ckpt_path) if ckpt_path is not None else run_dir / LAST
    sha = file_sha256(checkpoint) if checkpoint.is_file() else ""
    final_step = record.get("step") if record.get("status") == "completed" else None
    seeded = seed_part(run_dir, evaluation, seed)
    for path in (run_dir / RESULTS).glob(f"{name}*.json") if not force else ():
        if _done_before(path, sha, settings):
            step = json.loads(path.read_text()).get("step")
            if path != result_path(run_dir, name, step, final_step, seeded):
                continue  # the checkpoint before training completed, now the final one
            log.info("%s: evaluation=%s of this checkpoint is in %s: skipped (force=true "
                     "runs it again)", run_dir, name, path.relative_to(run_dir))  # fmt: skip
            return {**json.loads(path.read_text()), "status": "skipped"}
    start = time.time()
    loaded = load_run(run_dir, ckpt_path, device, allow_unsafe_checkpoints)
    log.info("%s: evaluation=%s of %s (step %d) on %s", run_dir, name,
             checkpoint.name, loaded.step, loaded.module.device)  # fmt: skip
    loaded.datamodule.setup("test")
    evaluated = evaluator(loaded.module, loaded.datamodule)
    result = {
        "status": "completed",
        "evaluation": name,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha,
        "step": loaded.step,
        "settings": settings,
        "metrics": evaluated.values,
        "elapsed_s": round(time.time() - start, 3),
    }
    if evaluated.notes:
        result["notes"] = evaluated.notes
    path = result_path(run_dir, name, loaded.step, final_step, seeded)
    write_json_atomic(path, result)
    if path == result_path(run_dir, name):
        merge_into_metrics(run_dir, name, result)
    log.info("%s: %s written in %.1f s", run_dir, path.relative_to(run_dir), result["elapsed_s"])
    return result


def merge_into_metrics(
    run_dir: Path,
    name: str,
    result: dict[str, Any],
    keys: tuple[str, ...] = ("checkpoint", "checkpoint_sha256", "step", "settings"),
    new: dict[str, Any] | None = None,
) -> None:
    """The new values into metrics.json (``new`` where there is none yet), and the result's
    ``keys`` under ``evaluations.<name>``. Read and replaced under the folder's lock, so what
    another evaluation merges at the same time is not lost."""
    with folder_locked(run_dir):
        record = run_record(run_dir) or dict(new or {})
        said_replaced(run_dir, record.get("metrics") or {}, result["metrics"])
        record.setdefault("metrics", {}).update(result["metrics"])
        details = {k: result[k] for k in keys}
        record.setdefault("evaluations", {})[name] = {**details, "file": f"{RESULTS}/{name}.json"}
        write_json_atomic(run_dir / METRICS, record)


def said_replaced(run_dir: Path, before: dict[str, Any], after: dict[str, Any]) -> None:
    """One log line naming the values of metrics.json that an evaluation with other settings
    (``evaluation.iwae_k=5``) replaces, old -> new, so that none is replaced unsaid (timings,
    ``disent/time/*``, left out: they differ every time)."""
    changed = [
        f"{k} {before[k]:.6g} -> {v:.6g}"
        for k, v in after.items()
        if "/time/" not in k
        and isinstance(before.get(k), float | int) and isinstance(v, float | int)
        and not math.isclose(before[k], v, rel_tol=1e-9, abs_tol=1e-12)
        and not (math.isnan(before[k]) and math.isnan(v))
    ]  # fmt: skip
    if changed:
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        log.info("%s: this evaluation replaces values in metrics.json (old -> new): %s%s",
                 run_dir, ", ".join(changed[:6]), more)  # fmt: skip


# A representation's record names the callable and the data instead of a checkpoint.
REPRESENT_KEYS = ("represent", "represent_sha256", "data", "settings")


def represent_settings(metrics: list[str], suite: dict[str, Any], seed: int) -> dict[str, Any]:
    """The settings of a representation's evaluation: those of ``Evaluator.settings()`` that
    apply to codes alone (no likelihood, reconstructions or samples)."""
    return {"disentanglement": list(metrics), "suite": scored_settings(suite), "seed": seed}


def write_evaluation(out_dir: Path, name: str, record: dict[str, Any]) -> Path:
    """A representation's ``record`` as a run's: ``<out_dir>/evaluation/<name>.json`` and
    merged into ``<out_dir>/metrics.json`` (``status``, ``represent``, ``metrics``,
    ``evaluations.<name>``); both replaced atomically. Returns the first file."""
    path = out_dir / RESULTS / f"{name}.json"
    write_json_atomic(path, record)
    new = {"status": "completed", "represent": record["represent"]}
    merge_into_metrics(out_dir, name, record, REPRESENT_KEYS, new)
    log.info("%s written", path)
    return path


def evaluate_represent(
    cfg: DictConfig, name: str, data: str, out_dir: str | Path
) -> dict[str, Any]:
    """``src/eval.py represent=<spec> data=<data>``: ``cfg.represent`` loaded
    (vaelab.metrics.represent), scored on ``cfg.data`` with ``cfg.evaluation``'s metrics and
    suite and ``cfg.seed`` (null: 0), written into ``out_dir`` (``write_evaluation``). A
    TorchScript file is loaded onto ``cfg.device``; an imported callable gets its images on
    its own device (a torch module's) or the CPU, unless ``cfg.device`` names one."""
    from vaelab.metrics.represent import (
        build_datamodule,
        build_evaluator,
        check_choice,
        represent_record,
        score_represent,
    )
    from vaelab.metrics.representation import load_represent
    from vaelab.runs import pick_device

    start = time.time()
    seed = 0 if cfg.seed is None else int(cfg.seed)
    evaluator = build_evaluator(cfg, name)
    metrics, suite = list(evaluator.metrics), dict(evaluator.suite)
    check_choice(metrics, suite)
    device = pick_device(cfg.device)
    represent, sha256 = load_represent(cfg.represent, device)
    chosen = device if sha256 is not None or cfg.device != "auto" else None
    datamodule = build_datamodule(cfg)
    log.info("represent=%s: evaluation=%s on %s, seed %d", cfg.represent, name,
             datamodule.source.name, seed)  # fmt: skip
    values, notes = score_represent(
        represent, datamodule.source, metrics, suite, seed, name=str(cfg.represent),
        images=datamodule.source_images, device=chosen, beside=launcher_jobs(),
    )  # fmt: skip
    record = represent_record(
        str(cfg.represent), sha256, name, data, represent_settings(metrics, suite, seed),
        values, notes, time.time() - start,
    )  # fmt: skip
    write_evaluation(Path(out_dir), name, record)
    return record


def sweep_jobs(sweep_dir: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The job folders of a sweep whose training completed, and the others with their status;
    ``ConfigError`` when none completed."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ConfigError(f"`sweep`={sweep_dir} is not a folder; give the folder of a sweep "
                          f"(outputs/multirun/<date>/<time>).")  # fmt: skip
    done, others = [], []
    for saved in sorted(sweep_dir.glob(f"*/{CONFIG}")):
        job = saved.parent.parent
        status = run_record(job).get("status", "no metrics.json")
        (done if status == "completed" else others).append(job if status == "completed"
                                                          else (job, status))  # fmt: skip
    if not done and not others:
        raise ConfigError(
            f"{sweep_dir} holds no job folders (*/{CONFIG}); give the folder a sweep was "
            f"written to, or use run=<folder> for one run."
        )
    if not done:
        listed = ", ".join(f"{job.name} ({training_status(status)})" for job, status in others)
        raise ConfigError(
            f"{sweep_dir} holds no job whose training completed: {listed}. Evaluate the sweep "
            f"once training has finished (a stopped job's training command run again resumes "
            f"it), or give run=<job folder> ckpt_path=<job folder>/{LAST} to evaluate one "
            f"checkpoint as it is."
        )
    return done, others


def training_status(status: str) -> str:
    """A job's status as the summary says it: ``training interrupted``, ``no metrics.json``."""
    return status if status.startswith("no ") else f"training {status}"


def evaluate_sweep(sweep_dir: str | Path, evaluation: DictConfig, name: str, **options) -> int:
    """Evaluate every completed job one after another; returns the number that failed."""
    done, others = sweep_jobs(sweep_dir)
    # built for the first job before any: an evaluation that cannot run here (FID offline)
    # is said once, not per job
    first = build_evaluation(done[0], evaluation, name, options.get("seed"))
    failed = []
    for i, job in enumerate(done):
        try:
            evaluate_run(job, evaluation, name, **options, evaluator=first if i == 0 else None)
        except Exception as error:
            log.error("%s: evaluation failed: %s: %s", job.name, type(error).__name__, error)
            log.debug("%s", traceback.format_exc())
            failed.append((job, f"{type(error).__name__}: {error}"))
    print_summary(Path(sweep_dir), name, done, failed, others)
    return len(failed)


def record_failure(run_dir: str | Path, name: str, error: BaseException, seeded: str = "") -> None:
    """Log a failed evaluation of a sweep's job; record it where the evaluation of its final
    checkpoint goes (``result_path``, ``seeded``: ``seed_part``) unless that holds an earlier
    completed evaluation (which is kept)."""
    message = f"{type(error).__name__}: {error}"
    log.error("%s: evaluation failed: %s", Path(run_dir).name, message)
    path = result_path(run_dir, name, seeded=seeded)
    if path.is_file() and json.loads(path.read_text()).get("status") == "completed":
        return
    write_json_atomic(path, {"status": "failed", "evaluation": name, "error": message})


def job_state(run_dir: Path, name: str, seeded: str = "") -> tuple[bool, str]:
    """Whether the job's result (``result_path``, ``seeded``: ``seed_part``) is a completed
    evaluation of its last.ckpt, and else what went wrong."""
    path = result_path(run_dir, name, seeded=seeded)
    if not path.is_file():
        return False, "no result (see its eval.log)"
    record = json.loads(path.read_text())
    if record.get("status") == "failed":
        return False, record.get("error", "see its eval.log")
    current = (run_dir / LAST).is_file() and record.get("checkpoint_sha256") == file_sha256(
        run_dir / LAST
    )
    ok = record.get("status") == "completed" and current
    return ok, f"no result of its {LAST} (see its eval.log; {path.name} is an earlier one)"


class EvalSummary(Callback):
    """``src/eval.py -m``: the evaluation's settings checked before any job
    (``check_evaluation``: one paragraph, exit 2); at the end one line per job, the failed
    ones named."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_evaluation(config, config.hydra.runtime.choices["evaluation"])
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from vaelab.eval_args import listed_runs

        runs = listed_runs(list(config.hydra.overrides.task))
        name = config.hydra.runtime.choices["evaluation"]
        jobs = [Path(r) for r in runs]
        states = [job_state(j, name, seed_part(j, config.evaluation, config.seed)) for j in jobs]
        failed = [(j, err) for j, (ok, err) in zip(jobs, states, strict=True) if not ok]
        failed_jobs[:] = [j.name for j, _ in failed]
        sweep_dir = jobs[0].parent if jobs else Path(config.hydra.sweep.dir)
        print_summary(sweep_dir, name, jobs, failed, [])


def print_summary(
    sweep_dir: Path,
    name: str,
    done: list[Path],
    failed: list[tuple[Path, str]],
    others: list[tuple[Path, str]],
) -> None:
    evaluated = len(done) - len(failed)
    print(f"sweep {sweep_dir}: evaluation={name} of {evaluated} of {len(done)} completed jobs")
    for job, error in failed:
        print(f"  FAILED {job.name}: {error}")
    for job, status in others:
        print(f"  not evaluated {job.name}: {training_status(status)}")
    if failed:
        one = len(failed) == 1
        print(
            f"error: {len(failed)} evaluation{'' if one else 's'} failed; run the same command "
            f"again to retry {'it' if one else 'them'} (finished evaluations are skipped).",
            file=sys.stderr,
        )
    print(f"report: {command('report')} {sweep_dir}")
