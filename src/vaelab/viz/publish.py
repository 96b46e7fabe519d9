"""Send figure files to the run's loggers: PNGs as images to W&B (``WandbLogger.log_image``)
and TensorBoard (``add_image``), GIFs as videos to W&B; other loggers are left alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from PIL import Image


def read_png(path: str | Path) -> np.ndarray:
    """An RGB uint8 array ``[H, W, 3]`` of an image file."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def log_figures(
    loggers: Iterable[Logger], figures: Mapping[str, Path], step: int, prefix: str = "figures"
) -> list[str]:
    """Log each ``name -> file`` as ``<prefix>/<name>`` at ``step``; returns the keys sent."""
    loggers = list(loggers)
    keys = []
    for name, path in figures.items():
        key = f"{prefix}/{name}"
        gif = Path(path).suffix.lower() == ".gif"
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                if gif:
                    import wandb  # only when W&B is on

                    logger.log_metrics({key: wandb.Video(str(path), format="gif")}, step=step)
                else:
                    logger.log_image(key=key, images=[read_png(path)], step=step)
            elif isinstance(logger, TensorBoardLogger) and not gif:
                logger.experiment.add_image(key, read_png(path), step, dataformats="HWC")
        keys.append(key)
    return keys
