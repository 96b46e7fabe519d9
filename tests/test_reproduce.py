"""``make reproduce``: the grid and the papers' settings, and a tiny version of the same
command on this CPU, run in two pieces, whose report sets the published values beside ours."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from .conftest import CONF, ROOT, TINY, read_metrics

ROWS = {  # conf/reproduce option: (model, β, γ, steps)
    "beta_vae_b1": ("beta_vae", 1.0, None, 300_000),
    "beta_vae_b4": ("beta_vae", 4.0, None, 300_000),
    "beta_vae_b16": ("beta_vae", 16.0, None, 300_000),
    "factor_vae_g10": ("factor_vae", 1.0, 10.0, 150_000),
    "factor_vae_g40": ("factor_vae", 1.0, 40.0, 150_000),
    "beta_tcvae_b1": ("beta_tcvae", 1.0, None, 300_000),
    "beta_tcvae_b6": ("beta_tcvae", 6.0, None, 300_000),
}


def test_the_grid_is_seven_rows_by_three_seeds():
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("train", ["experiment=reproduce_dsprites"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params.reproduce.split(",") == list(ROWS) and params.seed == "0,1,2"
    subdir = OmegaConf.to_container(cfg.hydra.sweep)["subdir"]
    assert subdir == "${reproduce.name}_seed=${seed}"  # no job number: it runs in pieces


@pytest.mark.parametrize("row", list(ROWS))
def test_each_row_has_the_papers_settings(row: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("train", ["experiment=reproduce_dsprites", f"reproduce={row}"])
    model, beta, gamma, steps = ROWS[row]
    assert (cfg.model.name, cfg.beta, cfg.trainer.max_steps) == (model, beta, steps)
    assert gamma is None or cfg.model.gamma == gamma
    assert (cfg.arch.name, cfg.arch.latent_dim, cfg.data.batch_size) == ("conv", 10, 64)
    assert cfg.optimizer.lr == 1e-4 and cfg.data.source._target_.endswith("ProceduralDSprites")
    assert list(cfg.evaluation.disentanglement) == [
        "mig", "dci", "sap", "modularity", "irs", "unsupervised", "beta_vae", "factor_vae",
        "downstream", "fairness", "infomec", "dci_es", "dci_rf",
    ]  # fmt: skip
    assert cfg.evaluation.fid is None  # FID is not among the published values
    assert cfg.reproduce.name == row
    assert all(p["source"] for p in cfg.reproduce.published.values())


TINY_SUITE = [
    *[o for o in TINY if not o.startswith(("evaluation=", "figures.include"))],
    "figures.include=[]",
    "evaluation.iwae_k=10",
    "evaluation.iwae_images=8",
    "evaluation.suite.num_train=200",
    "evaluation.suite.num_test=100",
    "evaluation.suite.num_variance_estimate=200",
    "evaluation.suite.batch_size=8",
    # the published values are MIG and the FactorVAE score: the tiny run measures those only
    "evaluation.disentanglement=[mig,factor_vae]",
]


def make_reproduce(log_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """``make reproduce ARGS=...`` with this interpreter (no venv check)."""
    arg = " ".join([*args, f"paths.log_dir={log_dir}", *TINY_SUITE])
    cmd = ["make", "-s", "reproduce", "STAMP=", f"PY={sys.executable}", f"ARGS={arg}",
           f"REPRODUCE_DIR={log_dir / 'pieces'}"]  # fmt: skip
    env = {**os.environ, "VAELAB_DATA_DIR": str(log_dir / "data")}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_tiny_reproduction_in_two_pieces_reports_beside_the_published_values(tmp_path: Path):
    sweep = tmp_path / "pieces"  # REPRODUCE_DIR: where the jobs and the report go
    first = make_reproduce(tmp_path, "reproduce=beta_vae_b1", "seed=0")
    assert first.returncode == 0, first.stderr[-3000:]
    done = (sweep / "beta_vae_b1_seed=0" / "metrics.json").read_bytes()

    second = make_reproduce(tmp_path, "reproduce=beta_vae_b1,factor_vae_g10", "seed=0")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "already holds a completed run of this config: skipped" in second.stdout + second.stderr
    assert (sweep / "beta_vae_b1_seed=0" / "metrics.json").read_bytes() == done  # not retrained
    assert read_metrics(sweep / "factor_vae_g10_seed=0")["status"] == "completed"

    report = (sweep / "report.md").read_text()
    rows = {line.split(" | ")[1]: line for line in report.splitlines() if "_seed" not in line
            and line.startswith("| ") and "reproduce" not in line}  # fmt: skip
    assert set(rows) == {"beta_vae_b1", "factor_vae_g10"}
    assert "| 1 | 6 |" in rows["beta_vae_b1"]  # one seed, 6 steps trained
    assert "[0.10]" in rows["beta_vae_b1"] and "[0.82]" in rows["factor_vae_g10"]
    assert "- beta_vae_b1: disent/mig 0.10 from Chen et al. 2018 (VAE)" in report
    assert "- factor_vae_g10: disent/factor_vae_eval 0.82 from Kim & Mnih 2018" in report
    with open(sweep / "results.csv") as f:
        measured = {r["reproduce"]: float(r["disent/mig"]) for r in csv.DictReader(f)}
    assert f"{measured['beta_vae_b1']:.3f} [0.10]" in rows["beta_vae_b1"]
    assert (sweep / "metrics_vs_reproduce.png").stat().st_size > 0
