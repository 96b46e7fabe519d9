"""Train one stack: the jobs' folders checked and prepared as single runs prepare theirs,
the stack trained as one, then each member tested, evaluated and written to its own folder
(``.hydra/``, ``metrics.json``, ``checkpoints/last.ckpt``, figures, ``csv/``), as its single
run would have written them. The stack's own checkpoint, from which a killed stack resumes,
is ``<stack folder>/checkpoints/last.ckpt``."""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from vaelab.callbacks import ModelCheckpoint, TrainingSpeed
from vaelab.checkpoint import AtomicCheckpointIO, check_checkpoint
from vaelab.config import validate
from vaelab.console import route_lightning_logs
from vaelab.data import ImageDataModule
from vaelab.errors import ConfigError
from vaelab.evaluate import Evaluator
from vaelab.io import write_json_atomic
from vaelab.module import VAEModule
from vaelab.run_folder import (
    METRICS,
    completed_run,
    fingerprints,
    interrupted,
    mark_failed,
    owner,
    write_hydra_files,
)
from vaelab.stacked.data import StackedData
from vaelab.stacked.figures import StackedFigures
from vaelab.stacked.module import StackedVAEModule
from vaelab.training import (
    DEFAULT_MODULE,
    build_evaluator,
    build_module,
    check_figure_settings,
    interruptible,
    log_result,
    short_run_logging,
    speed_of,
    trainer_from,
)
from vaelab.viz import save_run_figures

log = logging.getLogger(__name__)


@dataclass
class MemberJob:
    """One job of a stack: its config as Hydra composed it (``raw``, saved in ``.hydra/``),
    the same resolved (``cfg``), its Hydra config and folder."""

    raw: DictConfig
    cfg: DictConfig
    hydra: DictConfig | None
    out_dir: Path
    fingerprint: str
    record: dict[str, Any] = field(default_factory=dict)
    datamodule: ImageDataModule | None = None
    module: VAEModule | None = None
    evaluator: Evaluator | None = None
    loggers: list[Any] = field(default_factory=list)


STACKABLE_MODULES = (DEFAULT_MODULE, "vaelab.weak.AdaGVAEModule")


def stack_problems(cfg: DictConfig) -> list[str]:
    """What a config sets that a stack cannot train exactly as a single run does."""
    problems = []
    if cfg.trainer.get("gradient_clip_val"):
        problems.append("gradient clipping (trainer.gradient_clip_val): a norm couples members")
    if cfg.trainer.get("nan_policy", "stop") != "stop":
        problems.append("trainer.nan_policy=skip (a stack marks a diverged member failed)")
    if cfg.get("compile", False):
        problems.append(f"compile={cfg.compile}")
    if int(cfg.trainer.get("devices", 1) or 1) != 1 or cfg.trainer.get("num_nodes", 1) != 1:
        problems.append("several devices (trainer.devices / num_nodes)")
    if int(cfg.trainer.get("accumulate_grad_batches", 1) or 1) != 1:
        problems.append("trainer.accumulate_grad_batches")
    module = cfg.model.get("module") or DEFAULT_MODULE
    if module not in STACKABLE_MODULES:
        problems.append(f"model.module={module} (a training step a stack does not know)")
    return problems


def _activate(job: MemberJob) -> None:
    if job.hydra is not None:
        HydraConfig.instance().set_config(job.hydra)


def _fail(job: MemberJob, error: BaseException) -> None:
    message = f"{type(error).__name__}: {error}"
    log.error("job %s failed: %s", job.out_dir.name, message)
    if job.record.get("status") == "running":
        job.record.update(status="failed", error=message, traceback=traceback.format_exc())
        write_json_atomic(job.out_dir / METRICS, job.record)
    else:
        mark_failed(job.out_dir, message, fingerprints(job.cfg))


def _check(job: MemberJob) -> float | str | None:
    """The job's earlier result (a completed run: skipped), or "train"."""
    validate(job.cfg)
    check_figure_settings(job.cfg)
    previous = completed_run(job.out_dir, fingerprints(job.raw), resume=job.cfg.get("resume", True))
    if previous is not None:
        log.info("%s already holds a completed run of this config: skipped", job.out_dir)
        return previous["metrics"].get(job.cfg.optimized_metric)
    problems = stack_problems(job.cfg)
    if problems:
        raise ConfigError(
            f"{job.out_dir.name} cannot train in a stack: it sets {'; '.join(problems)}. Run "
            f"these jobs with another launcher (drop hydra/launcher=stacked)."
        )
    return "train"


