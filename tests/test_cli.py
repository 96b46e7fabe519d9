"""Tiny runs through the real command line: run folder, checkpoint, figure, metrics.json."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, TINY, read_metrics, run_cli


def csv_rows(run_dir):
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("model", ["ae", "vae", "beta_vae"])
def test_each_model_trains_and_leaves_a_complete_run_folder(cli, model: str):
    run_dir, result = cli(f"model={model}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["model"] == model
    assert metrics["step"] == 6 and metrics["start_step"] == 0
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "figures" / "reconstructions_samples.png").stat().st_size > 1000
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert metrics["images_per_sec"] > 0
    m = metrics["metrics"]
    assert m["test/recon"] > 0
    if model == "ae":
        assert "test/elbo" not in m
    else:
        assert m["test/elbo"] == pytest.approx(-(m["test/recon"] + m["test/kl"]), rel=1e-4)
        assert m["val/elbo"] < 0


def test_beta_from_the_command_line_is_the_beta_used_and_logged(cli):
    run_dir, result = cli("model=beta_vae", "beta=2.5")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [r for r in csv_rows(run_dir) if r.get("train/beta")]
    assert rows and all(float(r["train/beta"]) == 2.5 for r in rows)
    kl_dims = [k for k in rows[0] if k.startswith("train/kl_dim/")]
    assert len(kl_dims) == 6  # size=small: 6 latent dimensions
    loss, recon, kl = (float(rows[-1][k]) for k in ("train/loss", "train/recon", "train/kl"))
    assert loss == pytest.approx(recon + 2.5 * kl, rel=1e-4)


def test_mlp_arch_trains_through_the_cli(cli):
    run_dir, result = cli("arch=mlp", "model=vae")
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_metrics(run_dir)["status"] == "completed"


def test_resuming_continues_at_the_saved_step(cli):
    first, result = cli(name="first")
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = first / "checkpoints" / "last.ckpt"
    second, result = cli(f"ckpt_path={ckpt}", "trainer.max_steps=9", name="second")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(second)
    assert metrics["start_step"] == 6 and metrics["step"] == 9


OBJECTIVE_RUNS = [
    (
        [
            "model=annealed_vae",
            "model.c_max=10",
            "model.c_steps=4",
            "model.gamma=500",
        ],
        ["train/capacity"],
    ),
    (
        ["model=beta_tcvae", "model.estimator=mss", "beta_schedule=cyclical"],
        ["train/tc", "train/mi"],
    ),
    (["model=factor_vae", "model.gamma=10"], ["train/tc", "train/disc_accuracy"]),
    (["model=dip_vae", "model.variant=ii"], ["train/dip_penalty"]),
]


@pytest.mark.parametrize(
    ("overrides", "logged"), OBJECTIVE_RUNS, ids=[r[0][0] for r in OBJECTIVE_RUNS]
)
def test_each_objective_trains_with_finite_losses_and_logs_its_parts(cli, overrides, logged):
    run_dir, result = cli(*overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(run_dir)
    assert (
        metrics["status"] == "completed" and metrics["step"] == 6
    )  # VAE steps, also for FactorVAE
    values = metrics["metrics"]
    assert all(math.isfinite(v) for v in values.values())
    for key in ["train/loss", "train/beta", *logged]:
        assert key in values, key
    rows = [r for r in csv_rows(run_dir) if r.get("train/beta")]
    betas = [float(r["train/beta"]) for r in rows]
    if "beta_schedule=cyclical" in overrides:  # 4 cycles over 6 steps, each rising from 0
        assert betas[0] == 0.0 and max(betas) == 6.0
    if "model=annealed_vae" in overrides:  # beta follows model.gamma, C reaches c_max
        assert set(betas) == {500.0} and float(rows[-1]["train/capacity"]) == 10.0


def test_end_of_run_evaluation_measures_likelihood_and_disentanglement(cli):
    run_dir, result = cli(
        "evaluation=fast", "evaluation.iwae_k=20", "evaluation.iwae_images=8",
        "evaluation.suite.num_train=300", "evaluation.suite.num_test=150",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    m = read_metrics(run_dir)["metrics"]
    for key in ("mig", "dci[gbt]/d", "dci[gbt]/c", "sap", "modularity", "irs"):
        assert 0.0 <= m[f"disent/{key}"] <= 1.0, key
    for key in ("gaussian_tc", "gaussian_wasserstein", "gaussian_wasserstein_norm", "mutual_info"):
        assert m[f"disent/{key}"] >= 0.0, key
    assert m["test/nll_iw"] > 0 and 0 <= m["test/active_units"] <= 6
    assert m["test/psnr"] > 0 and 0 < m["test/ssim"] <= 1  # reconstructions, via torchmetrics
    # the IWAE bound is at least as tight as the single-sample ELBO, up to sampling noise
    assert -m["test/nll_iw"] >= m["test/elbo"] - 0.01 * abs(m["test/elbo"])
    # the last line: the optimized metric to 6 significant digits, once, and the folder
    last = f"val/elbo = {m['val/elbo']:.6g}; run folder {run_dir}"
    assert (result.stdout + result.stderr).count(last) == 1


def test_data_without_factors_skips_the_disentanglement_suite_with_one_line(cli):
    run_dir, result = cli("data=digits", "evaluation=fast", "evaluation.iwae_k=5",
                          "evaluation.iwae_images=8")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    line = "has no ground-truth factors: disentanglement metrics skipped"
    assert (result.stdout + result.stderr).count(line) == 1
    m = read_metrics(run_dir)["metrics"]
    assert m["test/nll_iw"] > 0 and not any(k.startswith("disent/") for k in m)


def test_a_run_shorter_than_the_logging_interval_still_logs_its_training(cli):
    """20 steps with log_every_n_steps=50 (the default) logged no train/ metric at all; now
    every second step (a tenth of the run). The interval given on the command line stays."""
    tiny = [o for o in TINY if not o.startswith("trainer.log_every_n_steps=")]
    run_dir, result = cli(*tiny, "trainer.max_steps=20", tiny=False)
    assert result.returncode == 0, result.stderr[-3000:]
    logged = [int(r["step"]) for r in csv_rows(run_dir) if r.get("train/loss")]
    assert logged == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]  # Lightning's step, counted from 0
    assert all(r.get("train/beta") for r in csv_rows(run_dir) if r.get("train/loss"))
    given = ["trainer.max_steps=20", "trainer.log_every_n_steps=50"]
    run_dir, result = cli(*tiny, *given, tiny=False, name="given")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not any(r.get("train/loss") for r in csv_rows(run_dir))


def test_a_run_extended_with_other_checkpoint_settings_says_nothing_alarming(cli):
    """Lightning warned "callbacks used to create the checkpoint need to be provided ... Please
    add the following callbacks: [ModelCheckpoint{...}]" when only the checkpoint interval
    differed; the run resumes as before."""
    first, result = cli(name="first")
    assert result.returncode == 0, result.stderr[-3000:]
    last = first / "checkpoints" / "last.ckpt"
    longer = ["trainer.max_steps=8", "callbacks.model_checkpoint.every_n_train_steps=2"]
    run_dir, result = cli(f"ckpt_path={last}", *longer, name="longer")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Be aware that when using `ckpt_path`" not in result.stdout + result.stderr
    assert read_metrics(run_dir)["start_step"] == 6 and read_metrics(run_dir)["step"] == 8


def test_the_programs_start_without_torch_or_scikit_learn():
    """A config check, --help or a refusal answers before torch, Lightning and scikit-learn
    load (~5 s cold): run_folder had come to import the metrics, config the compiler."""
    heavy = "{'torch', 'lightning', 'sklearn'}"
    code = f"import sys, vaelab.cli.train; print(sorted({heavy} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "[]"


@pytest.mark.parametrize("users", [None, "1"])
def test_the_task_trains_in_the_users_environment(cli, tmp_path, monkeypatch, users):
    """The program sets HYDRA_FULL_ERROR so that Hydra raises its composition errors to it (one
    paragraph); the task, and what it starts, see the variable as the user set it."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.env_watch
    if users is None:
        monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    else:
        monkeypatch.setenv("HYDRA_FULL_ERROR", users)
    seen = tmp_path / "env.json"
    _, result = cli("+callbacks.env_watch._target_=tests.env_watch.EnvWatch",
                    f"+callbacks.env_watch.path={seen}", process=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    env = json.loads(seen.read_text())
    assert env.get("HYDRA_FULL_ERROR") == users
    assert "VAELAB_SET_HYDRA_FULL_ERROR" not in env


def test_an_experiment_with_its_package_line_trains_with_its_settings(cli, tmp_path):
    """The check that refuses an experiment without `# @package _global_` (test_bad_inputs)
    takes the shipped experiments and a user's own with that line: their settings apply."""
    shown = subprocess.run(
        [sys.executable, str(ROOT / "src" / "train.py"), "experiment=quick_conv", "--cfg", "job"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "\ntrainer:\n" in shown.stdout and "  max_steps: 2000\n" in shown.stdout
    assert "\nexperiment:" not in shown.stdout
    folder = tmp_path / "my_conf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("# @package _global_\ntrainer:\n  max_steps: 4\n")
    tiny = [o for o in TINY if not o.startswith("trainer.max_steps")]
    run_dir, result = cli(*tiny, f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]",
                          "experiment=mine", tiny=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_metrics(run_dir)["step"] == 4


def test_a_run_without_loggers_or_callbacks_trains(tmp_path: Path):
    """``~logger`` failed in training (Lightning's LearningRateMonitor wants a logger), and a
    first version of the removed-group check refused ``~logger`` and ``~callbacks``."""
    for removed in (["~logger"], ["~logger", "~callbacks"]):
        run_dir = tmp_path / "_".join(r.strip("~") for r in removed)
        kept = [o for o in TINY if not ("~callbacks" in removed and o.startswith("callbacks."))]
        result = run_cli(run_dir, *kept, *removed, process=False)
        assert result.returncode == 0, result.stderr[-3000:]
        assert read_metrics(run_dir)["status"] == "completed"
        assert not (run_dir / "csv").exists()
