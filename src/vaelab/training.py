"""One training run: seed, build from the config, fit, test, write figures and metrics.json.

``run(cfg)`` is what ``src/train.py`` calls and what the tests call directly; it returns
the value of ``cfg.optimized_metric`` for Hydra sweepers.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from vaelab.callbacks import ModelSummary, TrainingSpeed
from vaelab.checkpoint import check_checkpoint, find_resumable, read_checkpoint
from vaelab.cli import command
from vaelab.compile import compile_mode, compile_networks
from vaelab.config import building, validate
from vaelab.console import route_lightning_logs
from vaelab.cuda_probe import ask_for_gpus_once
from vaelab.data import ImageDataModule
from vaelab.errors import ConfigError, Interrupted
from vaelab.evaluate import Evaluator
from vaelab.io import write_json_atomic
from vaelab.loggers import finish_loggers
from vaelab.module import VAEModule
from vaelab.run_folder import (
    METRICS,
    claim,
    completed_run,
    drop_if_empty,
    entries,
    fingerprints,
    interrupted,
    mark_resumed,
    owner,
    remove_added,
    restore_record,
    write_hydra_files,
)
from vaelab.viz import save_run_figures
from vaelab.viz.settings import FigureSettings

log = logging.getLogger(__name__)

# Hints from Lightning that do not apply here: in-memory batches need no worker processes,
# and the module (not the datamodule) is meant to own the uint8 -> float conversion.
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.* is deprecated")
# Training is counted in steps across epochs, and steps are logged across epochs too: an epoch
# shorter than log_every_n_steps (small data) loses no logs, whatever Lightning warns.
warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
# FactorVAE's manual steps are checkpointed after its optimizer steps, which is what resuming
# needs (kill-and-resume equality is tested): Lightning's advice to save the state before
# them does not apply.
warnings.filterwarnings("ignore", message=".*ModelCheckpoint with manual optimization.*")
# bf16-mixed keeps float32 weights, so the model summary's 32-bit size is the true one.
warnings.filterwarnings("ignore", message=".*is not supported by the model summary.*")
# A run resumed from another (killed) run's folder writes its checkpoints to its own folder;
# only last.ckpt is used, so the best-model bookkeeping Lightning says it drops does not apply.
warnings.filterwarnings("ignore", message=".*The dirpath has changed from.*")
# A run resumed in its own folder finds its checkpoints and CSV log there: vaelab's CSV logger
# keeps the earlier rows (vaelab.loggers.ResumableCSVLogger), unlike what Lightning says.
warnings.filterwarnings("ignore", message=".*Experiment logs directory .* exists and is not empty")
warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty")
# A single-process SLURM batch job needs no srun, yet Lightning advises it wherever srun is
# installed (several tasks without srun fail with Lightning's own error anyway).
warnings.filterwarnings("ignore", message=".*The `srun` command is available on your system.*")


DEFAULT_MODULE = "vaelab.module.VAEModule"


def module_class(cfg: DictConfig) -> type[VAEModule]:
    """``model.module``: the dotted path of the LightningModule class (default VAEModule);
    it is built with VAEModule's arguments."""
    path = cfg.model.get("module") or DEFAULT_MODULE
    try:
        found = get_class(path)
    except Exception as error:
        raise ConfigError(f"`model.module`={path!r} names no importable class: {error}") from None
    if not (isinstance(found, type) and issubclass(found, VAEModule)):
        raise ConfigError(f"`model.module`={path!r} is not a subclass of {DEFAULT_MODULE}.")
    return found


def optimization_settings(cfg: DictConfig) -> dict[str, Any]:
    """VAEModule's weight-decay groups and value clipping from ``model.optimization``.
    ``clip_value`` is given in the paper's units (a loss averaged over pixels) and scaled by
    the C·H·W pixels that vaelab's reconstruction sums over (the same clip relative to the
    gradients, since the whole loss is that many times the paper's)."""
    given = dict(cfg.model.get("optimization") or {})
    if given.get("clip_value") is not None:
        given["clip_value"] = float(given["clip_value"]) * math.prod(cfg.arch.image_shape)
    return given