def _build(job: MemberJob, stack: str) -> None:
    """Data, model and evaluation in the order a single run builds them (so the same seed
    gives the same initial weights), then the folder's ``.hydra/`` and running record."""
    cfg = job.cfg
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    job.datamodule = instantiate(cfg.data)
    job.datamodule.check_available()
    job.module = build_module(cfg)
    job.evaluator = build_evaluator(cfg)
    _activate(job)
    write_hydra_files(job.raw, job.out_dir)
    job.record = {"status": "running", "model": cfg.model.name,
                  "config_hash": job.fingerprint, "stack": stack, **owner()}  # fmt: skip
    write_json_atomic(job.out_dir / METRICS, job.record)
    job.loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    for logger in job.loggers:
        if isinstance(logger, WandbLogger):  # one W&B run per member, open side by side
            logger._wandb_init["reinit"] = "create_new"
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))


def build_stack_trainer(
    cfg: DictConfig, stack_dir: Path, *extra: L.Callback, **settings: Any
) -> L.Trainer:
    """The trainer of the first member's config, checkpointing into the stack's folder, with
    ``extra`` callbacks (``settings``: as ``trainer_from``'s)."""
    every = OmegaConf.select(cfg, "callbacks.model_checkpoint.every_n_train_steps", default=1000)
    callbacks: list[Any] = [
        ModelCheckpoint(dirpath=stack_dir / "checkpoints", filename="step{step:07d}",
                        auto_insert_metric_name=False, every_n_train_steps=every, save_top_k=1,
                        save_last=True),
        TrainingSpeed(),
        *extra,
    ]  # fmt: skip
    for name in ("progress", "requeue"):
        if OmegaConf.select(cfg, f"callbacks.{name}") is not None:
            callbacks.append(instantiate(cfg.callbacks[name]))
    return trainer_from(cfg, callbacks, [], default_root_dir=str(stack_dir), **settings)


def run_stack(jobs: list[MemberJob], stack_dir: Path,
              vectorize: bool | str = "auto") -> list[float | None]:  # fmt: skip
    """Train the jobs as one stack; each job's ``cfg.optimized_metric`` (NaN for a failed job).
    ``vectorize``: the nets' evaluation (``StackedVAEModule.setup``)."""
    route_lightning_logs()  # each Lightning line once
    values: list[float | None] = [math.nan] * len(jobs)
    live: list[int] = []
    for i, job in enumerate(jobs):
        _activate(job)
        try:
            checked = _check(job)
        except ConfigError as error:
            _fail(job, error)
            continue
        if checked == "train":
            live.append(i)
        else:
            values[i] = checked  # type: ignore[assignment]
    if not live:
        return values
    members = [jobs[i] for i in live]
    try:
        _train_and_finish(members, live, stack_dir, vectorize, values)
    except KeyboardInterrupt as stop:  # Ctrl-C in training or a member's evaluation
        for job in members:
            if job.record.get("status") == "running":
                job.record.update(interrupted(stop))
                write_json_atomic(job.out_dir / METRICS, job.record)
        raise
    return values


def _train_and_finish(members: list[MemberJob], live: list[int], stack_dir: Path,
                      vectorize: bool | str, values: list[float | None]) -> None:  # fmt: skip
    """Train the members as one stack, then evaluate each; ``values[live[k]]``: member k's
    result (a failure marks the job failed)."""
    started = time.time()
    try:
        for job in members:
            _build(job, stack_dir.name)
        stacked, trainer = _train(members, stack_dir, vectorize)
    except Exception as error:
        for job in members:
            _fail(job, error)
        return
    for k, (i, job) in enumerate(zip(live, members, strict=True)):
        with member_log(job.out_dir):
            log.info("trained as member %d of %d of the stack in %s (its log holds the "
                     "training)", k, len(members), stack_dir)  # fmt: skip
            try:
                values[i] = _finish(job, k, stacked, trainer, started)
            except Exception as error:
                _fail(job, error)
            finally:
                finish_loggers_of(job)


