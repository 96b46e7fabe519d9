"""A folder that holds a run is never overwritten by another config: the real CLI run again
into a finished run's folder, and a sweep run again into its folder with another setting."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from vaelab.run_folder import config_hash, mark_failed, process_start, running_elsewhere

from .conftest import ROOT, TINY, read_metrics, run_cli
from .test_eval import snapshot
from .test_sweep import sweep


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A completed tiny β = 4 run."""
    run_dir = tmp_path_factory.mktemp("reused") / "run"
    result = run_cli(run_dir, *TINY, "beta=4", process=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["beta=8"], "already holds another config's completed run (its overrides: "),
     (["optimizer.lr=0.01"], "run that folder's own overrides to skip it"),
     (["beta=4", "resume=false"], "resume=false would train it again over its results")],
)  # fmt: skip
def test_a_completed_run_is_never_replaced(run_copy: Path, overrides, message):
    before, times = contents(run_copy), snapshot(run_copy)
    result = run_cli(run_copy, *TINY, *overrides, process=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "nothing in the folder was changed" in result.stderr
    assert "beta=4" in result.stderr or "resume=false" in overrides  # the old overrides, kept
    assert len(result.stderr.strip().splitlines()) == 1
    assert contents(run_copy) == before and snapshot(run_copy) == times


def test_the_same_config_again_is_skipped_and_changes_no_result(run_copy: Path):
    before = contents(run_copy)
    result = run_cli(run_copy, *TINY, "beta=4", process=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "already holds a completed run of this config: skipped" in result.stdout + result.stderr
    after = contents(run_copy)
    assert {k: v for k, v in after.items() if k != "train.log"} == {
        k: v for k, v in before.items() if k != "train.log"
    }


def test_a_bad_checkpoint_while_resuming_keeps_the_folders_record(run_copy: Path):
    record = {**read_metrics(run_copy), "status": "running"}  # as if it had been killed
    (run_copy / "metrics.json").write_text(json.dumps(record))
    (run_copy / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    kept = [run_copy / "metrics.json", run_copy / ".hydra" / "overrides.yaml"]
    before = [p.read_bytes() for p in kept]
    result = run_cli(run_copy, *TINY, "beta=4", process=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "cannot be read as a checkpoint" in result.stderr
    assert [p.read_bytes() for p in kept] == before


def test_a_sweep_run_again_with_another_setting_keeps_its_results(tmp_path: Path):
    """Completed jobs and an unfinished one (interrupted: it was marked failed with the
    refusal, its resume message lost) are left as they were."""
    sweep_dir = tmp_path / "sweep"
    first = sweep(sweep_dir, "beta=1,2", "seed=0")
    assert first.returncode == 0, first.stderr[-3000:]
    unfinished = sorted(sweep_dir.glob("*/metrics.json"))[0]
    record = {**json.loads(unfinished.read_text()), "status": "interrupted", "error": "at 3"}
    unfinished.write_text(json.dumps(record))
    before = contents(sweep_dir)
    again = sweep(sweep_dir, "beta=1,2", "seed=0", "optimizer.lr=0.01")
    assert again.returncode == 1, again.stderr[-3000:]
    assert "0 of 2 jobs completed" in again.stdout
    assert again.stdout.count("  REFUSED ") == 2 and "another config" in again.stdout
    after = contents(sweep_dir)
    jobs = [k for k in before if k.endswith("metrics.json") or "/.hydra/" in k]
    assert jobs and all(after[k] == before[k] for k in jobs)


def test_a_corrupt_job_record_fails_the_sweep_and_is_left_as_it_is(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    first = sweep(sweep_dir, "beta=1,2", "seed=0")
    assert first.returncode == 0, first.stderr[-3000:]
    good, bad = sorted(p.parent for p in sweep_dir.glob("*/metrics.json"))
    (bad / "metrics.json").write_text('{"status": "compl')
    again = sweep(sweep_dir, "beta=1,2", "seed=0")
    assert again.returncode == 1, again.stderr[-3000:]
    assert "1 of 2 jobs completed" in again.stdout
    line = next(x for x in again.stdout.splitlines() if x.startswith("  REFUSED "))
    assert line.startswith(f"  REFUSED {bad.name}: ") and "cannot be read" in line, line
    assert (bad / "metrics.json").read_text() == '{"status": "compl'
    assert read_metrics(good)["status"] == "completed"
    shutil.rmtree(sweep_dir)


# an evaluation with the suite's classifiers (so `evaluation.suite.jobs` is in the config), tiny
LIGHT_EVAL = ["evaluation=fast", "evaluation.iwae_k=4", "evaluation.iwae_images=4",
              "evaluation.quality_images=8", "evaluation.suite.num_train=100",
              "evaluation.suite.num_test=50", "evaluation.disentanglement=[mig,dci]"]  # fmt: skip


def test_the_worker_count_of_the_evaluation_is_not_another_config(tmp_path: Path):
    """`evaluation.suite.jobs` says where classifiers are fitted, not what is computed: a run
    is the same config whatever it is, including a run recorded before `auto` existed."""
    run_dir = tmp_path / "run"
    first = run_cli(run_dir, *TINY, *LIGHT_EVAL, "evaluation.suite.jobs=2", process=False)
    assert first.returncode == 0, first.stderr[-3000:]
    before = contents(run_dir)
    for jobs in ("auto", "1", "-1"):
        again = run_cli(run_dir, *TINY, *LIGHT_EVAL, f"evaluation.suite.jobs={jobs}",
                        process=False)  # fmt: skip
        assert again.returncode == 0, again.stderr[-2000:]
        assert "already holds a completed run of this config: skipped" in again.stdout
    # the record of an earlier version: its fingerprint hashed the worker count as given
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    record = read_metrics(run_dir)
    assert record["config_hash"] == config_hash(saved) != config_hash(saved, as_given=True)
    record["config_hash"] = config_hash(saved, as_given=True)
    (run_dir / "metrics.json").write_text(json.dumps(record))
    again = run_cli(run_dir, *TINY, *LIGHT_EVAL, "evaluation.suite.jobs=2", process=False)
    assert again.returncode == 0 and "of this config: skipped" in again.stdout
    other = run_cli(run_dir, *TINY, *LIGHT_EVAL, "evaluation.suite.num_train=200", process=False)
    assert other.returncode == 2 and "another config" in other.stderr  # a computed setting
    after = contents(run_dir)
    assert {k: v for k, v in after.items() if k not in ("train.log", "metrics.json")} == {
        k: v for k, v in before.items() if k not in ("train.log", "metrics.json")
    }


def test_the_weights_memory_layout_is_not_another_config(tmp_path: Path):
    """`arch.channels_last` says how the conv weights lie in memory, not what is computed: a
    run is the same config either way, including one recorded before the key existed."""
    run_dir = tmp_path / "run"
    first = run_cli(run_dir, *TINY, "evaluation=none", process=False)
    assert first.returncode == 0, first.stderr[-3000:]
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert saved.arch.channels_last is True and saved.arch.encoder.channels_last is True
    again = run_cli(run_dir, *TINY, "evaluation=none", "arch.channels_last=false", process=False)
    assert again.returncode == 0 and "of this config: skipped" in again.stdout
    # what versions before the key recorded: the fingerprint of a config without it
    for part in (saved.arch, saved.arch.encoder, saved.arch.decoder):
        del part["channels_last"]
    assert read_metrics(run_dir)["config_hash"] == config_hash(saved)
    other = run_cli(run_dir, *TINY, "evaluation=none", "arch.latent_dim=3", process=False)
    assert other.returncode == 2 and "another config" in other.stderr  # a computed setting


def test_a_folder_another_live_process_trains_in_is_refused_and_kept(tmp_path, other_process):
    """The same command started twice with one hydra.run.dir (or a sweep launched twice into
    one folder) trained twice into it at once; a sweep's job then marked the other's record
    failed."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = {"status": "running", "model": "beta_vae", "pid": other_process,
              "host": socket.gethostname(), "config_hash": "0123456789abcdef"}  # fmt: skip
    (run_dir / "metrics.json").write_text(json.dumps(record))
    before = contents(run_dir)
    result = run_cli(run_dir, *TINY, "beta=4", process=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"{run_dir} is in use: process {other_process} on this host" in result.stderr
    assert "Traceback" not in result.stderr
    assert not mark_failed(run_dir, "refused")  # a sweep's job marks it neither
    assert contents(run_dir) == before


def test_two_runs_started_in_one_folder_at_once_train_one_and_refuse_the_other(tmp_path):
    """Runs started in the same second share the default folder (named after that second):
    both trained into it and both failed with a traceback, their results mixed. Now the first
    to take the folder trains; the other is refused in one paragraph, the winner's run kept."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # as Hydra makes it for both
    env = {**os.environ, "VAELAB_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, str(ROOT / "src" / "train.py"), f"hydra.run.dir={run_dir}", *TINY]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    started = [
        subprocess.Popen([*command, f"beta={beta}"], cwd=ROOT, env=env, **pipes) for beta in (1, 8)
    ]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in started]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], [err[-2000:] for _, err in results]
    refused = next(err for code, err in results if code == 2)
    assert "Traceback" not in refused and ("is in use" in refused or "another config" in refused)
    won = 1 if results[0][0] == 0 else 8
    assert read_metrics(run_dir)["status"] == "completed"
    saved = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert f"beta={won}" in saved and (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_a_running_record_whose_process_number_was_given_again_is_not_in_use(other_process):
    """A run killed by the system leaves ``running`` and its pid; a later process given that
    number must not hold the folder for ever: the process's start time tells them apart."""
    here = socket.gethostname()
    record = {"status": "running", "pid": other_process, "host": here}
    assert running_elsewhere(record)  # recorded before start times: the number alone
    assert running_elsewhere({**record, "pid_started": process_start(other_process)})
    assert not running_elsewhere({**record, "pid_started": process_start(other_process) - 1})


def test_a_sweep_launched_again_while_its_jobs_train_says_them_running_not_refused(
    tmp_path: Path, other_process
):
    sweep_dir = tmp_path / "sweep"
    first = sweep(sweep_dir, "beta=1,2", "seed=0")
    assert first.returncode == 0, first.stderr[-3000:]
    busy = sorted(sweep_dir.glob("*/metrics.json"))[0]
    owner = {"pid": other_process, "host": socket.gethostname(),
             "pid_started": process_start(other_process)}  # fmt: skip
    record = {**json.loads(busy.read_text()), "status": "running", **owner}
    busy.write_text(json.dumps(record))
    again = sweep(sweep_dir, "beta=1,2", "seed=0")
    assert f"still running in another process: {busy.parent.name}" in again.stdout
    assert "REFUSED" not in again.stdout and again.returncode == 0, again.stdout[-3000:]
    assert json.loads(busy.read_text()) == record  # neither trained into nor marked
