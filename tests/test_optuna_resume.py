"""Resumable Optuna searches (sweep=optuna, src/hydra_plugins/vaelab_optuna): the study kept in
the sweep folder is continued by the same command run again, an interrupted trial is re-run in
its own job folder (and resumed from its checkpoint), and sweepers sharing one storage run
n_trials together. The counting itself is tested first, without training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, TINY
from .killer import KillAfterCheckpoint

optuna = pytest.importorskip("optuna", reason="the sweep extra (hydra-optuna-sweeper) is missing")

import yaml  # noqa: E402 - after the skip, as the imports below need optuna
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.core.utils import JobReturn, JobStatus  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from optuna.distributions import UniformDistribution  # noqa: E402
from optuna.trial import TrialState, create_trial  # noqa: E402

from hydra_plugins.vaelab_optuna._resumable import (  # noqa: E402
    JOB,
    OWNER,
    ResumableOptunaSweeperImpl,
    is_interrupted,
    owner_id,
    tally,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
STUDY = "vaelab"  # conf/sweep/optuna.yaml
X = UniformDistribution(0.0, 1.0)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def trial(state: TrialState, owner: str | None = None, started_s_ago: float = 0, **attrs: Any):
    user_attrs = {OWNER: owner} if owner else {}
    made = create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                        params={"x": 0.5}, distributions={"x": X},
                        user_attrs={**user_attrs, **attrs})  # fmt: skip
    made.datetime_start = datetime.now() - timedelta(seconds=started_s_ago)
    return made


def test_done_in_progress_and_interrupted_trials_are_told_apart():
    dead = owner_id().replace(f":{os.getpid()}:", f":{dead_pid()}:")
    trials = [
        trial(TrialState.COMPLETE),
        trial(TrialState.PRUNED),
        trial(TrialState.FAIL),  # neither: replaced by a new trial
        trial(TrialState.RUNNING, owner_id()),  # this live process
        trial(TrialState.RUNNING, "another-host:1:1"),  # only that host can tell: in progress
        trial(TrialState.RUNNING, None, started_s_ago=5),  # its owner is being set
        trial(TrialState.RUNNING, dead),  # interrupted
        trial(TrialState.RUNNING, owner_id().rpartition(":")[0] + ":1"),  # pid reused: gone
        trial(TrialState.RUNNING, None, started_s_ago=120),  # killed as it was asked
    ]
    assert [is_interrupted(t) for t in trials] == [False] * 6 + [True] * 3
    assert tally(trials) == (2, 3)


class FakeLauncher:
    """Launches nothing: each job returns its ``x``, after ``seconds``; records job numbers."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds, self.jobs = seconds, []

    def launch(self, overrides, initial_job_idx: int) -> list[JobReturn]:
        time.sleep(self.seconds)
        self.jobs += range(initial_job_idx, initial_job_idx + len(overrides))
        values = [float(dict(o.split("=") for o in job)["x"]) for job in overrides]
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=v) for v in values]


def sweeper(storage: str, sweep_dir: Path, n_trials: int = 4, n_jobs: int = 1, seconds=0.0):
    impl = ResumableOptunaSweeperImpl(
        sampler=optuna.samplers.TPESampler(seed=0), direction="maximize", storage=storage,
        study_name=STUDY, n_trials=n_trials, n_jobs=n_jobs, max_failure_rate=0.0,
        search_space=None, custom_search_space=None,
        params=OmegaConf.create({"x": "interval(0.0, 1.0)"}),
    )  # fmt: skip
    impl.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)},
                                              "sweeper": {"sampler": {"seed": 0}}}})  # fmt: skip
    impl.launcher = FakeLauncher(seconds)
    return impl


def test_a_run_again_reruns_the_interrupted_trial_as_its_job_and_only_the_missing_ones(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    for number in range(2):
        study.add_trial(trial(TrialState.COMPLETE, **{JOB: number}))
    dead = owner_id().replace(f":{os.getpid()}:", f":{dead_pid()}:")
    study.add_trial(trial(TrialState.RUNNING, dead, **{JOB: 2}))

    first = sweeper(storage, tmp_path)
    first.sweep([])
    assert first.launcher.jobs == [2, 4]  # the interrupted job in its folder, then trial 4's
    study = optuna.load_study(study_name=STUDY, storage=storage)  # not the one cached above
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] + [
        TrialState.COMPLETE
    ] * 2
    assert trials[3].params == trials[2].params and trials[3].user_attrs["vaelab.rerun_of"] == 2
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert results["best_value"] == study.best_value

    again = sweeper(storage, tmp_path)
    again.sweep([])
    assert again.launcher.jobs == []
    assert len(optuna.load_study(study_name=STUDY, storage=storage).trials) == 5


