"""What a run prints, through the real CLI: Lightning's lines once and no advertisement, the
summary's FLOPs without changing the run, progress as log lines or as a bar of steps, and a
number for the optimised metric however short the run."""

from __future__ import annotations

import re

from .conftest import read_metrics

SUMMARY = "trainer.enable_model_summary=true"


def test_lightning_lines_once_no_advertisement_and_log_lines_of_progress(cli):
    run_dir, result = cli(SUMMARY, "callbacks.progress.every_s=0", process=True)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert out.count("GPU available") == 1 and out.count("`Trainer.fit` stopped") == 1
    assert "Tip" not in out and "litlogger" not in out
    flops = re.search(r"Total FLOPs: ([\d.]+) ([KMG])", out)
    assert flops and float(flops.group(1)) > 0  # one image's forward pass, not 0
    assert "Epoch 0/" not in out
    # not a terminal: one line per step here (every_s=0), validation and test announced
    for step in range(1, 7):
        assert re.search(rf"step {step}/6 \(\d+%\), loss [\d,.]+, .*elapsed", out), step
    assert "validating at step 3" in out and "testing at step 6" in out
    job_log = (run_dir / "train.log").read_text()  # the same lines reach the job's log file
    assert "step 6/6 (100%)" in job_log and "GPU available" in job_log


def test_the_summary_leaves_the_run_unchanged(cli):
    with_summary, result = cli(SUMMARY, name="with")
    assert result.returncode == 0, result.stderr[-3000:]
    without, result = cli(name="without")
    assert result.returncode == 0, result.stderr[-3000:]

    def losses(run_dir):  # every metric but the measured speed
        metrics = read_metrics(run_dir)["metrics"]
        return {k: v for k, v in metrics.items() if "images_per_sec" not in k}

    assert losses(with_summary) == losses(without)  # the summary's pass drew no ε of theirs


def test_in_a_terminal_the_bar_counts_training_steps(cli):
    _, result = cli("callbacks.progress.terminal=true", process=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"Training\s+\S+ 6/6 ", result.stdout)
    assert "Epoch" not in result.stdout and "step 6/6 (" not in result.stdout


def test_a_run_shorter_than_one_validation_interval_returns_its_metric(cli):
    run_dir, result = cli("trainer.max_steps=2", "trainer.val_check_interval=5")
    assert result.returncode == 0, result.stderr[-3000:]
    value = read_metrics(run_dir)["metrics"]["val/elbo"]
    assert f"val/elbo = {value:.6g}; run folder {run_dir}" in result.stdout + result.stderr


def test_without_the_progress_callback_no_bar_counts_epochs(cli):
    """``~callbacks.progress`` leaves no bar: Lightning's own would print "Epoch 0/-2"."""
    _, result = cli("~callbacks.progress", process=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Epoch" not in result.stdout + result.stderr
    assert "/-2" not in result.stdout + result.stderr