def build_module(cfg: DictConfig) -> VAEModule:
    """Networks, objective, β schedule and optimizer from their config groups.

    ``model.latent_dim`` (QLAE, Tripod: twice the data's factors) replaces ``arch.latent_dim``
    when the model sets it."""
    objective = instantiate(cfg.model.objective)
    latent_dim = cfg.model.get("latent_dim") or cfg.arch.latent_dim
    sized = {"latent_dim": latent_dim} if cfg.model.get("latent_dim") else {}
    module = module_class(cfg)(
        encoder=instantiate(cfg.arch.encoder, variational=objective.variational, **sized),
        decoder=instantiate(cfg.arch.decoder, **sized),
        objective=objective,
        beta_schedule=instantiate(cfg.beta_schedule),
        optimizer=instantiate(cfg.optimizer),
        latent_dim=latent_dim,
        nan_policy=cfg.trainer.get("nan_policy", "stop"),
        **optimization_settings(cfg),
    )
    # the summary's FLOPs: one image, where the networks are not compiled (no extra shape)
    if compile_mode(cfg.get("compile", False)) is None:
        module.example_input_array = torch.zeros(1, *cfg.arch.image_shape)
    return compile_networks(module, cfg.get("compile", False))


def build_trainer(cfg: DictConfig, **settings: Any) -> L.Trainer:
    """The Trainer of a run (``settings``: as ``trainer_from``'s)."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    if not loggers:  # `~logger`: Lightning's LearningRateMonitor refuses a trainer without one
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if cfg.trainer.get("enable_model_summary", True):  # ours, in place of Lightning's default
        callbacks.append(ModelSummary())
    trainer = trainer_from(cfg, callbacks, loggers, **settings)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer


def trainer_from(cfg: DictConfig, callbacks: list, loggers: list, **settings: Any) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` (``settings`` override its keys) with these callbacks
    and loggers; its plugins built, and SLURM's environment without Lightning's requeue."""
    # nan_policy is the module's (see build_module); every other key is a Trainer argument.
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    for key in ("nan_policy", "enable_model_summary"):
        trainer_cfg.pop(key, None)
    plugins = [instantiate(p) for p in trainer_cfg.pop("plugins", None) or []]
    ask_for_gpus_once()  # Lightning, imported, has torch ask NVML at every optimizer step
    if SLURMEnvironment.detect():  # vaelab.requeue handles the warning signal, not Lightning
        plugins.append(SLURMEnvironment(auto_requeue=False))
    if "enable_progress_bar" not in trainer_cfg and not any(
        isinstance(c, ProgressBar) for c in callbacks
    ):  # `~callbacks.progress` means no bar: Lightning's own would count epochs up to
        # max_epochs - 1, "Epoch 0/-2" in a run set by max_steps
        settings.setdefault("enable_progress_bar", False)
    return instantiate(
        {**trainer_cfg, **settings}, callbacks=callbacks, logger=loggers or False,
        enable_model_summary=False, plugins=plugins or None,
    )  # fmt: skip


def short_run_logging(cfg: DictConfig) -> dict[str, int]:
    """``{"log_every_n_steps": max_steps // 10}`` (at least 1) for a run shorter than its
    logging interval, which would log no training metric at all, unless the interval was
    given on the command line; ``{}`` otherwise."""
    every, max_steps = cfg.trainer.get("log_every_n_steps"), cfg.trainer.get("max_steps") or -1
    given = any(o.lstrip("+~").startswith("trainer.log_every_n_steps=")
                for o in launch_overrides() or [])  # fmt: skip
    if isinstance(every, int) and isinstance(max_steps, int) and 0 < max_steps < every:
        return {} if given else {"log_every_n_steps": max(1, max_steps // 10)}
    return {}


def speed_of(trainer: L.Trainer) -> TrainingSpeed | None:
    return next((c for c in trainer.callbacks if isinstance(c, TrainingSpeed)), None)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v) for k, v in sorted(metrics.items()) if getattr(v, "numel", lambda: 1)() == 1
    }


def launch_overrides() -> list[str] | None:
    """The command-line overrides of this Hydra job; None when not launched by Hydra."""
    if not HydraConfig.initialized():
        return None
    return list(HydraConfig.get().overrides.task)


