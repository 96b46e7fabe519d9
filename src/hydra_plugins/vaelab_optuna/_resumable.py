"""A resumable Optuna search: hydra-optuna-sweeper's parsing, with a loop that counts the study.

Before each batch, COMPLETE and PRUNED trials are done and RUNNING ones not interrupted are in
progress; only ``n_trials - done - in_progress`` trials are asked (``n_jobs`` at a time), so
sweepers sharing one storage run ``n_trials`` together and a command run again runs only the
missing ones. An interrupted trial is told FAIL and its parameters are queued again with its
job number: vaelab resumes that job's folder from ``last.ckpt``. Jobs are numbered by trial
number, unique in the study, so no new trial gets an earlier job's folder. With
``sampler.seed``, a trial's draws depend on the seed and its number, not on the run.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import warnings
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from hydra.core.utils import JobReturn
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, Trial, TrialState

log = logging.getLogger(__name__)
OWNER, JOB = "vaelab.owner", "vaelab.job"  # user attributes of each trial vaelab asks
UNOWNED_GRACE = timedelta(minutes=1)  # a trial is given its owner right after it is asked


def owner_id(pid: int | None = None) -> str:
    """``host:pid:start`` of a process (this one by default); its start time (from /proc,
    where there is one) tells it from a later process given the same pid."""
    pid, start = os.getpid() if pid is None else pid, ""
    with suppress(OSError, IndexError):
        start = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    return f"{socket.gethostname()}:{pid}:{start}"


def is_interrupted(trial: FrozenTrial) -> bool:
    """A RUNNING trial whose sweeper is gone: its owner a dead process on this host (another
    host's counts as alive), or no owner a minute after it started (killed as it was asked)."""
    if trial.state != TrialState.RUNNING:
        return False
    if OWNER not in trial.user_attrs:
        return datetime.now() - (trial.datetime_start or datetime.now()) > UNOWNED_GRACE
    owner = trial.user_attrs[OWNER]
    host, pid = owner.split(":")[:2]
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # another user's process
    return owner_id(int(pid)) != owner


def tally(trials: list[FrozenTrial]) -> tuple[int, int]:
    """(done, in progress): COMPLETE and PRUNED trials; RUNNING ones not interrupted."""
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    running = sum(t.state == TrialState.RUNNING and not is_interrupted(t) for t in trials)
    return done, running


def reseed(sampler: Any, seed: int) -> None:
    """Seed every numpy random state a sampler (and the samplers inside it) draws from."""
    for value in vars(sampler).values():
        if isinstance(value, np.random.RandomState):
            value.seed(seed)
        elif isinstance(value, optuna.samplers.BaseSampler):
            reseed(value, seed)


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    """``OptunaSweeperImpl`` whose ``sweep`` continues the study in ``storage`` (above)."""

    def _open_study(self, retries: int = 4) -> optuna.Study:
        """The study, created or loaded (retried: two sweepers may create one database at
        once); SQLite gets its folder and a 30 s lock timeout for concurrent writers."""
        try:
            storage = self.storage
            if isinstance(storage, str) and storage.startswith("sqlite:///"):
                Path(storage[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
                storage = optuna.storages.RDBStorage(
                    storage, engine_kwargs={"connect_args": {"timeout": 30}}
                )
            return optuna.create_study(study_name=self.study_name, storage=storage,
                                       sampler=self.sampler, load_if_exists=True,
                                       directions=self._get_directions())  # fmt: skip
        except Exception:
            if retries == 0:
                raise
            time.sleep(5 - retries)
            return self._open_study(retries - 1)

    def _requeue(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Tell an interrupted trial FAIL and queue its parameters again with its job number;
        False when another sweeper did it first."""
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except RuntimeError:  # already finished
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.add_trial(optuna.trial.create_trial(
                state=TrialState.WAITING, system_attrs={"fixed_params": trial.params},
                user_attrs={JOB: trial.user_attrs.get(JOB, trial.number),
                            "vaelab.rerun_of": trial.number}))  # fmt: skip
        return True

    def _ask(self, study: optuna.Study) -> Trial | None:
        """A trial owned by this process; None (the trial told FAIL) when the trials before it
        in the study, done or in progress, already make ``n_trials``: another sweeper's."""
        trial = study.ask()
        trial.set_user_attr(OWNER, owner_id())
        trial.set_user_attr(JOB, trial.user_attrs.get(JOB, trial.number))
        earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        if sum(tally(earlier)) < self.n_trials:
            return trial
        trial.set_user_attr("vaelab.surplus", True)
        study.tell(trial, state=TrialState.FAIL)
        return None

    def _tell(self, study: optuna.Study, trial: Trial, ret: JobReturn) -> bool:
        """Tell the job's value; a job that raised or returned NaN is told FAIL (True)."""
        try:
            try:  # ret.return_value raises the job's exception; tell refuses a NaN
                study.tell(trial, float(ret.return_value))
            except RuntimeError as error:  # GridSampler's end of the grid: the trial is told
                if "Study.stop" not in str(error):
                    raise
            return False
        except Exception as error:
            log.warning(f"Failed experiment: {error}")
            study.tell(trial, state=TrialState.FAIL)
            return True

    def _launch(self, jobs: list[int], overrides: list[Sequence[str]]) -> list[JobReturn]:
        """Launch the jobs numbered ``jobs``: at once when the numbers follow each other."""
        if jobs == list(range(jobs[0], jobs[0] + len(jobs))):
            return list(self.launcher.launch(overrides, initial_job_idx=jobs[0]))
        return [r for j, o in zip(jobs, overrides, strict=True)
                for r in self.launcher.launch([o], initial_job_idx=j)]  # fmt: skip

    def sweep(self, arguments: list[str]) -> None:
        """Run the trials the study still lacks (module docstring); log and save the best."""
        self._process_searchspace_config()
        params = [*self._parse_sweeper_params_config(), *arguments]
        space, fixed = create_params_from_overrides(params)
        space = {**(self.search_space_distributions or {}), **space}
        space = {name: d for name, d in space.items() if name not in fixed}
        if isinstance(self.sampler, functools.partial):  # GridSampler, given its grid here
            grid = {name: self._to_grid_sampler_choices(d) for name, d in space.items()}
            self.sampler = self.sampler(grid)
            self.n_trials = min(self.n_trials, int(np.prod([len(v) for v in grid.values()])))
        seed = OmegaConf.select(self.config, "hydra.sweeper.sampler.seed")
        study = self._open_study()
        requeued = sum(self._requeue(study, t) for t in study.get_trials() if is_interrupted(t))
        done, running = tally(study.get_trials(deepcopy=False))
        budget = max(0, self.n_trials - done - running)  # at most this many here: no retry loop
        elsewhere = f", {running} in progress in other processes" if running else ""
        log.info(f"optuna study '{study.study_name}' in {self.storage or 'memory (not kept)'}: "
                 f"{done} of {self.n_trials} trials completed earlier, {requeued} interrupted"
                 f"{elsewhere}, running {budget}")  # fmt: skip
        while budget > 0:
            done, running = tally(study.get_trials(deepcopy=False))
            batch = min(self.n_jobs, budget, self.n_trials - done - running)
            trials = [t for t in (self._ask(study) for _ in range(batch)) if t is not None]
            if not trials:
                break
            budget -= len(trials)
            overrides = []
            for trial in trials:
                if seed is not None:  # each trial's draws depend on the seed and its number
                    state = np.random.SeedSequence([seed % 2**32, trial.number]).generate_state(1)
                    reseed(study.sampler, int(state[0]))
                overrides += self._configure_trials([trial], space, fixed)
            returns = self._launch([int(t.user_attrs[JOB]) for t in trials], overrides)
            failed = sum(self._tell(study, t, r) for t, r in zip(trials, returns, strict=True))
            if failed / len(returns) > self.max_failure_rate:  # as hydra-optuna-sweeper does
                for ret in returns:
                    ret.return_value  # noqa: B018  raises a job's own exception
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return log.warning(f"optuna study '{study.study_name}': no completed trial yet")
        best = study.best_trial
        log.info(f"Best parameters: {best.params}")
        log.info(f"Best value: {best.value} (trial {best.number})")
        results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
        Path(self.config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)  # none launched
        OmegaConf.save(results, Path(self.config.hydra.sweep.dir) / "optimization_results.yaml")