def test_two_sweepers_sharing_a_storage_run_n_trials_together_with_distinct_draws(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    sweepers = [sweeper(storage, tmp_path / f"s{i}", n_trials=6, n_jobs=2, seconds=0.2)
                for i in range(2)]  # fmt: skip
    errors: list[BaseException] = []

    def run(impl: ResumableOptunaSweeperImpl) -> None:
        try:
            impl.sweep([])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(s,)) for s in sweepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    study = optuna.load_study(study_name=STUDY, storage=storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 6 and not study.get_trials(states=(TrialState.RUNNING,))
    assert sorted(sweepers[0].launcher.jobs + sweepers[1].launcher.jobs) == sorted(
        t.user_attrs[JOB] for t in complete
    )  # every job number once: no folder shared
    assert len({t.params["x"] for t in complete}) == 6  # same seed, yet no draw repeated


# Through the real CLI: a few training steps per trial.


class KillJob2AtStep3(KillAfterCheckpoint):
    """Kills the sweep right after job 2's step-3 checkpoint: trials 0 and 1 are complete,
    trial 2 is running. Given as Hydra overrides, so the job's own overrides stay the same."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        if HydraConfig.get().job.num == 2:
            super().on_job_start(config, **kwargs)


KILL_JOB_2 = [f"+hydra.callbacks.killer._target_={__name__}.KillJob2AtStep3",
              "+hydra.callbacks.killer.step=3"]  # fmt: skip


def optuna_sweep(sweep_dir: Path, *overrides: str, log: Path | None = None):
    """``python src/train.py -m sweep=optuna`` of 4 trials with TINY jobs into ``sweep_dir``;
    started in the background, its output to ``log``, when ``log`` is given."""
    cmd = [sys.executable, str(ROOT / "src" / "train.py"), "-m", f"hydra.sweep.dir={sweep_dir}",
           *TINY, "~callbacks.progress", "sweep=optuna", "hydra.sweeper.n_trials=4",
           "hydra.sweeper.n_jobs=1", *overrides]  # fmt: skip
    env = {**os.environ, "VAELAB_DATA_DIR": str(sweep_dir.parent / "data"), "PYTHONPATH": str(ROOT)}
    if log is None:
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def load(db: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{db}")


def jobs(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")}


@pytest.mark.programs
def test_a_search_killed_after_two_trials_ends_with_four_when_run_again(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    killed = optuna_sweep(sweep_dir, *KILL_JOB_2)
    assert killed.returncode == -9, killed.stderr[-3000:]
    states = [t.state for t in load(sweep_dir / "optuna.db").trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING]

    result = optuna_sweep(sweep_dir)  # the same command again
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "2 of 4 trials completed earlier, 1 interrupted, running 2" in out
    study = load(sweep_dir / "optuna.db")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4
    assert [t.number for t in study.get_trials(states=(TrialState.FAIL,))] == [2]
    rerun = study.trials[3]
    assert rerun.params == study.trials[2].params and rerun.user_attrs[JOB] == 2
    done = jobs(sweep_dir)
    assert sorted(int(name.split("_")[0]) for name in done) == [0, 1, 2, 4]
    assert all(m["status"] == "completed" for m in done.values())
    job2 = next(m for name, m in done.items() if name.startswith("2_"))
    assert job2["start_step"] == 3 and job2["resumed_from"].endswith("last.ckpt")  # resumed
    assert f"Best value: {study.best_value}" in out
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == study.best_value and results["best_params"] == study.best_params

    again = optuna_sweep(sweep_dir)  # nothing left to run
    assert again.returncode == 0, again.stderr[-3000:]
    out = again.stdout + again.stderr
    assert "4 of 4 trials completed earlier, 0 interrupted, running 0" in out
    assert len(load(sweep_dir / "optuna.db").trials) == 5


@pytest.mark.programs
def test_two_sweeps_sharing_one_storage_run_four_trials_not_eight(tmp_path: Path):
    db = tmp_path / "shared.db"
    shared = f"hydra.sweeper.storage=sqlite:///{db}"
    logs = [tmp_path / f"sweep{i}.log" for i in range(2)]
    processes = [optuna_sweep(tmp_path / f"sweep{i}", shared, log=logs[i]) for i in range(2)]
    codes = [p.wait(timeout=600) for p in processes]
    assert codes == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)
    study = load(db)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4 and not study.get_trials(states=(TrialState.RUNNING,))
    done = {**jobs(tmp_path / "sweep0"), **jobs(tmp_path / "sweep1")}
    assert sorted(int(name.split("_")[0]) for name in done) == sorted(t.number for t in complete)
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 4  # no draw repeated
