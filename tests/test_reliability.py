"""Kill and resume, atomic writes, the NaN guard and reproducible seeds, through the CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import ROOT, TINY, read_metrics, run_cli
from .killer import kill_at

LONG = [
    o
    for o in TINY
    if not o.startswith(
        ("trainer.max_steps", "trainer.val_check_interval", "callbacks.model_checkpoint")
    )
] + [
    "trainer.max_steps=75",  # killed at 40 (mid-epoch 2); resumed across epoch 3 and 2 validations
    "trainer.val_check_interval=25",
    "callbacks.model_checkpoint.every_n_train_steps=5",
    "trainer.deterministic=true",
    "callbacks=default",
    "~callbacks.progress",
]
COMPARED = (
    "train/loss",
    "train/recon",
    "train/kl",
    "val/elbo",
    "val/loss",
    "test/elbo",
    "test/loss",
)


def compared(metrics: dict) -> dict:
    return {k: metrics["metrics"][k] for k in COMPARED}


def test_kill_9_then_the_same_command_resumes_and_matches_an_uninterrupted_run(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.killer
    runs = tmp_path / "outputs" / "runs" / "day"
    overrides = [*LONG, f"paths.log_dir={tmp_path / 'outputs'}"]
    whole = runs / "a_whole"
    result = run_cli(whole, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]

    killed = runs / "b_killed"  # SIGKILL from inside, right after the step-40 checkpoint
    kill = ["+hydra.callbacks.killer._target_=tests.killer.KillAfterCheckpoint",
            "+hydra.callbacks.killer.step=40"]  # fmt: skip
    result = run_cli(killed, *overrides, *kill)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    assert read_metrics(killed)["status"] == "running"
    saved = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert saved == 40  # mid-epoch: 25 batches per epoch

    resumed = runs / "c_resumed"
    result = run_cli(resumed, *overrides, process=False)  # the same command again
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(resumed)
    assert metrics["resumed_from"] == str(killed / "checkpoints" / "last.ckpt")
    assert metrics["start_step"] == saved and metrics["step"] == 75
    assert compared(metrics) == compared(read_metrics(whole))
    superseded = read_metrics(killed)  # no longer "running": it says where training went on
    assert superseded["status"] == "resumed" and superseded["resumed_in"] == str(resumed)

    again = runs / "d_again"  # the same command once more: the newest run of these
    result = run_cli(again, *overrides)  # overrides completed, so it starts afresh
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(again)
    assert "resumed_from" not in metrics and metrics["start_step"] == 0
    assert f"the newest run of these overrides, {resumed}, completed" in result.stdout
    assert compared(metrics) == compared(read_metrics(whole))


def test_ckpt_path_last_without_an_unfinished_run_is_a_clear_error(tmp_path: Path):
    result = run_cli(
        tmp_path / "outputs" / "runs" / "d" / "x",
        *TINY,
        "ckpt_path=last",
        f"paths.log_dir={tmp_path / 'outputs'}",
    )
    assert result.returncode == 2 and "found no unfinished earlier run" in result.stderr


KILL_AT_3 = kill_at(3)


def test_resume_false_starts_afresh_and_ckpt_path_last_resumes(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.killer
    runs = tmp_path / "outputs" / "runs" / "day"
    overrides = [*TINY, f"paths.log_dir={tmp_path / 'outputs'}"]
    killed = runs / "a_killed"
    assert run_cli(killed, *overrides, *KILL_AT_3).returncode == -signal.SIGKILL
    resumed = runs / "b_resumed"  # ckpt_path=last: the newest unfinished run of these overrides
    result = run_cli(resumed, *overrides, "ckpt_path=last", process=False)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(resumed)
    assert metrics["resumed_from"] == str(killed / "checkpoints" / "last.ckpt")
    assert metrics["start_step"] == 3 and metrics["step"] == 6
    assert read_metrics(killed)["resumed_in"] == str(resumed)
    killed_again = runs / "c_killed"
    assert run_cli(killed_again, *overrides, *KILL_AT_3).returncode == -signal.SIGKILL
    fresh = runs / "d_fresh"  # an unfinished run of these overrides exists, but resume=false
    result = run_cli(fresh, *overrides, "resume=false", process=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed_from" not in read_metrics(fresh) and read_metrics(fresh)["start_step"] == 0
    assert read_metrics(killed_again)["status"] == "running"  # not resumed: left as it was


def test_a_killed_run_keeps_its_logged_rows_up_to_its_last_checkpoint(tmp_path, monkeypatch):
    """Lightning's logger connector writes the CSV file at every logged step (not every
    ``flush_logs_every_n_steps``, the CSV logger's own setting), so a kill loses no row of a
    step before the checkpoint the run resumes from."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.killer
    killed = tmp_path / "killed"
    result = run_cli(killed, *TINY, "callbacks=default", "~callbacks.progress",
                     "callbacks.model_checkpoint.every_n_train_steps=3",
                     "trainer.val_check_interval=6", *kill_at(4))  # fmt: skip
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    with (killed / "csv" / "metrics.csv").open() as handle:
        steps = {int(row["step"]) for row in csv.DictReader(handle) if row.get("train/loss")}
    # the rows of the three steps before the checkpoint of step 3 (that of step 2 is logged
    # just after it); step 3's, not yet written when the kill came, is trained again
    assert steps == {0, 1, 2}


