"""Sweeps through the real CLI: launchers, a failing job, re-runs that skip, the report."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from joblib import cpu_count

from .conftest import ROOT, TINY, run_program
from .killer import kill_at


def sweep(sweep_dir: Path, *overrides: str, process: bool = False) -> subprocess.CompletedProcess:
    """``python src/train.py -m`` with TINY jobs into ``sweep_dir`` (in this process unless
    ``process``: launchers that start processes, kills; see conftest.run_program)."""
    args = ["-m", f"hydra.sweep.dir={sweep_dir}", *TINY, "~callbacks.progress", *overrides]
    env = {"VAELAB_DATA_DIR": str(sweep_dir.parent / "data")}
    if not process:
        return run_program("train.py", args, env)
    cmd = [sys.executable, str(ROOT / "src" / "train.py"), *args]
    return subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )


def losses(metrics_csv: Path) -> list[tuple[str, str]]:
    """(step, train/loss) of each row of a run's csv/metrics.csv that logged the loss."""
    rows = csv.DictReader(metrics_csv.open())
    return [(r["step"], r["train/loss"]) for r in rows if r.get("train/loss")]


def jobs(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")}


@pytest.mark.parametrize(
    ("launcher", "grid"),
    [("basic", ["beta=1,2", "seed=0,1"]), ("joblib", ["beta=1,2", "seed=0"]),
     ("submitit_local", ["beta=2", "seed=0,1"])],
)  # fmt: skip
def test_a_tiny_sweep_runs_with_each_launcher_and_reports(tmp_path: Path, launcher, grid):
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    if launcher == "submitit_local":
        extra = ["hydra.launcher.timeout_min=10"]
    own_processes = launcher != "basic"  # joblib and submitit start processes of their own
    result = sweep(tmp_path / "sweep", f"hydra/launcher={launcher}", *grid, *extra,
                   process=own_processes)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    done = jobs(tmp_path / "sweep")
    n_beta, n_seed = (len(g.split("=")[1].split(",")) for g in grid)
    assert len(done) == n_beta * n_seed
    assert all(m["status"] == "completed" for m in done.values())
    said = [line for line in (result.stdout + result.stderr).splitlines()
            if "[vaelab.training]" in line]  # fmt: skip
    names = sorted(line.split("][")[1] for line in said)
    if launcher == "joblib":  # two jobs at once on one terminal: each line names its job
        assert names == ["job 0", "job 1"], said
    elif launcher == "basic":  # one job after another (submitit's jobs print to files of theirs)
        assert names == ["vaelab.training"] * len(done), said
    logged = "".join(log.read_text() for log in (tmp_path / "sweep").glob("*/*.log"))
    assert "[vaelab.training]" in logged and "][job " not in logged  # a job's file is its own

    report = subprocess.run(
        [sys.executable, str(ROOT / "src" / "report.py"), str(tmp_path / "sweep")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert report.returncode == 0, report.stderr
    assert "| model | beta | jobs |" in report.stdout
    with open(tmp_path / "sweep" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((float(r["beta"]), int(r["seed"])) for r in rows) == sorted(
        (float(b), int(s)) for b in grid[0][5:].split(",") for s in grid[1][5:].split(",")
    )
    assert (tmp_path / "sweep" / "metrics_vs_beta.png").stat().st_size > 1000


def test_a_sweep_of_fewer_jobs_than_slots_leaves_each_job_its_share_of_the_cores(tmp_path: Path):
    """The joblib launcher with a slot per core (n_jobs=-1) and a sweep of one job: the job's
    evaluation counts itself alone on the machine (it counted a job per slot, so on 16 cores
    each job of a small sweep fitted its classifiers in one process)."""
    small = ["evaluation=fast", "evaluation.iwae_images=8", "evaluation.iwae_k=8",
             "evaluation.quality_images=16", "evaluation.suite.num_train=200",
             "evaluation.suite.num_test=100"]  # fmt: skip
    result = sweep(tmp_path / "sweep", "hydra/launcher=joblib", "hydra.launcher.n_jobs=-1",
                   "seed=0", *small, process=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = (p.parent for p in (tmp_path / "sweep").glob("*/metrics.json"))
    said = [line for log in job.glob("*.log") for line in log.read_text().splitlines()
            if "suite: classifiers fitted" in line]  # fmt: skip
    assert len(said) == 1 and said[0].endswith(
        f"in this process (evaluation.suite.jobs=auto: {cpu_count()} cores)"
    ), said


def test_a_failed_job_does_not_stop_the_sweep_and_a_rerun_skips_finished_jobs(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    result = sweep(sweep_dir, "beta=1,-1", "seed=0")
    assert result.returncode == 1  # a failed job fails the sweep (README, "Sweeps")
    assert "1 of 2 jobs failed" in result.stderr and "beta=-1" in result.stderr
    assert "the same command refuses them again until what their error says is fixed" in (
        result.stderr
    )  # it advised running the same command again to retry them
    assert "retry" not in result.stderr
    done = jobs(sweep_dir)
    good = next(k for k in done if "_beta=1_" in k)
    bad = next(k for k in done if "beta=-1" in k)
    assert done[good]["status"] == "completed"
    assert done[bad]["status"] == "failed" and "`beta` must be >= 0" in done[bad]["error"]

    finished = sweep_dir / good / "metrics.json"
    before = finished.stat().st_mtime_ns
    result = sweep(sweep_dir, "beta=1,-1", "seed=0")  # the same sweep into the same folder
    assert result.returncode == 1  # the failed job again
    assert finished.stat().st_mtime_ns == before  # skipped, not run again
    assert "already holds a completed run" in result.stdout + result.stderr

    report = subprocess.run([sys.executable, str(ROOT / "src" / "report.py"), str(sweep_dir)],
                            capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert "Jobs not completed (1)" in report.stdout and "failed" in report.stdout


def test_optuna_preset_runs_two_trials(tmp_path: Path):
    result = sweep(tmp_path / "sweep", "sweep=optuna", "hydra.sweeper.n_trials=2", process=True)
    assert result.returncode == 0, result.stderr[-3000:]
    done = jobs(tmp_path / "sweep")
    assert len(done) == 2 and all(m["status"] == "completed" for m in done.values())
    assert (tmp_path / "sweep" / "optimization_results.yaml").is_file()
    printed = result.stdout + result.stderr  # Optuna's line once, in the job's format; no
    assert printed.count("A new study created in RDB with name: vaelab") == 1  # colour codes,
    assert "\x1b[" not in printed and "setup plugin" not in printed  # no alembic chatter


KILL_AT_3 = kill_at(3)


def test_a_job_killed_inside_a_sweep_resumes_on_the_rerun_and_matches_an_uninterrupted_one(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.killer
    exact = ["trainer.deterministic=true", "seed=0", "+logger.csv.flush_logs_every_n_steps=1"]
    whole = tmp_path / "whole"
    assert sweep(whole, "beta=1", *exact, process=True).returncode == 0
    killed = tmp_path / "killed"  # job 0 is killed after its step-3 checkpoint; job 1 never ran
    assert sweep(killed, "beta=1,2", *exact, *KILL_AT_3, process=True).returncode == -9
    assert [m["status"] for m in jobs(killed).values()] == ["running"]
    result = sweep(killed, "beta=1,2", *exact, process=True)  # the same sweep again, same folder
    assert result.returncode == 0, result.stderr[-3000:]
    done = jobs(killed)
    first = next(m for name, m in done.items() if "_beta=1_" in name)
    assert first["status"] == "completed" and first["start_step"] == 3 and first["step"] == 6
    assert first["resumed_from"].endswith("last.ckpt")
    assert next(m for n, m in done.items() if "_beta=2_" in n)["start_step"] == 0
    (reference,) = jobs(whole).values()
    logged = ("train/loss", "train/recon", "train/kl", "val/elbo", "test/elbo", "test/loss")
    assert {k: first["metrics"][k] for k in logged} == {k: reference["metrics"][k] for k in logged}
    # its csv/metrics.csv holds the losses logged before the kill and after it, each once, as
    # the uninterrupted run's (Lightning's logger deleted the earlier ones); the kill came
    # after step 2's checkpoint, before its loss was logged: that row alone is missing
    kept, reference = (losses(next(f.glob("0_*")) / "csv" / "metrics.csv") for f in (killed, whole))
    assert kept == [row for row in reference if row[0] != "2"] and len(kept) == 5


def test_a_job_stopped_by_a_nan_is_listed_as_failed_with_advice_that_fits_it(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.poison
    poison = ["model.objective._target_=tests.poison.PoisonedBetaVAE",
              "+model.objective.poison_calls=[4]"]  # fmt: skip
    result = sweep(tmp_path / "sweep", "beta=4", *poison, process=True)
    assert result.returncode == 1
    summary = next(line for line in result.stdout.splitlines() if "FAILED" in line)
    assert ": failed NonFiniteLossError: the training loss became nan at step 4" in summary
    assert "refused" not in summary  # its metrics.json says failed, as the summary now does
    assert "float32" not in summary  # the run is float32 already: no advice to switch to it
    assert "Run the same command again with hydra.sweep.dir=" in result.stderr
    (record,) = jobs(tmp_path / "sweep").values()
    assert record["status"] == "failed" and "traceback" in record


def test_a_sweep_of_the_model_alone_reports_by_model_and_a_rerun_of_another_config_is_refused(
    tmp_path: Path,
):
    """``make compare``'s kind of sweep: the report its last line names (no ``--by``) is by
    model, with no β column; the same sweep into its folder with another setting is refused,
    said as refused with where the reason is (its jobs' metrics.json still say completed)."""
    sweep_dir = tmp_path / "sweep"
    first = sweep(sweep_dir, "model=beta_vae,vae", "seed=0")
    assert first.returncode == 0, first.stderr[-3000:]
    hint = next(line for line in first.stdout.splitlines() if line.startswith("report: "))
    program, script, *args = hint.removeprefix("report: ").split()
    assert (program, script) == ("python", "src/report.py")
    report = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                            cwd=ROOT)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "| model | jobs | steps |" in report.stdout and "| beta |" not in report.stdout

    records = {p: p.read_text() for p in sweep_dir.glob("*/metrics.json")}
    again = sweep(sweep_dir, "model=beta_vae,vae", "seed=0", "optimizer.lr=0.01")
    assert again.returncode == 1
    assert {p: p.read_text() for p in sweep_dir.glob("*/metrics.json")} == records
    summary = [line for line in again.stderr.splitlines() if line.startswith("error: ")][-1]
    assert summary.startswith("error: 2 of 2 jobs refused (")
    assert "failed" not in summary and "metrics.json say why" not in summary
    assert f"{sweep_dir / '.refused'}/<job>.txt" in summary
    notes = sorted((sweep_dir / ".refused").glob("*.txt"))
    assert len(notes) == 2 and all("another config's completed run" in n.read_text() for n in notes)
