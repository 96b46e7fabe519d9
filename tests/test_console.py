"""What a run prints, through the real CLI: Lightning's lines once and no advertisement, the
summary's FLOPs without changing the run, progress as log lines or as a bar of steps, and a
number for the optimised metric however short the run."""

from __future__ import annotations

import io
import json
import logging
import re
import signal

from hydra import compose, initialize_config_dir
from lightning.pytorch.utilities.model_summary import summarize

from vaelab.callbacks import count, summary_table
from vaelab.console import name_console_lines
from vaelab.training import build_module

from .conftest import CONF, ROOT, read_metrics
from .killer import kill_at

SUMMARY = "trainer.enable_model_summary=true"


def test_lightning_lines_once_no_advertisement_and_log_lines_of_progress(cli):
    run_dir, result = cli(SUMMARY, "callbacks.progress.every_s=0", process=True)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert out.count("GPU available") == 1 and out.count("`Trainer.fit` stopped") == 1
    assert "Tip" not in out and "litlogger" not in out
    assert "TPU available" not in out  # none here: only where the run trains is said
    flops = re.search(r"forward FLOPs per image: ([\d.]+) ([KMG]) \(objective: run outside", out)
    assert flops and float(flops.group(1)) > 0  # one image's forward pass, not 0
    assert len(re.findall(r"│ objective +│ BetaVAE +│ +0 │ +- │ - +│ - +│", out)) == 1
    assert "Epoch 0/" not in out
    # not a terminal: one line per step here (every_s=0), validation and test announced
    for step in range(1, 7):
        assert re.search(rf"step {step}/6 \(\d+%\), loss [\d,.]+, .*elapsed", out), step
    assert "validating at step 3" in out and "testing at step 6" in out
    job_log = (run_dir / "train.log").read_text()  # the same lines reach the job's log file
    assert "step 6/6 (100%)" in job_log and "GPU available" in job_log
    assert re.search(r"│ encoder +│ ConvEncoder +│", job_log) and "forward FLOPs per" in job_log


def test_the_summary_counts_one_image_and_marks_what_forward_never_reaches():
    """Rows the example pass reached show its FLOPs and shapes; FactorVAE's discriminator (in
    the loss) shows "-"; without an example input (compile=true) no FLOPs are claimed."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("train", overrides=["model=factor_vae", "size=small"])
    module = build_module(cfg)
    summary = summarize(module, max_depth=1)
    table = summary_table(summary, example_pass=True)
    rows = {line.split("│")[1].strip(): line for line in table.splitlines() if "│" in line}
    assert [c.strip() for c in rows["objective"].split("│")[2:-1]] == [
        "FactorVAE",
        count(sum(p.numel() for p in module.objective.parameters())),
        "-",
        "-",
        "-",
    ]
    encoder = [c.strip() for c in rows["encoder"].split("│")[4:-1]]
    side, latents = cfg.data.image_size, module.latent_dim
    assert encoder[1:] == [f"1×1×{side}×{side}", f"1×{latents}, 1×{latents}"]
    assert encoder[0] == count(sum(summary.flop_counts["encoder"].values())) != "0"
    total = summary.total_flops
    assert total == sum(sum(summary.flop_counts[n].values()) for n in ("encoder", "decoder")) > 0
    assert table.endswith(f"forward FLOPs per image: {count(total)} (objective: run outside "
                          "forward, not counted)")  # fmt: skip

    module.example_input_array = None  # as under compile=true
    table = summary_table(summarize(module, max_depth=1), example_pass=False)
    assert "FLOPs │" not in table and " - " not in table and "│ 0 " not in table.split("params")[0]
    assert table.endswith("FLOPs: not counted (compiled networks: no example pass)")


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
    assert "0.00it/s" not in result.stdout  # a bar of one batch (limit_val_batches=1): no rate


def test_in_a_terminal_the_bar_counts_on_across_epochs_and_a_resume(cli, tmp_path, monkeypatch):
    """Over 3 epochs, and resumed at step 40 in the second, the bar shows the step after each
    batch and its clock runs from the run's start: Lightning reset it at every epoch (0/60,
    elapsed 0:00:00, a burst of steps/s)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.killer and tests.bar_watch
    watch = tmp_path / "bar.json"
    bar = [
        "callbacks.progress.terminal=true",
        "+callbacks.bar_watch._target_=tests.bar_watch.BarWatch",
        f"+callbacks.bar_watch.path={watch}",
        "trainer.max_steps=60",
        "trainer.val_check_interval=30",
    ]
    _, result = cli(*bar, name="whole")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(watch.read_text())
    assert [r["step"] for r in rows] == list(range(1, 61))
    assert rows[-1]["epoch"] == 2  # 26 batches an epoch
    assert all(r["completed"] == r["step"] and r["total"] == 60 for r in rows)
    assert len({r["started"] for r in rows}) == 1

    _, killed = cli(*bar, *kill_at(40), name="resumed", process=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    _, resumed = cli(*bar, name="resumed")  # the same command: resumed in the same folder
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = json.loads(watch.read_text())
    assert rows[0]["step"] in (40, 41) and rows[-1]["step"] == 60  # restarted mid-epoch
    assert all(r["completed"] == r["step"] and r["total"] == 60 for r in rows)
    assert len({r["started"] for r in rows}) == 1


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


def test_python_warnings_reach_the_jobs_handlers_once_and_stop_after_the_job():
    """In a job (root handlers: console and <job>.log) a warning is a log record, written
    by each handler once; after the job (logging_restored) warnings print as before."""
    import io
    import logging
    import warnings

    from vaelab.console import logging_restored, route_lightning_logs

    stream = io.StringIO()
    with logging_restored():
        logging.getLogger().addHandler(logging.StreamHandler(stream))
        route_lightning_logs()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("a hint for the job's log", UserWarning, stacklevel=1)
    assert stream.getvalue().count("UserWarning: a hint for the job's log") == 1
    assert warnings.showwarning.__module__ == "warnings"  # not logging's: capture ended


def test_a_named_console_keeps_its_own_formatter_and_one_name():
    """The name wraps the handler's formatter (Hydra's, or colorlog's with fields of its own,
    which a plain Formatter could not fill); a second call replaces the name."""

    class Coloured(logging.Formatter):  # colorlog-like: a field only its own format() fills
        def format(self, record: logging.LogRecord) -> str:
            record.colour = "<c>"
            return super().format(record)

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Coloured("[%(asctime)s][%(colour)s%(name)s][%(levelname)s] %(message)s"))
    root = logging.getLogger()
    kept = root.handlers[:]  # pytest's own handlers are left as they are
    root.handlers[:] = [handler]
    try:
        name_console_lines("job 1")
        name_console_lines("job 2")
        logging.getLogger("vaelab.test").warning("hello")
    finally:
        root.handlers[:] = kept
    line = stream.getvalue().strip()
    assert re.fullmatch(r"\[[^]]+\]\[job 2\]\[<c>vaelab\.test\]\[WARNING\] hello", line), line
