"""A trained run folder read back: its saved config, its data module and its model with the
weights of a checkpoint, exactly as training built them. Nothing in the folder is changed.

A run folder holds ``.hydra/config.yaml`` (the composed config), ``checkpoints/last.ckpt``
and ``metrics.json`` (written by ``vaelab.training.run``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vaelab.errors import ConfigError

CONFIG = Path(".hydra") / "config.yaml"
LAST = Path("checkpoints") / "last.ckpt"
METRICS = "metrics.json"


@dataclass
class LoadedRun:
    """A run rebuilt from its folder: ``module`` in eval mode on ``device``, the data module
    that trained it, its config and ``metrics.json``. Images in and out are ``[N, C, H, W]``:
    uint8 (as the data holds them) or floats in [0, 1] in; mean images in [0, 1] out, on the
    CPU. Every method runs the model in eval mode without gradients."""

    path: Path
    cfg: DictConfig
    record: dict[str, Any]
    checkpoint: Path
    step: int
    module: Any  # VAEModule
    datamodule: Any  # ImageDataModule

    @property
    def metrics(self) -> dict[str, float]:
        """The run's final values (``metrics.json``'s ``metrics``)."""
        return dict(self.record.get("metrics", {}))

    def images(self, split: str = "test", n: int | None = None) -> torch.Tensor:
        """uint8 images of a split (train / val / test), all or ``n`` spread evenly over it
        (all when the split holds fewer than ``n``)."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split={split!r}: choose train, val or test")
        self.datamodule.setup()
        return self.datamodule.split_images(split, n=n)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mu, logvar)`` of q(z|x), ``[N, D]`` each (logvar None for an AE), of images
        ``[N, C, H, W]`` (one image ``[C, H, W]`` is a batch of one)."""
        from vaelab.viz.common import encode_means

        if images.dim() == 3:
            images = images[None]
        return encode_means(self.module, images)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean images E[x | z] of codes ``z [N, D]``."""
        from vaelab.viz.common import evaluating

        with evaluating(self.module):
            logits = self.module.decode(z.float().to(self.module.device))
            return self.module.objective.likelihood.mean(logits).cpu()

    def sample(self, n: int = 32, seed: int = 0) -> torch.Tensor:
        """Mean images of ``n`` draws of z ~ N(0, I) from a generator seeded with ``seed``."""
        from vaelab.viz.grids import samples

        return samples(self.module, n, seed)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Mean reconstructions E[x | z = mu(x)]."""
        from vaelab.viz.grids import reconstructions

        return reconstructions(self.module, images)

    def traverse(
        self,
        images: torch.Tensor,
        dims: list[int] | int | None = None,
        steps: int = 9,
        limits: tuple[float, float] = (-2.5, 2.5),
    ) -> torch.Tensor:
        """``[N, len(dims), steps, C, H, W]``: for each image, z = mu(x) with dimension
        ``dims[r]`` set to ``steps`` values in ``limits`` (default: every dimension); a
        quantized model's dimensions step through their codebook values instead."""
        from vaelab.viz.traversal import traversal_values, traverse

        mu, _ = self.encode(images)
        if dims is None:
            dims = list(range(mu.shape[1]))
        dims = [dims] if isinstance(dims, int) else list(dims)
        outside = [d for d in dims if not -mu.shape[1] <= d < mu.shape[1]]
        if outside:
            raise ValueError(f"dims {outside} are not latent dimensions: the model has "
                             f"{mu.shape[1]} (0 to {mu.shape[1] - 1})")  # fmt: skip
        values = traversal_values(mu, steps, "fixed", limits, codebook=self.module.codebook())
        return traverse(self.module, mu, np.asarray(dims), values)

    def interpolate(
        self, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 10, method: str = "linear"
    ) -> torch.Tensor:
        """``[steps, C, H, W]`` along the path from mu(x_a) to mu(x_b) (linear or slerp)."""
        from vaelab.viz.interpolation import interpolate

        return interpolate(self.module, x_a, x_b, steps, method)

    def save_figures(self, out_dir: str | Path | None = None, **settings: Any) -> list[Path]:
        """The end-of-run figures (``figures`` settings of the run, updated by ``settings``)
        written under ``<out_dir>/figures/`` (default: the run folder); returns their paths."""
        from vaelab.viz import save_run_figures

        figures = OmegaConf.merge(self.cfg.figures, settings)
        self.datamodule.setup()
        out_dir = Path(out_dir) if out_dir is not None else self.path
        paths = save_run_figures(self.module, self.datamodule, out_dir, (), figures, self.step)
        return [out_dir / p for p in paths]


