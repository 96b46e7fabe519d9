"""The AE-vs-VAE figure, and ``python src/compare.py experiment=ae_vs_vae`` at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, run_cli
from tests.killer import kill_at
from vaelab.viz import ae_vs_vae_figure
from vaelab.viz.latents import scatter_coordinates

from .conftest import make_module

TINY_COMPARE = [
    "experiment=ae_vs_vae",
    "trainer=cpu",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "trainer.enable_model_summary=false",
    "~callbacks.progress",
    "compare.n_samples=9",
]


def test_the_figure_shows_samples_and_scatters_with_prior_contours(bars, figures, tmp_path):
    ae, vae = make_module(2, variational=False), make_module(2)
    images = bars.split_images("test")
    labels = bars.split_labels("test")[:, 0]
    path = ae_vs_vae_figure(ae, vae, images, labels, tmp_path / "cmp.png", n_samples=9)
    assert path.stat().st_size > 5000
    axes = figures["cmp.png"].axes
    assert [ax.get_title() for ax in axes[:2]] == [
        "AE: decodes of z ~ N(0, I)",
        "VAE: decodes of z ~ N(0, I)",
    ]
    assert axes[0].images[0].get_array().shape[:2] == (2 + 3 * 10, 2 + 3 * 10)  # 9 = 3 x 3
    for ax, module in zip(axes[2:4], (ae, vae), strict=True):
        radii = sorted(
            round(float(np.hypot(*line.get_xydata()[0])), 3)
            for line in ax.lines
            if len(line.get_xydata())
        )
        assert radii == [1.0, 2.0, 3.0]  # the N(0, I) contours
        mu, logvar = module.encode(images.float() / 255)
        xy, _, dims = scatter_coordinates(mu.detach(), None if logvar is None else logvar.detach())
        assert sorted(dims) == [0, 1]  # latent 2: the scatter is the whole latent space
        points = np.concatenate([c.get_offsets() for c in ax.collections])
        assert len(points) == len(images)
        assert np.allclose(np.sort(points, 0), np.sort(xy, 0), atol=1e-5)
    assert {t.get_text() for t in axes[3].get_legend().get_texts()} >= {"0", "7"}


@pytest.mark.parametrize("own", [False, True])
def test_the_experiment_runs_through_its_cli(tmp_path, monkeypatch, own: bool):
    """As given, and as a config of the user's own (VAELAB_CONFIG_PATH): each side is composed
    again with that search path (it was lost, and the side runs could not find the config)."""
    args = TINY_COMPARE
    if own:
        (tmp_path / "conf" / "experiment").mkdir(parents=True)
        text = (ROOT / "conf" / "experiment" / "ae_vs_vae.yaml").read_text()
        (tmp_path / "conf" / "experiment" / "mine.yaml").write_text(text)
        monkeypatch.setenv("VAELAB_CONFIG_PATH", str(tmp_path / "conf"))
        args = ["experiment=mine", *TINY_COMPARE[1:]]
    run_dir = tmp_path / "compare"
    result = run_cli(run_dir, *args, script="compare.py", process=False)
    assert result.returncode == 0, result.stderr[-3000:]
    figure = run_dir / "figures" / "ae_vs_vae.png"
    assert figure.stat().st_size > 10_000
    for model in ("ae", "vae"):
        side = run_dir / model
        assert (side / "checkpoints" / "last.ckpt").is_file()
        metrics = (side / "metrics.json").read_text()
        assert f'"model": "{model}"' in metrics and '"status": "completed"' in metrics
        state = torch.load(side / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        assert state["encoder.fc_mu.weight"].shape[0] == 2  # latent 2 on both sides
        assert ("encoder.fc_logvar.weight" in state) == (model == "vae")


def test_ctrl_c_in_compare_is_one_line_and_status_130(tmp_path: Path, monkeypatch):
    """Ctrl-C during the AE side's training: one line (no traceback), exit 130, as train.py."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.killer
    run_dir = tmp_path / "compare"
    result = run_cli(run_dir, *TINY_COMPARE, *kill_at(2, "SIGINT"), script="compare.py")
    assert result.returncode == 130, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted: the ae run stopped at step 2"), line
    assert "compare.py" in line and "new run folder" in line
    assert not (run_dir / "vae").exists() and not (run_dir / "figures").exists()
    record = json.loads((run_dir / "ae" / "metrics.json").read_text())
    assert record["status"] == "interrupted"
    assert record["error"] == line.removeprefix("interrupted: ")  # not "the same command resumes"


def test_bad_input_to_compare_leaves_no_run_folder(tmp_path: Path):
    run_dir = tmp_path / "compare"
    result = run_cli(run_dir, *TINY_COMPARE, "beta=-1", script="compare.py", process=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "`beta` must be >= 0" in result.stderr
    assert not run_dir.exists()  # the folder Hydra made for the run is gone again
    # refused as a side's training starts (its data file is missing): its folder goes too
    missing = ["data=images", f"data.path={tmp_path / 'nope.npy'}", "data.channels=1"]
    result = run_cli(run_dir, *TINY_COMPARE, *missing, script="compare.py", process=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert not run_dir.exists(), sorted(run_dir.rglob("*"))


def test_without_an_experiment_compare_takes_ae_vs_vae_and_refuses_a_sweep(tmp_path: Path):
    """No experiment= trained the default β-VAE's settings (all of dSprites); a sweep's
    experiment (compare_2024) trained an AE and a VAE with its settings."""
    shown = run_cli(tmp_path / "cfg", "--cfg", "job", script="compare.py", process=False)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "_target_: vaelab.data.digits.Digits" in shown.stdout and "latent_dim: 2" in shown.stdout
    run_dir = tmp_path / "sweep"
    refused = run_cli(run_dir, "experiment=compare_2024", script="compare.py", process=False)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: experiment=compare_2024 is a sweep (over model")
    assert not run_dir.exists()