@contextmanager
def member_log(out_dir: Path) -> Iterator[None]:
    """What is logged inside also goes to the job's own log file (``<job>/train.log``, named
    and formatted as the stack's file log, appended to as a single run's): the member's
    evaluation, figures and result."""
    root = logging.getLogger()
    files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    if not files:  # no job file log configured (hydra/job_logging=disabled, ...)
        yield
        return
    handler = logging.FileHandler(out_dir / Path(files[0].baseFilename).name, encoding="utf-8")
    handler.setFormatter(files[0].formatter)
    handler.setLevel(files[0].level)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def _train(members: list[MemberJob], stack_dir: Path,
           vectorize: bool | str) -> tuple[StackedVAEModule, L.Trainer]:  # fmt: skip
    first = members[0].cfg
    stacked = StackedVAEModule(
        [m.module for m in members], [int(m.cfg.seed) for m in members],
        vectorize=vectorize,
    )  # fmt: skip
    stacked.member_loggers = [m.loggers for m in members]
    data = StackedData([m.datamodule for m in members])
    last = stack_dir / "checkpoints" / "last.ckpt"
    ckpt_path = str(last) if last.is_file() and first.get("resume", True) else None
    if ckpt_path is not None:
        check_checkpoint(ckpt_path, stacked)
        log.info("resuming the stack from %s", ckpt_path)
        for m in members:
            m.record["resumed_from"] = ckpt_path
    figures = StackedFigures(
        [instantiate(c) if (c := OmegaConf.select(m.cfg, "callbacks.figures")) else None
         for m in members],
        [m.datamodule for m in members], [m.out_dir for m in members],
    )  # fmt: skip
    trainer = build_stack_trainer(first, stack_dir, figures, **short_run_logging(first))
    many = f"{len(members)} models as one stack" if len(members) > 1 else "1 model"
    log.info("training %s in %s", many, stack_dir)
    interruptible(trainer, trainer.fit, stacked, datamodule=data, ckpt_path=ckpt_path,
                  weights_only=True)  # fmt: skip
    if stacked.failed and len(stacked.failed) == len(members):
        raise RuntimeError(next(iter(stacked.failed.values())))
    interruptible(trainer, trainer.test, stacked, datamodule=data, verbose=False)
    return stacked, trainer


def _finish(job: MemberJob, k: int, stacked: StackedVAEModule, trainer: L.Trainer,
            started: float) -> float | None:  # fmt: skip
    """Member k's evaluation, figures, checkpoint and ``metrics.json``."""
    if k in stacked.failed:
        raise RuntimeError(stacked.failed[k])
    _activate(job)
    module, cfg, step = stacked.member(k), job.cfg, trainer.global_step
    evaluation = job.evaluator(module, job.datamodule)
    for logger in job.loggers:
        logger.log_metrics(evaluation.values, step=step)
    figures = save_run_figures(module, job.datamodule, job.out_dir, job.loggers, cfg.figures, step,
                               evaluation.suite)  # fmt: skip
    save_member_checkpoint(module, job.out_dir / "checkpoints" / "last.ckpt", step,
                           trainer.current_epoch, k, stacked.size)  # fmt: skip
    speed = speed_of(trainer)
    per_member = speed.images_per_sec if speed else None  # the stack's steps × one batch
    job.record.update(
        status="completed", step=step, start_step=speed.start_step if speed else None,
        images_per_sec=per_member, skipped_batches=0,
        metrics={**stacked.member_logs[k], **evaluation.values},
        figures=[str(f) for f in figures],
        stack={"folder": str(trainer.default_root_dir), "members": stacked.size, "member": k,
               "images_per_sec": per_member * stacked.size if per_member else None},
        elapsed_s=round(time.time() - started, 3),
    )  # fmt: skip
    if evaluation.notes:
        job.record["notes"] = evaluation.notes
    write_json_atomic(job.out_dir / METRICS, job.record)
    value = job.record["metrics"].get(cfg.optimized_metric)
    log_result(cfg.optimized_metric, value, job.out_dir)
    return value


def save_member_checkpoint(module: VAEModule, path: Path, step: int, epoch: int, k: int,
                           size: int) -> None:  # fmt: skip
    """The member's weights as a single run's ``last.ckpt`` holds them (what ``src/eval.py``
    and ``ckpt_path=`` read), written atomically."""
    checkpoint = {
        "state_dict": {n: t.detach().cpu() for n, t in module.state_dict().items()},
        "global_step": step, "epoch": epoch, "pytorch-lightning_version": L.__version__,
        "stack": {"member": k, "members": size},
    }  # fmt: skip
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)


def finish_loggers_of(job: MemberJob) -> None:
    """Flush the member's loggers and close its W&B run."""
    completed = job.record.get("status") == "completed"
    for logger in job.loggers:
        logger.finalize("success" if completed else "failed")
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish(exit_code=0 if completed else 1)
