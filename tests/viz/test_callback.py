"""``FigureCallback`` in a real (tiny) Trainer, and figures reaching TensorBoard and W&B
(offline): image tags in the event files, media files and summary keys in the run folder."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vaelab.loggers import finish_loggers, wandb_logger
from vaelab.viz import FigureCallback, save_run_figures

from .conftest import make_module

os.environ["WANDB_MODE"] = "offline"
os.environ.pop("WANDB_API_KEY", None)


def image_tags(folder: Path) -> dict[str, list[int]]:
    """TensorBoard image tags -> the steps they were written at."""
    events = EventAccumulator(str(folder), size_guidance={"images": 0})
    events.Reload()
    return {tag: [e.step for e in events.Images(tag)] for tag in events.Tags()["images"]}


def trainer(tmp_path: Path, callback: FigureCallback, loggers, max_steps: int) -> L.Trainer:
    return L.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        max_steps=max_steps,
        logger=loggers,
        callbacks=[callback],
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )


def test_figures_every_n_steps_reach_tensorboard_and_wandb(bars, tmp_path):
    callback = FigureCallback(every_n_steps=2, settings={"n_images": 4})
    tensorboard = TensorBoardLogger(tmp_path, name="tb", version="")
    wandb = wandb_logger(str(tmp_path), project="vaelab-test")
    fit = trainer(tmp_path, callback, [tensorboard, wandb], max_steps=4)
    module = make_module(3)
    fit.fit(module, datamodule=bars)  # 16 train images, batches of 8: 2 steps an epoch
    progress = tmp_path / "figures" / "progress"
    assert sorted(p.name for p in progress.iterdir()) == sorted(
        f"{name}_step{step:07d}.png"
        for name in ("reconstructions", "samples", "traversal")
        for step in (2, 4)
    )
    settings = {"n_images": 4, "include": ["samples", "traversal", "scatter", "interpolation"]}
    written = save_run_figures(module, bars, tmp_path, fit.loggers, settings, fit.global_step)
    run_dir = Path(wandb.experiment.dir).parent
    summary = dict(wandb.experiment.summary)
    finish_loggers(fit, failed=False)

    tags = image_tags(tmp_path / "tb")
    for name in ("reconstructions", "samples", "traversal"):
        assert tags[f"progress/{name}"] == [2, 4]
    for path in written:
        if path.suffix == ".png":
            assert tags[f"figures/{path.stem.replace('latent_', '')}"] == [4]

    for key in ("progress/traversal", "figures/traversal", "figures/scatter"):
        assert summary[key]["_type"] in ("image-file", "images/separated"), key
    assert summary["figures/traversal_gif"]["_type"] == "video-file"
    media = run_dir / "files" / "media"
    images = {p.parent.name + "/" + p.name.split("_")[0] for p in (media / "images").rglob("*.png")}
    assert {"progress/traversal", "figures/traversal", "figures/interpolation"} <= images
    assert any((media / "videos").rglob("*.gif"))


def test_figures_every_n_epochs_once_per_step(bars, tmp_path):
    callback = FigureCallback(every_n_epochs=2, every_n_steps=4, include=["samples"], save=False)
    fit = trainer(tmp_path, callback, [], max_steps=8)  # epochs end at steps 2, 4, 6, 8
    fit.fit(make_module(3), datamodule=bars)
    assert callback.last_step == 8 and callback.written == []
    assert not any((tmp_path / "figures" / "progress").iterdir())  # save=False: logged only
