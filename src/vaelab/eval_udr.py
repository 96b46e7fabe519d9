"""UDR of a sweep (``python src/eval.py sweep=<folder> evaluation=udr``): the completed jobs
are grouped by their overrides without ``seed`` (the models trained alike), every model of a
group encodes the same ``num_inputs`` test images, and each model's UDR within its group
(``vaelab.metrics.udr``) goes to ``<job>/evaluation/udr.json`` and into its
``metrics.json`` as ``disent/udr`` under ``evaluations.udr``, where ``src/report.py`` finds it;
with ``evaluation.method=spearman`` to ``udr[spearman].json``, ``disent/udr[spearman]`` and
``evaluations["udr[spearman]"]``, so the two methods' records stand side by side.

A group is scored again only when a member's checkpoint or the settings changed (or
``force``); a job alone with its hyperparameters has no UDR and is listed.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from vaelab.cli import command
from vaelab.eval_runs import RESULTS, file_sha256, merge_into_metrics, record_failure, sweep_jobs
from vaelab.io import write_json_atomic
from vaelab.metrics.udr import KL_THRESHOLD, LASSO_ALPHA, Similarity, kl_per_latent, udr
from vaelab.runs import LAST, load_run

log = logging.getLogger(__name__)

NAME = "udr"  # evaluation=udr: conf/evaluation/udr.yaml, evaluation/udr.json


def record_name(method: Similarity) -> str:
    """``udr`` for Lasso (disentanglement_lib's default), ``udr[spearman]`` for the other
    similarity: the name of a job's ``evaluation/<name>.json`` and ``evaluations.<name>``,
    so the two methods' records of one model are kept apart."""
    return NAME if method == "lasso" else f"{NAME}[{method}]"


def metric_key(method: Similarity) -> str:
    """``disent/udr`` or ``disent/udr[spearman]`` (``record_name``) in metrics.json."""
    return f"disent/{record_name(method)}"


ENCODE_BATCH = 1000


class UDREvaluation:
    """The settings of ``conf/evaluation/udr.yaml``: UDR of each model against the others of
    its group on ``num_inputs`` test images drawn with ``seed``."""

    def __init__(
        self,
        num_inputs: int = 10_000,
        method: Similarity = "lasso",
        kl_threshold: float = KL_THRESHOLD,
        lasso_alpha: float = LASSO_ALPHA,
        seed: int = 0,
    ) -> None:
        if method not in ("lasso", "spearman"):
            raise ValueError(f"evaluation.method={method!r}: choose lasso or spearman")
        self.num_inputs, self.method, self.seed = int(num_inputs), method, int(seed)
        self.kl_threshold, self.lasso_alpha = float(kl_threshold), float(lasso_alpha)

    def settings(self) -> dict[str, Any]:
        return {
            "num_inputs": self.num_inputs, "method": self.method, "seed": self.seed,
            "kl_threshold": self.kl_threshold, "lasso_alpha": self.lasso_alpha,
        }  # fmt: skip


def hyperparameters(job: Path) -> tuple[str, ...]:
    """The job's overrides other than ``seed`` (the key of its group)."""
    saved = job / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(saved.read_text()) if saved.is_file() else []
    return tuple(sorted(o for o in overrides or [] if not o.lstrip("+~").startswith("seed=")))


def groups(jobs: Sequence[Path]) -> list[list[Path]]:
    """The jobs grouped by ``hyperparameters``, in the order of their first job."""
    grouped: dict[tuple[str, ...], list[Path]] = {}
    for job in jobs:
        grouped.setdefault(hyperparameters(job), []).append(job)
    return list(grouped.values())


def _encode(loaded, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean codes ``[N, D]`` and the KL per latent ``[D]`` of ``images``."""
    batches = range(0, len(images), ENCODE_BATCH)
    parts = [loaded.encode(images[s : s + ENCODE_BATCH]) for s in batches]
    mu = torch.cat([p[0] for p in parts]).double().numpy()
    logvar = None if parts[0][1] is None else torch.cat([p[1] for p in parts]).double().numpy()
    return mu, kl_per_latent(mu, logvar)


def _done_before(
    group: list[Path], shas: dict[str, str], settings: dict[str, Any], name: str
) -> bool:
    for job in group:
        path = job / RESULTS / f"{name}.json"
        record = json.loads(path.read_text()) if path.is_file() else {}
        same = record.get("group_sha256") == shas and record.get("settings") == settings
        if record.get("status") != "completed" or not same:
            return False
    return True


def evaluate_group(
    group: list[Path],
    evaluation: UDREvaluation,
    force: bool = False,
    device: str = "auto",
    allow_unsafe_checkpoints: bool = False,
) -> str:
    """Score one group of two or more jobs; returns ``completed`` or ``skipped``."""
    settings, name = evaluation.settings(), record_name(evaluation.method)
    shas = {job.name: file_sha256(job / LAST) for job in group}
    if not force and _done_before(group, shas, settings, name):
        log.info("%s: UDR of these checkpoints is in evaluation/%s.json: skipped (force=true "
                 "runs it again)", ", ".join(shas), name)  # fmt: skip
        return "skipped"
    start = time.time()
    codes, kls, steps = [], [], []
    images = None
    for job in group:
        loaded = load_run(job, None, device, allow_unsafe_checkpoints)
        if images is None:  # the first job's test split, the same inputs for every model
            loaded.datamodule.setup("test")
            test = loaded.datamodule.split_images("test")
            rng = np.random.default_rng(evaluation.seed)
            rows = np.sort(rng.permutation(len(test))[: evaluation.num_inputs])
            images = test[torch.from_numpy(rows)]
            log.info("UDR of %d models (%s, ...) on %d test images", len(group), job.name,
                     len(images))  # fmt: skip
        mu, kl = _encode(loaded, images)
        codes.append(mu)
        kls.append(kl)
        steps.append(loaded.step)
    result = udr(codes, kls, evaluation.method, evaluation.kl_threshold, evaluation.lasso_alpha)
    key = metric_key(evaluation.method)
    seconds = round(time.time() - start, 3)
    names = [job.name for job in group]
    for b, job in enumerate(group):
        others = {names[a]: float(result.pairwise[a, b]) for a in range(len(group)) if a != b}
        record = {
            "status": "completed",
            "evaluation": NAME,
            "checkpoint": str(job / LAST),
            "checkpoint_sha256": shas[job.name],
            "step": steps[b],
            "settings": settings,
            "group_sha256": shas,
            "metrics": {
                key: float(result.scores[b]),
                f"{key}_active_dims": float(result.active[b].sum()),
                f"{key}_models": float(len(group)),
            },
            "pairwise": others,  # UDR_ab of each other model a of the group with this one
            "inputs": len(images),
            "elapsed_s": seconds,
        }
        write_json_atomic(job / RESULTS / f"{name}.json", record)
        merge_into_metrics(job, name, record)
        others = len(group) - 1
        log.info("%s: udr %.3f (against %d model%s, %d active latents)", job.name,
                 result.scores[b], others, "" if others == 1 else "s",
                 result.active[b].sum())  # fmt: skip
    return "completed"


def evaluate_sweep_udr(sweep_dir: str | Path, evaluation: UDREvaluation, **options) -> int:
    """UDR for every group of a sweep's completed jobs; returns the number of jobs that failed."""
    done, others = sweep_jobs(sweep_dir)
    scored: list[list[Path]] = []  # the groups scored (or found done)
    alone, failed = [], []
    for group in groups(done):
        if len(group) < 2:
            alone += group
            continue
        try:
            evaluate_group(group, evaluation, **options)
            scored.append(group)
        except Exception as error:
            log.debug("%s", traceback.format_exc())
            for job in group:
                record_failure(job, record_name(evaluation.method), error)
                failed.append((job, f"{type(error).__name__}: {error}"))
    jobs = sum(len(group) for group in scored)
    print(f"sweep {sweep_dir}: evaluation={NAME} of {jobs} of {len(done)} completed jobs "
          f"in {len(scored)} groups of the same hyperparameters")  # fmt: skip
    for job in alone:
        print(f"  no UDR for {job.name}: no other seed of its hyperparameters completed")
    for job, error in failed:
        print(f"  FAILED {job.name}: {error}")
    for job, status in others:
        print(f"  not evaluated {job.name}: training {status}")
    print(f"report: {command('report')} {sweep_dir}")
    return len(failed)
