"""On a CUDA GPU, through the real CLI: precisions, compile, images on the GPU, the objectives
with batch statistics, kill-and-resume and the evaluation suite (``pytest -m gpu``; part 1 of
``make gpu-check``). Skipped, with the reason, where no GPU is."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import ROOT, TINY, read_metrics, run_cli
from .killer import kill_at

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

GPU = [o for o in TINY if o != "trainer=cpu"] + ["trainer=gpu"]
LOSSES = ("train/loss", "val/elbo", "test/elbo", "test/loss")


def train(run_dir: Path, *overrides: str) -> dict:
    result = run_cli(run_dir, *GPU, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "used: True" in result.stdout + result.stderr  # Lightning: "GPU available ... used"
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["step"] == 6
    assert all(math.isfinite(metrics["metrics"][k]) for k in LOSSES), metrics["metrics"]
    return metrics


# Each value of each setting, and each pair of precision and compile, in four runs;
# reduce-overhead: the networks replayed as CUDA graphs.
@pytest.mark.parametrize(
    ("precision", "compiled", "data_device"),
    [
        ("32-true", "false", "cpu"),
        ("bf16-mixed", "false", "cuda"),
        ("32-true", "reduce-overhead", "cuda"),
        ("bf16-mixed", "true", "cpu"),
    ],
)
def test_trains_on_the_gpu(tmp_path: Path, precision: str, compiled: str, data_device: str):
    train(
        tmp_path / "run", f"precision={precision}", f"compile={compiled}",
        f"data.device={data_device}",
    )  # fmt: skip


@pytest.mark.parametrize("model", ["factor_vae", "beta_tcvae", "dip_vae"])
def test_objectives_with_batch_statistics_train_on_the_gpu(tmp_path: Path, model: str):
    train(tmp_path / "run", f"model={model}", "data.device=cuda")


def test_killed_on_the_gpu_resumes_and_matches_an_uninterrupted_run(tmp_path: Path, monkeypatch):
    # tests.killer, keeping what PYTHONPATH held (the GPU machine's carried packages)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    runs = tmp_path / "outputs" / "runs" / "day"
    overrides = [f"paths.log_dir={tmp_path / 'outputs'}", "trainer.deterministic=true",
                 "data.device=cuda"]  # fmt: skip
    whole = train(runs / "a_whole", *overrides)
    result = run_cli(runs / "b_killed", *GPU, *overrides, *kill_at(3))
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    resumed = train(runs / "c_resumed", *overrides)  # the same command again
    assert resumed["start_step"] == 3
    assert {k: resumed["metrics"][k] for k in LOSSES} == {k: whole["metrics"][k] for k in LOSSES}


def test_the_evaluation_suite_runs_on_the_gpu(tmp_path: Path):
    metrics = train(
        tmp_path / "run", "evaluation=full", "evaluation.iwae_k=10", "evaluation.iwae_images=8",
        "evaluation.suite.num_train=300", "evaluation.suite.num_test=200",
        "evaluation.suite.num_variance_estimate=300", "evaluation.suite.batch_size=16",
        "evaluation.suite.downstream_sizes=[10,100]", "evaluation.suite.fairness_per_class=5",
        "evaluation.fid.features={_target_:vaelab.metrics.sample_quality.PixelFeatures}",
        "evaluation.fid.num_samples=200",
    )  # fmt: skip
    for key in ("mig", "dci[gbt]/d", "sap", "modularity", "beta_vae_eval", "factor_vae_eval", "irs",
                "downstream_lr_100", "downstream_gbt_100"):  # fmt: skip
        assert 0.0 <= metrics["metrics"][f"disent/{key}"] <= 1.0, key
    assert metrics["metrics"]["test/fid"] > 0 and metrics["metrics"]["test/kid_std"] >= 0


def test_the_suite_gives_the_cpu_values_on_the_gpu():
    """A fixed encoder: the GPU's codes are the CPU's to float32 rounding, so the scores agree;
    every batch reaches the encoder on the device asked for."""
    from vaelab.data.dsprites import ProceduralDSprites
    from vaelab.metrics.suite import run_suite

    from .metrics.test_code_table import SMALL

    seen: list[str] = []

    def centroid(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.device.type)
        grid = torch.arange(64.0, device=x.device) / 63
        img = x[:, 0]
        mass = img.sum((1, 2)).clamp_min(1.0)
        cx, cy = (img.sum(1) * grid).sum(1) / mass, (img.sum(2) * grid).sum(1) / mass
        return torch.stack([cx, cy, mass / 1000], 1)

    cpu = run_suite(ProceduralDSprites(), centroid, 0, device="cpu", **SMALL).values
    assert set(seen) == {"cpu"}
    seen.clear()
    gpu = run_suite(ProceduralDSprites(), centroid, 0, device="cuda", **SMALL).values
    assert set(seen) == {"cuda"}
    scores = [k for k in cpu if "/time/" not in k]
    assert gpu["disent/encoded_images"] == cpu["disent/encoded_images"]
    np.testing.assert_allclose([gpu[k] for k in scores], [cpu[k] for k in scores], atol=0.02)


@pytest.mark.parametrize("model", ["beta_vae", "factor_vae"])
def test_a_stack_trains_on_the_gpu_as_its_members_alone(tmp_path: Path, model: str):
    """Vectorized (auto on a GPU), both ways of the stacked test on the CPU, with SGD. In
    float32 proper: cuDNN convolves in TF32 by default, whose rounding (~1e-3) differs between
    a grouped convolution and K plain ones (on an H100, 2026-12-05, FactorVAE's logged TC and
    discriminator accuracy then differed by 1% and one image in 32). FactorVAE's discriminator
    steps with Adam (its paper's), whose first steps are about lr · sign(gradient): they turn
    float32 rounding into lr-sized weight differences (there, without TF32, a logged TC
    differing by 4.3e-5), so its lr is 1e-6 here, as the CPU tests' SGD for the VAE."""
    from .test_stacked import assert_same_runs, sweep

    grid = [f"model={model}", "seed=0,1", "trainer=gpu", "data.device=cuda"]
    if model == "factor_vae":
        grid.append("model.objective.lr=1e-6")
    float32 = {"NVIDIA_TF32_OVERRIDE": "0"}  # cuBLAS and cuDNN: no TF32
    result = sweep(tmp_path / "stack", *grid, stacked=True, env=float32)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "used: True" in result.stdout + result.stderr
    result = sweep(tmp_path / "single", *grid, stacked=False, env=float32)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_runs(tmp_path / "stack", tmp_path / "single", 2)
