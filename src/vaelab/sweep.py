"""What a sweep does when a job fails, and the summary printed when the sweep ends.

A job that fails (an exception, a NaN) writes ``metrics.json`` with status ``failed`` and
returns NaN instead of raising, so the launcher runs the other jobs. ``SweepSummary``, a Hydra
callback, then lists every job's status and names the failed ones in ``failed_jobs``; the
entry point exits non-zero when that list is not empty (Hydra swallows callback errors). A job
refused because its folder holds another run's record (kept as it is) is noted in
``<sweep>/.refused/<job>.txt`` and said as refused, not failed (``failure_advice``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from joblib import cpu_count, effective_n_jobs
from omegaconf import DictConfig, OmegaConf

from vaelab.cli import command
from vaelab.report import collect_jobs, job_record
from vaelab.run_folder import METRICS, running_elsewhere

failed_jobs: list[str] = []  # filled at the end of a multirun, read by src/train.py
REFUSED = ".refused"  # <sweep>/.refused/<job>.txt: jobs refused because their folder holds a result


def note_refused(sweep_dir: Path, job: str, message: str) -> None:
    """Record a job that failed without writing its own folder (it holds another result)."""
    folder = sweep_dir / REFUSED
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{job}.txt").write_text(message)


def refused_jobs(sweep_dir: Path) -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted((sweep_dir / REFUSED).glob("*.txt"))}


def _elsewhere(sweep_dir: Path, row: dict[str, Any]) -> bool:
    try:
        record = json.loads((sweep_dir / row["job"] / METRICS).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and running_elsewhere(record)


class SweepSummary(Callback):
    """Prints one line per job at the end of a multirun; raises when any job failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        for note in (Path(config.hydra.sweep.dir) / REFUSED).glob("*.txt"):
            note.unlink()  # from an earlier launch of this sweep

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        refused = refused_jobs(sweep_dir)
        rows = [r for r in collect_jobs(sweep_dir) if r["job"] not in refused]
        rows += [{"job": job, "status": "refused", "error": why} for job, why in refused.items()]
        elsewhere = [r for r in rows if r["status"] == "running" and _elsewhere(sweep_dir, r)]
        for row in elsewhere:  # another launch into this folder trains it now
            rows.remove(row)
        failed = [r for r in rows if r["status"] != "completed"]
        print(f"sweep {sweep_dir}: {len(rows) - len(failed)} of {len(rows)} jobs completed")
        for row in elsewhere:
            print(f"  still running in another process: {row['job']}")
        for row in failed:  # a refused job's folder is another run's: it did not fail
            if row["status"] == "refused":
                print(f"  REFUSED {row['job']}: {row['error']}".rstrip())
            else:
                print(f"  FAILED {row['job']}: {row['status']} {row['error']}".rstrip())
        failed_jobs[:] = [r["job"] for r in failed]
        if failed:
            print(f"error: {failure_advice(failed, len(rows), sweep_dir)}", file=sys.stderr)
        print(f"report: {command('report')} {sweep_dir}")


def failure_advice(failed: list[dict[str, Any]], jobs: int, sweep_dir: Path) -> str:
    """The paragraph that ends a sweep with ``failed`` of its ``jobs`` not completed: where
    each says why (its metrics.json; for one refused because its folder holds another run,
    kept as it is, the note in ``<sweep>/.refused/``) and which the same command retries."""
    refused = [r["job"] for r in failed if r["status"] == "refused"]  # noted, folder kept
    own = [r for r in failed if r["status"] != "refused"]
    config = [r["job"] for r in own if str(r.get("error")).startswith("ConfigError")]
    retried = [r["job"] for r in own if r["job"] not in config]
    parts = []
    if own:
        names = ", ".join(r["job"] for r in own)
        parts.append(f"{len(own)} of {jobs} jobs failed ({names}); their metrics.json say why.")
    if refused:
        parts.append(
            f"{len(refused)} of {jobs} jobs refused ({', '.join(refused)}): their folders hold "
            f"records this sweep does not replace (another run's, or unreadable), kept as they "
            f"are; the lines above say why, as do {sweep_dir / REFUSED}/<job>.txt."
        )
    if config:
        parts.append(
            f"Refused before training ({', '.join(config)}): the same command refuses them "
            f"again until what their error says is fixed."
        )
    if retried:
        others = "the others" if config or refused else "them"
        parts.append(
            f"Run the same command again with hydra.sweep.dir={sweep_dir} to retry {others}: "
            f"completed jobs are skipped."
        )
    return " ".join(parts)


def launcher_jobs() -> int:
    """How many jobs this run's Hydra launcher runs at once on this machine: the joblib
    launcher's ``n_jobs`` (-1: one per core) or every job for submitit's local launcher, at
    most the jobs of the batch launched (``batch_jobs``: a sweep of 2 jobs runs 2 at once on
    16 slots); 1 for a single run and the other launchers (one job after another, a stack in
    one process, a SLURM job on its own CPUs)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return 1
    hydra = HydraConfig.get()
    target = str(hydra.launcher.get("_target_", "")).lower()
    if "joblib" in target:
        slots = effective_n_jobs(hydra.launcher.get("n_jobs") or 1)
    elif "submitit" in target and "local" in target:
        slots = cpu_count()
    else:
        return 1
    batch = batch_jobs(hydra)
    return slots if batch is None else max(1, min(slots, batch))


def batch_jobs(hydra: DictConfig) -> int | None:
    """The most jobs the sweeper hands the launcher at once: an Optuna sweeper's ``n_jobs``;
    for Hydra's basic sweeper, the jobs of its sweep (or ``max_batch_size``), counted from the
    ``multirun.yaml`` it writes into the sweep folder before launching (the command line's
    sweeps are only there), less the jobs whose folders in it hold a completed run: on a
    rerun those are skipped at once, and late in a sweep they no longer need the cores. None
    for other sweepers or a file that cannot be read."""
    sweeper = hydra.sweeper
    if "optuna" in str(sweeper.get("_target_", "")).lower():
        return sweeper.get("n_jobs") or None
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        started_in = OmegaConf.select(hydra, "runtime.cwd", default=None) or "."
        folder = Path(started_in, hydra.sweep.dir)  # a relative one: to where Hydra started
        saved = OmegaConf.to_container(OmegaConf.load(folder / "multirun.yaml"))  # unresolved
        launched = saved.get("hydra") or {}
        sweeper = launched.get("sweeper") or {}
        params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        task = [*params, *(launched.get("overrides") or {}).get("task", [])]
        overrides = OverridesParser.create().parse_overrides(task)
        batches = BasicSweeper.split_arguments(overrides, sweeper.get("max_batch_size"))
    except (OSError, ValueError, AttributeError, HydraException, OmegaConfBaseException):
        return None
    if not batches:
        return None
    left = sum(map(len, batches)) - completed_jobs(folder)
    return max(1, min(max(map(len, batches)), left))


def completed_jobs(sweep_dir: Path) -> int:
    """The job folders directly in ``sweep_dir`` whose ``metrics.json`` says completed (one
    that cannot be read counts as not)."""
    return sum(job_record(p)[1] == "completed" for p in sweep_dir.glob(f"*/{METRICS}"))