def run_config(run_dir: str | Path) -> DictConfig:
    """The run's saved config with ``paths.output_dir`` pointing at the folder itself."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(
            f"`run`={run_dir} is not a folder; give a run folder written by vaelab-train "
            f"(src/train.py; it holds .hydra/config.yaml and checkpoints/)."
        )
    saved = run_dir / CONFIG
    if not saved.is_file():
        raise ConfigError(
            f"{run_dir} is not a vaelab run folder: it has no {CONFIG}, the config the run was "
            f"trained with. Give the folder of one run (a sweep's job folder, or a folder under "
            f"outputs/runs/); a whole sweep is evaluated with src/eval.py sweep=<folder>."
        )
    try:
        cfg = OmegaConf.load(saved)
    except Exception as error:
        raise ConfigError(f"{saved} cannot be read as YAML ({error}).") from None
    cfg.paths.output_dir = str(run_dir.resolve())
    return cfg


# The parts of a saved config that load_run builds, and where their classes may come from:
# a run folder from someone else must not choose code to run through ``_target_``.
BUILT_SECTIONS = ("data", "model", "arch", "beta_schedule", "optimizer")
TRUSTED_TARGETS = ("vaelab.", "torch.optim.")


def _targets(node: Any, where: str) -> list[tuple[str, Any]]:
    """Every ``_target_`` under ``node`` (plain containers), with its dotted key."""
    if isinstance(node, dict):
        found = [(f"{where}._target_", node["_target_"])] if "_target_" in node else []
        for key, value in node.items():
            found += _targets(value, f"{where}.{key}")
        return found
    if isinstance(node, list):
        return [t for i, value in enumerate(node) for t in _targets(value, f"{where}[{i}]")]
    return []


def check_targets(cfg: DictConfig, source: str | Path) -> None:
    """``ConfigError`` unless every class the sections in ``BUILT_SECTIONS`` name is vaelab's
    own or a torch optimizer (read unresolved, so an interpolation cannot hide one)."""
    for section in BUILT_SECTIONS:
        node = OmegaConf.to_container(cfg[section], resolve=False) if section in cfg else None
        for key, target in _targets(node, section):
            if not (isinstance(target, str) and target.startswith(TRUSTED_TARGETS)):
                raise ConfigError(
                    f"{source} names `{target}` as `{key}`; a run folder is rebuilt only from "
                    f"vaelab's own classes (vaelab.*) and torch optimizers (torch.optim.*), "
                    f"because building anything else would run code that the folder chose. It "
                    f"was not built; evaluate runs trained by vaelab."
                )


def run_record(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``metrics.json`` (empty when there is none)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON ({error}); it was not changed.") from None


def pick_device(device: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; otherwise the device named."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"`device`={device!r} is not a device: use auto (the GPU when there is one), cpu, "
            f"cuda or cuda:<index>."
        ) from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"`device`={device} was asked for but no GPU is visible; use "
                          f"device=cpu or device=auto.")  # fmt: skip
    return chosen


def load_run(
    run_dir: str | Path,
    ckpt_path: str | Path | None = None,
    device: str = "auto",
    allow_unsafe_checkpoints: bool = False,
) -> LoadedRun:
    """Rebuild a run's model and data from its own config and load ``ckpt_path`` (default
    ``checkpoints/last.ckpt``). ``ConfigError`` when the folder, its config, its checkpoint
    or its data cannot be used; the data are checked but not loaded (``datamodule.setup``).
    Only vaelab's classes are built (``check_targets``) and the checkpoint is read with
    ``weights_only=True`` unless ``allow_unsafe_checkpoints``: loading runs no code from the
    folder."""
    from hydra.utils import instantiate  # imported here: the CLI answers bad input quickly

    from vaelab.checkpoint import load_weights
    from vaelab.training import build_module

    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    checkpoint = Path(ckpt_path) if ckpt_path is not None else run_dir / LAST
    if ckpt_path is None and not checkpoint.is_file():
        raise ConfigError(
            f"{run_dir} has no checkpoint {LAST}: its training stopped before the first "
            f"checkpoint, or the folder was copied without it. Give ckpt_path=<file> to "
            f"evaluate another checkpoint of the same model."
        )
    if not checkpoint.is_file():
        raise ConfigError(f"`ckpt_path`={ckpt_path} is not a file; give the path of a checkpoint "
                          f"of this run, such as {run_dir / LAST}.")  # fmt: skip
    cfg.compile = False  # evaluation runs the plain networks (same weights, same values)
    check_targets(cfg, run_dir / CONFIG)
    try:
        module = build_module(cfg)
        datamodule = instantiate(cfg.data)
    except Exception as error:
        raise ConfigError(
            f"the config saved in {run_dir / CONFIG} does not build with this version of "
            f"vaelab ({type(error).__name__}: {str(error).splitlines()[0]}). It may come from "
            f"an older or newer version; evaluate it with the version that trained it."
        ) from None
    datamodule.check_available()
    step = load_weights(checkpoint, module, allow_unsafe_checkpoints)
    module.to(pick_device(device)).eval()
    return LoadedRun(run_dir, cfg, run_record(run_dir), checkpoint, step, module, datamodule)