def resolve_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint to resume from: ``ckpt_path`` as given, or for ``last`` (and for
    ``ckpt_path=null`` with ``resume=true``) the newest unfinished run of the same overrides."""
    requested = cfg.get("ckpt_path")
    if requested not in (None, "last"):
        return str(requested)
    out_dir = Path(cfg.paths.output_dir)
    own = out_dir / "checkpoints" / "last.ckpt"
    if own.is_file() and (requested == "last" or cfg.get("resume", True)):
        return str(own)  # this folder's run was interrupted (a sweep job run again)
    overrides = launch_overrides()
    found = None
    if overrides is not None and (requested == "last" or cfg.get("resume", True)):
        found = find_resumable(cfg.paths.log_dir, overrides, exclude=cfg.paths.output_dir)
    if requested == "last" and found is None:
        raise ConfigError(
            f"`ckpt_path=last` found no unfinished earlier run with the same overrides under "
            f"{cfg.paths.log_dir}/runs; give a checkpoint path instead, or ckpt_path=null."
        )
    if found is not None:
        log.info("resuming the unfinished run in %s", found.parent.parent)
    return None if found is None else str(found)


def resumed_run(cfg: DictConfig, ckpt_path: str | None) -> Path | None:
    """The earlier run folder whose ``last.ckpt`` this run resumes when it was found by
    ``resolve_checkpoint`` (not a ``ckpt_path`` given as a file, nor this folder's own)."""
    if ckpt_path is None or cfg.get("ckpt_path") not in (None, "last"):
        return None
    folder = Path(ckpt_path).parent.parent
    return None if folder.resolve() == Path(cfg.paths.output_dir).resolve() else folder


def build_evaluator(cfg: DictConfig) -> Evaluator:
    """The end-of-run evaluation, built and checked (FID's network and weights loaded) before
    training instead of after it."""
    with building("the evaluation (`evaluation`)"):
        evaluator = instantiate(cfg.evaluation)
    if not isinstance(evaluator, Evaluator):
        raise ConfigError(
            f"`evaluation` builds a {type(evaluator).__name__}, which cannot run at the end of "
            f"training; train with evaluation=fast, full or none (vaelab.evaluate.Evaluator). "
            f"evaluation=udr compares the models of a finished sweep: {command('eval')} "
            f"sweep=<sweep folder> evaluation=udr."
        )
    evaluator.check_available()
    return evaluator


def check_figure_settings(cfg: DictConfig) -> None:
    """The end-of-run figures' settings, checked before training instead of after it."""
    try:
        FigureSettings.from_config(cfg.get("figures"))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Invalid configuration: {error}.") from None


def log_result(metric: str, value: float | None, out_dir: Path | str) -> None:
    """The run's last line: the optimized metric to 6 significant digits, and the folder."""
    shown = "not logged" if value is None else f"{value:.6g}"
    log.info("%s = %s; run folder %s", metric, shown, out_dir)


def interruptible(trainer: L.Trainer, stage: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``stage(*args, **kwargs)``, one of ``trainer``'s fit, validate and test. Ctrl-C ends in
    Lightning's ``SystemExit(1)`` after its graceful shutdown; it is raised as
    ``Interrupted``, saying where the same command goes on from."""
    try:
        return stage(*args, **kwargs)
    except SystemExit:
        if not trainer.interrupted:
            raise
        raise Interrupted(interruption(trainer), step=trainer.global_step) from None


def interruption(trainer: L.Trainer) -> str:
    """What an interrupted run kept: the checkpoint the same command resumes from, and its step."""
    saver = trainer.checkpoint_callback
    last = getattr(saver, "last_model_path", "") or ""
    stopped = f"training stopped at step {trainer.global_step}"
    again = same_command()
    if not last or not Path(last).is_file():
        return f"{stopped} before its first checkpoint; {again} starts it again"
    step = int(read_checkpoint(last).get("global_step", 0))
    return f"{stopped}; {again} resumes it from {last} (step {step})"


def same_command() -> str:
    """The command that goes on with this run: the same one; for a sweep's job whose folder
    Hydra named (a new folder each launch), the same one with that folder."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return "the same command"
    hydra = HydraConfig.get()
    if any(o.lstrip("+").startswith("hydra.sweep.dir=") for o in hydra.overrides.hydra):
        return "the same command"
    return f"the same command with hydra.sweep.dir={hydra.sweep.dir}"


def run(cfg: DictConfig) -> float | None:
    """Train and evaluate one model; write ``metrics.json`` in ``cfg.paths.output_dir``.

    A folder that already holds a completed run of the same config is left as it is (a sweep
    run again skips its finished jobs); one that holds another config's run, or a completed
    run with ``resume=false``, is refused before anything in it changes (``vaelab.run_folder``).
    """
    route_lightning_logs()
    validate(cfg)
    check_figure_settings(cfg)
    out_dir = Path(cfg.paths.output_dir)
    metrics_path = out_dir / METRICS
    known = fingerprints(cfg)
    started = time.time()
    record: dict[str, Any] = {
        "status": "running", "model": cfg.model.name, "config_hash": known[0], **owner(),
    }  # fmt: skip
    chief = rank_zero_only.rank == 0  # DDP ranks > 0 write nothing
    resume = cfg.get("resume", True)
    earlier = metrics_path.read_bytes() if metrics_path.is_file() else None
    made = not out_dir.exists()  # the claim makes it (compare's sides): a refusal removes it
    if chief:  # the folder taken at once: a run starting there meanwhile is refused
        previous = claim(out_dir, known, resume, record)
    else:  # the chief's folder, its record
        previous = completed_run(out_dir, known, resume, shared=True)
    if previous is not None:
        log.info("%s already holds a completed run of this config: skipped", out_dir)
        return previous["metrics"].get(cfg.optimized_metric)
    trainer: L.Trainer | None = None
    before = entries(out_dir)  # a refused run leaves the folder as it found it
    taken_over, taken_over_record = None, None  # the killed run this one resumes, its record
    try:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        with building("the data (`data`)"):
            datamodule: ImageDataModule = instantiate(cfg.data)
        datamodule.check_available()
        with building("the model (`model`, `arch`, `beta_schedule`, `optimizer`)"):
            module = build_module(cfg)
        evaluator = build_evaluator(cfg) if chief else None  # evaluation is rank zero's
        ckpt_path = resolve_checkpoint(cfg)
        unsafe = bool(cfg.get("allow_unsafe_checkpoints", False))
        if ckpt_path is not None:
            check_checkpoint(ckpt_path, module, allow_unsafe=unsafe)
            record["resumed_from"] = ckpt_path
        if chief:  # every check has passed: the record names its checkpoint
            write_hydra_files(cfg, out_dir)
            write_json_atomic(metrics_path, record)  # a run that is killed stays "running"
            taken_over = resumed_run(cfg, ckpt_path)
            if taken_over is not None:  # its metrics.json: resumed, and where
                taken_over_record = mark_resumed(taken_over, out_dir)
        with building("the trainer (`trainer`, `callbacks`, `logger`)"):
            trainer = build_trainer(cfg, **short_run_logging(cfg))
        # Lightning's DDP seeds every process again as fit starts (reset_seed); doing the
        # same here gives one process the random stream (ε) of the DDP ranks.
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        interruptible(trainer, trainer.fit, module, datamodule=datamodule, ckpt_path=ckpt_path,
                      weights_only=not unsafe)  # fmt: skip
        if str(cfg.optimized_metric).startswith("val/") and (
            cfg.optimized_metric not in trainer.callback_metrics
        ):  # a run shorter than one validation interval: validate once at its end
            interruptible(trainer, trainer.validate, module, datamodule=datamodule, verbose=False)
        fit_metrics = {**module.logged_before, **_scalars(trainer.callback_metrics)}
        test_metrics = interruptible(
            trainer, trainer.test, module, datamodule=datamodule, verbose=False
        )[0]
        if not trainer.is_global_zero:  # evaluation, figures and metrics.json are rank zero's
            return None
        evaluation = (evaluator or build_evaluator(cfg))(module, datamodule)
        for logger in trainer.loggers:
            logger.log_metrics(evaluation.values, step=trainer.global_step)
        figures = save_run_figures(
            module, datamodule, out_dir, trainer.loggers, cfg.figures, trainer.global_step,
            evaluation.suite,
        )  # fmt: skip
        speed = speed_of(trainer)
        record.update(
            status="completed",
            step=trainer.global_step,
            start_step=speed.start_step if speed else None,
            images_per_sec=speed.images_per_sec if speed else None,
            skipped_batches=module.skipped_batches,
            metrics={**fit_metrics, **_scalars(test_metrics), **evaluation.values},
            figures=[str(f) for f in figures],
        )
        if evaluation.notes:
            record["notes"] = evaluation.notes
    except ConfigError:
        record["status"] = "invalid"  # bad input: no run happened, the folders as they were
        if chief:
            restore_record(out_dir, earlier)
            if made:
                drop_if_empty(out_dir)
        if chief and taken_over is not None:
            restore_record(taken_over, taken_over_record)
        raise
    except KeyboardInterrupt as stop:  # Ctrl-C: not running any more, and resumable
        record.update(interrupted(stop))
        raise
    except Exception as error:
        record.update(
            status="failed",
            error=f"{type(error).__name__}: {error}",
            traceback=traceback.format_exc(),
        )
        raise
    finally:
        record["elapsed_s"] = round(time.time() - started, 3)
        if chief and record["status"] != "invalid":
            write_json_atomic(metrics_path, record)
        if trainer is not None:
            finish_loggers(trainer, failed=record["status"] != "completed")
        if chief and record["status"] == "invalid":  # refused as training started (a corrupt
            remove_added(out_dir, before)  # data file): its log and logger files go too
    value = record["metrics"].get(cfg.optimized_metric)
    log_result(cfg.optimized_metric, value, out_dir)
    return value
