"""``src/eval.py sweep=<folder> evaluation=udr`` through the real CLI: models grouped by
their hyperparameters, a copy of a trained model with permuted and flipped latents found as
its copy (UDR_ab = 1 − α with Lasso), per-job files, metrics.json, the report, the skip."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import ROOT, read_metrics
from .test_eval import eval_cli, snapshot
from .test_sweep import sweep

UDR = ["evaluation=udr", "evaluation.num_inputs=51"]
PERMUTATION = [3, 0, 5, 1, 4, 2]  # of the 6 latents of size=small
SIGN = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, 1.0])


def permuted_copy(job: Path, copy: Path, old: str, new: str) -> Path:
    """``job`` with latent d of the copy = SIGN[d] · latent PERMUTATION[d] of the original
    (encoder heads and the decoder's first layer permuted alike: the same model), the
    override ``old`` replaced by ``new`` in the copy's recorded overrides."""
    shutil.copytree(job, copy)
    shutil.rmtree(copy / "evaluation", ignore_errors=True)
    path = copy / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    state = checkpoint["state_dict"]
    for head, sign in (("fc_mu", SIGN), ("fc_logvar", torch.ones(6))):
        state[f"encoder.{head}.weight"] = (
            state[f"encoder.{head}.weight"][PERMUTATION] * sign[:, None]
        )
        state[f"encoder.{head}.bias"] = state[f"encoder.{head}.bias"][PERMUTATION] * sign
    state["decoder.net.0.weight"] = state["decoder.net.0.weight"][:, PERMUTATION] * SIGN
    torch.save(checkpoint, path)
    overrides = copy / ".hydra" / "overrides.yaml"
    assert f"- {old}\n" in overrides.read_text()
    overrides.write_text(overrides.read_text().replace(f"- {old}\n", f"- {new}\n"))
    return copy


@pytest.fixture(scope="module")
def udr_sweep(tmp_path_factory) -> Path:
    """Two seeds of β = 1, a permuted copy of seed 0 (as seed 9) and one job alone (β = 2)."""
    sweep_dir = tmp_path_factory.mktemp("udr") / "sweep"
    trained = sweep(sweep_dir, "beta=1", "seed=0,1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    first = sweep_dir / "0_beta_vae_beta=1_seed=0"
    permuted_copy(first, sweep_dir / "2_beta_vae_beta=1_seed=9", "seed=0", "seed=9")
    permuted_copy(first, sweep_dir / "3_beta_vae_beta=2_seed=0", "beta=1", "beta=2")
    return sweep_dir


def test_udr_finds_the_permuted_copy_and_reports_it(udr_sweep: Path):
    data = udr_sweep.parent / "data"
    # every latent counted (6 steps of training leave the KLs below 0.01)
    result = eval_cli(f"sweep={udr_sweep}", *UDR, "evaluation.kl_threshold=-1", data=data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "evaluation=udr of 3 of 4 completed jobs in 1 groups" in result.stdout
    assert "no UDR for 3_beta_vae_beta=2_seed=0" in result.stdout
    first, other, copy, alone = sorted(p for p in udr_sweep.iterdir() if p.is_dir())
    record = json.loads((first / "evaluation" / "udr.json").read_text())
    assert record["status"] == "completed" and record["inputs"] == 51
    assert record["pairwise"][copy.name] == pytest.approx(0.9, abs=2e-3)  # 1 − α: a copy
    assert record["pairwise"][other.name] < 0.8  # another seed: not a copy
    # the median of two values is their mean
    expected = (record["pairwise"][copy.name] + record["pairwise"][other.name]) / 2
    assert record["metrics"]["disent/udr"] == pytest.approx(expected, abs=1e-12)
    for job in (first, other, copy):
        metrics = read_metrics(job)
        assert metrics["metrics"]["disent/udr_models"] == 3.0
        assert metrics["evaluations"]["udr"]["file"] == "evaluation/udr.json"
    assert not (alone / "evaluation" / "udr.json").exists()
    assert "disent/udr" not in read_metrics(alone)["metrics"]
    report = subprocess.run([sys.executable, str(ROOT / "src" / "report.py"), str(udr_sweep)],
                            capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert report.returncode == 0 and "disent/udr" in report.stdout, report.stderr[-2000:]

    before = snapshot(first)
    again = eval_cli(f"sweep={udr_sweep}", *UDR, "evaluation.kl_threshold=-1", data=data)
    assert again.returncode == 0 and "skipped" in again.stderr + again.stdout
    assert snapshot(first) == before  # nothing written again
    lasso = (first / "evaluation" / "udr.json").read_text()
    spearman = eval_cli(f"sweep={udr_sweep}", *UDR, "evaluation.kl_threshold=-1",
                        "evaluation.method=spearman", data=data)  # fmt: skip
    assert spearman.returncode == 0, spearman.stderr[-3000:]
    assert (first / "evaluation" / "udr.json").read_text() == lasso  # kept: a record each
    record = json.loads((first / "evaluation" / "udr[spearman].json").read_text())
    assert record["settings"]["method"] == "spearman"  # other settings: scored again
    assert record["pairwise"][copy.name] > record["pairwise"][other.name]
    # under its own key: the Lasso score in metrics.json is kept, not overwritten
    assert set(record["metrics"]) == {"disent/udr[spearman]", "disent/udr[spearman]_active_dims",
                                      "disent/udr[spearman]_models"}  # fmt: skip
    metrics = read_metrics(first)["metrics"]
    assert metrics["disent/udr"] == pytest.approx(expected, abs=1e-12)
    assert metrics["disent/udr[spearman]"] == record["metrics"]["disent/udr[spearman]"]
    evaluations = read_metrics(first)["evaluations"]
    assert evaluations["udr"]["settings"]["method"] == "lasso"
    assert evaluations["udr[spearman]"]["settings"]["method"] == "spearman"
    assert evaluations["udr[spearman]"]["file"] == "evaluation/udr[spearman].json"
    before = snapshot(first)
    again = eval_cli(f"sweep={udr_sweep}", *UDR, "evaluation.kl_threshold=-1",
                     "evaluation.method=spearman", data=data)  # fmt: skip
    assert again.returncode == 0 and "skipped" in again.stderr + again.stdout
    assert snapshot(first) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run={job}"], "compares the models of a sweep"),
        (["-m", "sweep={sweep}"], "without -m"),
    ],
)
def test_udr_of_one_run_or_through_a_launcher_is_refused(udr_sweep: Path, args, message):
    job = udr_sweep / "0_beta_vae_beta=1_seed=0"
    args = [a.format(job=job, sweep=udr_sweep) for a in args]
    result = eval_cli(*args, *UDR, data=udr_sweep.parent / "data")
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr and "Traceback" not in result.stderr