def test_ctrl_c_says_in_one_line_where_the_same_command_resumes_and_it_does(
    tmp_path: Path, monkeypatch
):
    """Lightning's graceful shutdown ends in SystemExit(1): it was exit 1 with no word of the
    checkpoint (2 in a stacked sweep, read as bad input). The line is the run's log's last
    too, in place of Lightning's notice; metrics.json says ``interrupted`` (it said
    ``running`` for good)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.killer
    overrides = [*TINY, f"paths.log_dir={tmp_path / 'outputs'}"]
    run = tmp_path / "outputs" / "runs" / "day" / "a"
    result = run_cli(run, *overrides, *kill_at(3, "SIGINT"))
    assert result.returncode == 130, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    ckpt = run / "checkpoints" / "last.ckpt"
    assert last == (f"interrupted: training stopped at step 3; the same command resumes it "
                    f"from {ckpt} (step 3)")  # fmt: skip
    assert "Detected KeyboardInterrupt" not in result.stdout + result.stderr
    assert (run / "train.log").read_text().splitlines()[-1].endswith(last)
    record = read_metrics(run)
    assert record["status"] == "interrupted" and record["error"] == last.removeprefix(
        "interrupted: "
    )
    again = tmp_path / "outputs" / "runs" / "day" / "b"
    result = run_cli(again, *overrides, process=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_metrics(again)["resumed_from"] == str(ckpt)
    assert read_metrics(again)["start_step"] == 3 and read_metrics(again)["step"] == 6


def test_ctrl_c_in_a_sweep_named_by_hydra_says_the_sweep_folder_that_resumes_it(
    tmp_path: Path, monkeypatch
):
    """A sweep launched without hydra.sweep.dir gets a new dated folder each launch: the same
    command again trained afresh in another, though the line said it resumes. The line now
    gives the folder, and the command with it resumes the job."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.killer
    args = [sys.executable, str(ROOT / "src" / "train.py"), "-m", *TINY, "beta=1",
            f"paths.log_dir={tmp_path / 'outputs'}"]  # fmt: skip
    env = {**os.environ, "VAELAB_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([*args, *kill_at(3, "SIGINT")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 130, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "outputs" / "multirun").glob("*/*")
    (job,) = sweep_dir.glob("0_*")
    assert result.stderr.strip().splitlines()[-1] == (
        f"interrupted: training stopped at step 3; the same command with "
        f"hydra.sweep.dir={sweep_dir} resumes it from {job / 'checkpoints' / 'last.ckpt'} "
        f"(step 3)"
    )
    again = subprocess.run([*args, f"hydra.sweep.dir={sweep_dir}"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert read_metrics(job)["start_step"] == 3 and read_metrics(job)["step"] == 6


def test_ctrl_c_in_the_test_pass_is_the_same_one_line_and_interrupted(tmp_path: Path, monkeypatch):
    """After training, in trainer.test: it ended silently with exit 1 and metrics.json said
    ``running`` (only fit turned Lightning's SystemExit into the interrupted line)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.killer
    run = tmp_path / "outputs" / "runs" / "day" / "a"
    overrides = [*TINY, f"paths.log_dir={tmp_path / 'outputs'}"]
    result = run_cli(run, *overrides, *kill_at(0, "SIGINT", stage="test"))
    assert result.returncode == 130, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: training stopped at step 6; the same command resumes")
    assert read_metrics(run)["status"] == "interrupted"
    # Resumed at its last step, it trains nothing more: what training logged and its speed
    # come from the checkpoint (metrics.json had no train/* and images_per_sec null)
    again = run_cli(run, *overrides, process=False)
    assert again.returncode == 0, again.stderr[-3000:]
    record = read_metrics(run)
    assert record["status"] == "completed" and record["images_per_sec"] > 0
    assert {"train/loss", "train/recon", "train/kl", "train/kl_dim/0"} <= set(record["metrics"])


def test_a_resume_refused_as_training_starts_leaves_both_folders_as_they_were(
    tmp_path: Path, monkeypatch
):
    """The killed run keeps saying ``running`` (it was not resumed after all) and the refused
    run's folder is gone: here the resuming run finds a corrupt data cache as it starts."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.killer
    runs = tmp_path / "outputs" / "runs"
    overrides = [*TINY, f"paths.log_dir={tmp_path / 'outputs'}"]
    killed = runs / "day" / "a_killed"
    assert run_cli(killed, *overrides, *KILL_AT_3).returncode == -signal.SIGKILL
    record = (killed / "metrics.json").read_bytes()
    (runs / "day2" / "data").mkdir(parents=True)  # run_cli's data folder for day2's runs
    (runs / "day2" / "data" / "dsprites_procedural_v1.npy").write_text("not an array\n")
    refused = runs / "day2" / "b_refused"
    result = run_cli(refused, *overrides, process=False)
    assert result.returncode == 2 and "cannot be used" in result.stderr, result.stderr[-3000:]
    assert "resuming the unfinished run in" in result.stdout
    assert (killed / "metrics.json").read_bytes() == record  # still "running", resumable
    assert not refused.exists()


def test_factor_vae_killed_and_resumed_equals_an_uninterrupted_run(tmp_path: Path, monkeypatch):
    """Both networks, both optimizers and the permutation's random state come back."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.killer
    runs = tmp_path / "outputs" / "runs" / "day"
    overrides = [*TINY, "model=factor_vae", "trainer.deterministic=true",
                 f"paths.log_dir={tmp_path / 'outputs'}"]  # fmt: skip
    whole = runs / "a_whole"
    assert run_cli(whole, *overrides, process=False).returncode == 0
    killed = runs / "b_killed"
    assert run_cli(killed, *overrides, *KILL_AT_3).returncode == -signal.SIGKILL
    resumed = runs / "c_resumed"
    result = run_cli(resumed, *overrides, process=False)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(resumed)
    assert metrics["start_step"] == 3 and metrics["step"] == 6
    keys = [*COMPARED, "train/tc", "train/disc_accuracy"]
    expected = read_metrics(whole)["metrics"]
    assert {k: metrics["metrics"][k] for k in keys} == {k: expected[k] for k in keys}
    weights = [torch.load(r / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
               for r in (whole, resumed)]  # fmt: skip
    assert any("discriminator" in k for k in weights[0])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_same_seed_gives_the_same_weights_data_samples_and_metrics(cli):
    runs = [
        cli("seed=3", "trainer.deterministic=true", name=n, process=True)[0] for n in ("one", "two")
    ]
    other, _ = cli("seed=4", "trainer.deterministic=true", name="other", process=True)
    first, second, third = (read_metrics(r) for r in (*runs, other))
    assert compared(first) == compared(second) != compared(third)
    figure = "figures/reconstructions_samples.png"
    assert (runs[0] / figure).read_bytes() == (runs[1] / figure).read_bytes()
    weights = [
        torch.load(r / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for r in runs
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


POISON = [
    "model.objective._target_=tests.poison.PoisonedBetaVAE",
    "+model.objective.poison_calls=[7]",
]


def poisoned_cli(cli, *overrides):
    os.environ["PYTHONPATH"] = str(ROOT)
    try:
        return cli(*POISON, "trainer.max_steps=9", *overrides, process=True)
    finally:
        del os.environ["PYTHONPATH"]


def test_nan_stop_reports_the_step_and_parts_and_keeps_the_last_good_checkpoint(cli):
    run_dir, result = poisoned_cli(cli)
    assert result.returncode == 1
    assert "at step 7" in result.stderr and "non-finite parts: recon" in result.stderr
    assert "lower learning rate" in result.stderr and "Traceback" not in result.stderr
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "failed" and "NonFiniteLossError" in metrics["error"]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 6  # checkpoints every 3 steps; nothing written after the NaN
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_nan_skip_skips_and_counts_the_batch(cli):
    run_dir, result = poisoned_cli(cli, "trainer.nan_policy=skip")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["skipped_batches"] == 1
    # Lightning counts the skipped batch's optimizer step (a step with no gradient, so no
    # update); the manual steps of FactorVAE count only updates (README, "Reliability")
    assert metrics["step"] == 9


def test_nan_skip_stops_after_100_batches_skipped_in_a_row(cli):
    every = "[" + ",".join(str(i) for i in range(150)) + "]"  # every batch is NaN
    run_dir, result = poisoned_cli(cli, "trainer.nan_policy=skip", "trainer.max_steps=140",
                                   f"model.objective.poison_calls={every}")  # fmt: skip
    assert result.returncode == 1
    assert "at step 100 (100 batches skipped in a row before it)" in result.stderr
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "failed" and "NonFiniteLossError" in metrics["error"]


WRITER = """
import json, sys, time
import vaelab.io as io
def half_then_hang(obj, f, **kwargs):
    f.write('{"half": ')
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
io.json.dump = half_then_hang
io.write_json_atomic(sys.argv[1], {"new": list(range(10))})
"""

CKPT_WRITER = """
import sys, time, torch
from vaelab.checkpoint import AtomicCheckpointIO
class Slow:
    def __reduce__(self):
        print("writing", flush=True)
        time.sleep(60)
        return (int, (0,))
checkpoint = {"state_dict": {"w": torch.ones(1000)}, "x": Slow()}
AtomicCheckpointIO().save_checkpoint(checkpoint, sys.argv[1])
"""


@pytest.mark.parametrize(("script", "old"), [(WRITER, b'{"old": 1}\n'), (CKPT_WRITER, None)])
def test_a_writer_killed_midway_leaves_the_old_file_intact(tmp_path: Path, script: str, old):
    target = tmp_path / ("metrics.json" if old else "last.ckpt")
    if old is None:
        torch.save({"state_dict": {"w": torch.zeros(3)}}, target)
    else:
        target.write_bytes(old)
    before = target.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "writing"  # it is inside the write now
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == before
    if old is None:
        assert torch.equal(torch.load(target)["state_dict"]["w"], torch.zeros(3))
    else:
        assert json.loads(target.read_text()) == {"old": 1}


MERGER = """
import sys
from pathlib import Path
from vaelab.eval_runs import merge_into_metrics
run, who = Path(sys.argv[1]), sys.argv[2]
print("ready", flush=True)
sys.stdin.readline()  # both start together
for i in range(100):
    merge_into_metrics(run, f"{who}{i}", {"metrics": {f"{who}/{i}": i}}, keys=())
"""


def test_evaluations_merging_into_one_run_at_once_lose_nothing(tmp_path: Path):
    """Two evaluations of one run merge their scores into its metrics.json at the same time
    (a read, then an atomic replace): each waits for the other's merge, so every score stays."""
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "completed", "step": 6}))
    procs = [subprocess.Popen([sys.executable, "-c", MERGER, str(tmp_path), who],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for who in ("a", "b")]  # fmt: skip
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "completed" and record["step"] == 6
    assert sorted(record["metrics"]) == sorted(f"{w}/{i}" for w in "ab" for i in range(100))
    assert len(record["evaluations"]) == 200
