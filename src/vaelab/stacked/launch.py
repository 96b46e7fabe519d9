"""``hydra/launcher=stacked``: the sweep's jobs grouped into stacks (``grouping``), each stack
trained in this process (``training.run_stack``), one ``JobReturn`` per job as any launcher
returns them."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from vaelab.run_folder import config_hash
from vaelab.stacked.grouping import difference, group, stack_key
from vaelab.stacked.training import MemberJob, run_stack

log = logging.getLogger(__name__)
STACKS = ".stacks"  # <sweep>/.stacks/<name>/: each stack's checkpoints and log


def member_job(sweep_config: DictConfig) -> MemberJob:
    """A job's folder and configs, as ``hydra.core.utils.run_job`` sets them up."""
    HydraConfig.instance().set_config(sweep_config)
    out_dir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
    with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
        sweep_config.hydra.runtime.output_dir = str(out_dir.resolve())
    HydraConfig.instance().set_config(sweep_config)
    raw = copy.deepcopy(sweep_config)
    with read_write(raw), open_dict(raw):
        del raw["hydra"]
    cfg = copy.deepcopy(raw)
    OmegaConf.resolve(cfg)  # now, while this job's Hydra config answers ${hydra:...}
    return MemberJob(raw=raw, cfg=cfg, hydra=sweep_config, out_dir=out_dir.resolve(),
                     fingerprint=config_hash(raw))  # fmt: skip


def stack_name(jobs: list[MemberJob]) -> str:
    """The same jobs give the same name, so a stack run again finds its checkpoint."""
    names = "\n".join(sorted(j.out_dir.name for j in jobs))
    return f"{len(jobs)}_{hashlib.sha256(names.encode()).hexdigest()[:12]}"


def launch_stacks(launcher: Any, job_overrides: Sequence[Sequence[str]],
                  initial_job_idx: int) -> list[JobReturn]:  # fmt: skip
    setup_globals()
    config, context = launcher.config, launcher.hydra_context
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    jobs, configs = [], []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        sweep_config = context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = idx
            sweep_config.hydra.job.num = idx
        configs.append(sweep_config)
        jobs.append(member_job(sweep_config))
    keys = [stack_key(j.raw) for j in jobs]
    stacks = group(keys, launcher.max_stack)
    log.info("Launching %d jobs as %d stack(s) of at most %d", len(jobs), len(stacks),
             launcher.max_stack)  # fmt: skip
    firsts = list({keys[s[0]]: s[0] for s in stacks}.values())  # the first job of each key
    for other in firsts[1:]:
        log.info("jobs #%d and #%d train in separate stacks: they differ in %s",
                 initial_job_idx + firsts[0], initial_job_idx + other,
                 difference(jobs[firsts[0]].raw, jobs[other].raw))  # fmt: skip
    returns: list[JobReturn] = [None] * len(jobs)  # type: ignore[list-item]  # in job order
    for number, members in enumerate(stacks, start=1):
        stack_jobs = [jobs[i] for i in members]
        stack_dir = sweep_dir / STACKS / stack_name(stack_jobs)
        stack_dir.mkdir(parents=True, exist_ok=True)
        _log_to(configs[members[0]], stack_dir)
        log.info("stack %d of %d: %s", number, len(stacks),
                 " ".join(j.out_dir.name for j in stack_jobs))  # fmt: skip
        values = run_stack(stack_jobs, stack_dir, launcher.vectorize)
        for i, value in zip(members, values, strict=True):
            returns[i] = _job_return(job_overrides[i], jobs[i], configs[i], value)
        configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return returns


def _log_to(sweep_config: DictConfig, stack_dir: Path) -> None:
    """The job log (Hydra's ``job_logging``) into ``<stack>/train.log``."""
    job_logging = copy.deepcopy(sweep_config.hydra.job_logging)
    if OmegaConf.select(job_logging, "handlers.file") is not None:
        with read_write(job_logging), open_dict(job_logging):
            job_logging.handlers.file.filename = str(stack_dir / "train.log")
    configure_log(job_logging, sweep_config.hydra.verbose)


def _job_return(overrides: Sequence[str], job: MemberJob, sweep_config: DictConfig,
                value: float | None) -> JobReturn:  # fmt: skip
    ret = JobReturn(overrides=list(overrides), cfg=job.raw, hydra_cfg=sweep_config,
                    working_dir=os.getcwd(), task_name=JobRuntime.instance().get("name"),
                    status=JobStatus.COMPLETED)  # fmt: skip
    ret.return_value = value
    return ret
