"""vaelab on a real SLURM: a single-node cluster started for these tests
(scripts/slurm_cluster.sh: munged, slurmctld, slurmd), a sweep through hydra/launcher=slurm,
DDP across two SLURM tasks, and a job that the scheduler's warning signal requeues."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY, read_metrics, run_cli, run_program
from tests.test_devices import RTOL, SAME_DATA, train_log
from tests.test_reliability import compared

CLUSTER = ROOT / "scripts" / "slurm_cluster.sh"
NO_CLUSTER = (
    shutil.which("slurmctld") is None or shutil.which("munged") is None or os.geteuid() != 0
)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> dict[str, str]:
    """The environment of a running single-node cluster; stopped afterwards. Tests that take
    it are skipped without Debian's slurm-wlm and munge and root."""
    if NO_CLUSTER:
        pytest.skip("needs Debian's slurm-wlm and munge and root (.ci/run installs them)")
    folder = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", CLUSTER, "start", folder], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}
    yield env
    subprocess.run(["bash", CLUSTER, "stop", folder], check=True)
    left = subprocess.run(["pgrep", "-a", "-f", str(folder)], capture_output=True, text=True)
    assert left.stdout == "", f"still running after stop:\n{left.stdout}"


def sbatch(env: dict[str, str], folder: Path, command: str, *options: str) -> str:
    """Submit ``command`` as a batch job (its output in folder/job-<id>.out); its id."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "job.sh"
    script.write_text(f"#!/bin/bash\ncd {ROOT}\n{command}\n")
    out = subprocess.run(
        ["sbatch", "--parsable", f"--output={folder}/job-%j.out", *options, str(script)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip().split(";")[0]


def wait_gone(env: dict[str, str], job: str, timeout: float = 600) -> None:
    """Until the job has left the queue; a requeued job is released at once (SLURM holds
    requeued jobs until a begin time a while ahead)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], env=env,
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        if not state:
            return
        if "BeginTime" in state:
            subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], env=env)
        time.sleep(0.5)
    raise AssertionError(f"SLURM job {job} still queued after {timeout} s")


def python(*args: str) -> str:
    return " ".join([sys.executable, str(ROOT / "src" / "train.py"), *args])


SLURM_JOBS = [
    "hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10",
]  # fmt: skip


