"""Figures of a tiny run through the real CLI, logged to W&B (offline) and TensorBoard.

Skipped until ``vaelab.training.run`` calls ``save_run_figures`` (the integration step)."""

from __future__ import annotations

import inspect
import json

import pytest

import vaelab.training
from tests.conftest import TINY

from .test_callback import image_tags

# The DCI / MIG heat maps are tested in-process (test_figures.py): on dSprites their boosted
# trees take tens of seconds.
SHOWN = ["reconstructions_samples", "samples", "traversal", "interpolation", "scatter"]

integrated = "save_run_figures" in inspect.getsource(vaelab.training)
pytestmark = pytest.mark.skipif(not integrated, reason="run() does not call save_run_figures yet")


def test_a_run_writes_and_logs_every_figure(cli):
    tiny = [o for o in TINY if not o.startswith("figures.")]
    run_dir, result = cli(
        *tiny,
        "model=vae",
        "logger=[wandb,tensorboard]",
        "callbacks.figures.every_n_steps=3",
        "figures.n_images=4",
        f"figures.include=[{','.join(SHOWN)}]",
        tiny=False,
        process=True,  # its own process: the offline line is said once a process
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # offline W&B is said once, by vaelab; wandb's ~30 lines (its anonymous-setting warning,
    # its offline notice and sync hint, the run's history) are not printed again
    output = result.stdout + result.stderr
    assert output.count("W&B: no API key found (or WANDB_MODE=offline), logging offline") == 1
    assert "wandb:" not in output
    figures = json.loads((run_dir / "metrics.json").read_text())["figures"]
    assert {f.split("/")[1] for f in figures} == {
        "reconstructions_samples.png",
        "samples.png",
        "traversal.png",
        "traversal.gif",
        "interpolation.png",
        "latent_scatter.png",
    }
    assert all((run_dir / f).stat().st_size > 1000 for f in figures)

    tags = image_tags(run_dir / "tensorboard")
    assert tags["figures/traversal"] == [6] and tags["figures/scatter"] == [6]
    assert tags["progress/traversal"] == [3, 6]

    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
    media = {
        p.parent.name + "/" + p.name.rsplit("_", 2)[0]
        for p in (wandb_run / "files" / "media").rglob("*.*")
    }
    assert {
        "figures/traversal",
        "figures/scatter",
        "figures/traversal_gif",
        "progress/traversal",
        "progress/samples",
    } <= media