def slurm_sweep(slurm: dict[str, str], sweep: Path, *overrides: str) -> None:
    """``python src/train.py -m <overrides>`` of TINY jobs with hydra/launcher=slurm; exit 0."""
    command = [sys.executable, str(ROOT / "src" / "train.py"), "-m", *SLURM_JOBS,
               f"hydra.sweep.dir={sweep}", *TINY, *overrides]  # fmt: skip
    env = {**slurm, "VAELAB_DATA_DIR": str(sweep.parent / "data")}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def test_a_sweep_through_the_slurm_launcher_completes_and_logs_progress(slurm, tmp_path):
    sweep = tmp_path / "sweep"
    slurm_sweep(slurm, sweep, "beta=1,4", "callbacks.progress.every_s=0")
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert [p.name for p in jobs] == ["0_beta_vae_beta=1_seed=0", "1_beta_vae_beta=4_seed=0"]
    assert all(read_metrics(p)["status"] == "completed" for p in jobs)
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.*"))
    assert "step 3/6" in logs and "step 6/6" in logs  # progress lines in the job logs
    report = subprocess.run([sys.executable, str(ROOT / "src" / "report.py"), str(sweep)],
                            cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    assert (sweep / "report.md").is_file()


def test_optuna_trials_launched_in_parallel_on_slurm_share_one_study(slurm, tmp_path):
    optuna = pytest.importorskip("optuna", reason="the sweep extra is missing")

    sweep = tmp_path / "search"
    slurm_sweep(slurm, sweep, "sweep=optuna", "hydra.sweeper.n_trials=2",
                "hydra.sweeper.n_jobs=2", "~callbacks.progress")  # fmt: skip
    study = optuna.load_study(study_name="vaelab", storage=f"sqlite:///{sweep / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE"]
    assert len(list((sweep / ".submitit").glob("*_*"))) >= 1  # submitted as a SLURM array
    assert all(read_metrics(p)["status"] == "completed" for p in sweep.glob("[01]_*"))


def test_ddp_over_two_slurm_tasks_logs_the_losses_of_one_process(slurm, tmp_path):
    ddp = tmp_path / "ddp"
    job = sbatch(
        slurm, tmp_path / "job",
        "srun " + python(f"hydra.run.dir={ddp}", *TINY, *SAME_DATA, "trainer=ddp_cpu"),
        "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1",
    )  # fmt: skip
    one = tmp_path / "one"
    result = run_cli(one, *TINY, *SAME_DATA, process=False)
    assert result.returncode == 0, result.stderr[-3000:]
    wait_gone(slurm, job)
    output = (tmp_path / "job" / f"job-{job}.out").read_text()
    assert read_metrics(ddp)["status"] == "completed", output[-3000:]
    assert "Starting with 2 processes" in output, output[-3000:]
    logs = [train_log(ddp), train_log(one)]
    assert len(logs[0]) == len(logs[1]) == 6
    for a, b in zip(*logs, strict=True):
        assert a == pytest.approx(b, rel=RTOL, abs=1e-5)


PREEMPTED = [
    *[o for o in TINY if not o.startswith(("trainer.max_steps", "callbacks.model_checkpoint"))],
    "trainer.max_steps=120",
    "trainer.val_check_interval=60",
    "callbacks.model_checkpoint.every_n_train_steps=50",
    "trainer.deterministic=true",
    "callbacks.progress.every_s=0",
]


def test_the_warning_signal_requeues_a_job_that_ends_as_an_uninterrupted_run(slurm, tmp_path):
    run = tmp_path / "run"
    command = "exec " + python(f"hydra.run.dir={run}", *PREEMPTED)
    job = sbatch(slurm, tmp_path / "job", command, "--open-mode=append")  # kept over the requeue
    output = tmp_path / "job" / f"job-{job}.out"
    deadline = time.monotonic() + 300
    while "step 5/120" not in (output.read_text() if output.is_file() else ""):
        assert time.monotonic() < deadline, output.read_text()[-3000:]
        time.sleep(0.2)
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=slurm, check=True)
    whole = tmp_path / "whole"
    result = run_cli(whole, *PREEMPTED, process=False)
    assert result.returncode == 0, result.stderr[-3000:]
    wait_gone(slurm, job)
    log = output.read_text()
    assert "requeueing SLURM job" in log and "DUE TO JOB REQUEUE" in log, log[-3000:]
    metrics = read_metrics(run)
    assert metrics["status"] == "completed", log[-3000:]
    assert metrics["resumed_from"] == str(run / "checkpoints" / "last.ckpt")
    assert 5 <= metrics["start_step"] < 120 and metrics["step"] == 120
    assert compared(metrics) == compared(read_metrics(whole))


def test_sbatch_that_cannot_reach_a_cluster_is_one_paragraph_not_a_traceback(tmp_path, monkeypatch):
    """The submitit launcher calling an sbatch that reaches no cluster (this one says what
    Debian's sbatch says without a slurm.conf) was a 68-line traceback ending in
    submitit's FailedJobError."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                        reason="hydra-submitit-launcher is not installed")  # fmt: skip
    fatal = "sbatch: fatal: Could not establish a configuration source"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\necho '{fatal}' >&2\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    sweep = tmp_path / "sweep"
    args = ["-m", f"hydra.sweep.dir={sweep}", "sweep=beta", "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=720",
            "hydra.launcher.gpus_per_node=1", "debug=fast", "evaluation=none"]  # fmt: skip
    result = run_program("train.py", args, {"VAELAB_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "FailedJobError" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: SLURM could not take the sweep's jobs (hydra/launcher=slurm): sbatch said "
        f'"{fatal}". Check that SLURM can be reached from this machine: `sbatch --version` '
        f"and `sinfo` must work here (sinfo lists the partitions; hydra.launcher.partition "
        f"must name one of them), or run the sweep without SLURM (leave hydra/launcher=slurm "
        f"out)."
    ]
    assert not list(sweep.glob("*/metrics.json"))  # no job ran
