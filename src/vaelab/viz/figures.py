"""All figures of a run in one call: ``save_run_figures`` writes them under
``<run dir>/figures/`` and sends them to the run's W&B and TensorBoard loggers."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.loggers import Logger

from vaelab.metrics.suite import SuiteResult
from vaelab.viz.common import encode_means
from vaelab.viz.grids import save_reconstructions, save_reconstructions_and_samples, save_samples
from vaelab.viz.heatmaps import FactorMatrices, factor_matrices, save_factor_heatmaps
from vaelab.viz.interpolation import save_interpolations
from vaelab.viz.latents import dim_scores, order_dims
from vaelab.viz.publish import log_figures
from vaelab.viz.scatter import save_kl_per_dim, save_latent_scatter
from vaelab.viz.settings import FigureSettings
from vaelab.viz.traversal import save_traversal, save_traversal_gif, traversal_values, traverse

log = logging.getLogger(__name__)


def split_sample(datamodule, split: str, n: int) -> tuple[torch.Tensor, np.ndarray | None]:
    """``n`` uint8 images of a split spread evenly (as ``split_images``) and their labels."""
    images = datamodule.split_images(split, n=n)
    labels = datamodule.split_labels(split)
    if labels is not None and n < len(labels):
        labels = labels[np.linspace(0, len(labels) - 1, n).round().astype(int)]
    return images, labels


def pick_label(
    labels: np.ndarray | None, names: Iterable[str], wanted: str | None
) -> tuple[np.ndarray | None, str]:
    """The label column named ``wanted``, else the first that takes more than one value."""
    names = list(names)
    if labels is None or labels.size == 0:
        return None, "label"
    labels = labels.reshape(len(labels), -1)
    names = (
        names if len(names) == labels.shape[1] else [f"label {i}" for i in range(labels.shape[1])]
    )
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"figures.scatter.color_by={wanted!r} is not one of {names}")
        j = names.index(wanted)
    else:
        varying = [j for j in range(labels.shape[1]) if len(np.unique(labels[:, j])) > 1]
        j = varying[0] if varying else 0
    return labels[:, j], names[j]


def make_figures(
    module,
    datamodule,
    fig_dir: Path,
    settings: FigureSettings,
    suffix: str = "",
    suite: SuiteResult | None = None,
) -> dict[str, Path]:
    """Write the figures in ``settings.include`` to ``fig_dir`` (``<name><suffix>.png``);
    returns ``{name: path}``. The factor heat maps show ``suite``'s DCI and MIG matrices
    when it has both, else matrices of their own from ``settings.factors.num_points``."""
    s, include, out = settings, set(settings.include), {}

    def path(name: str, ext: str = "png") -> Path:
        return fig_dir / f"{name}{suffix}.{ext}"

    if include & {"reconstructions_samples", "reconstructions"}:
        images = datamodule.split_images(s.split, n=s.n_images)
        if "reconstructions_samples" in include:
            out["reconstructions_samples"] = save_reconstructions_and_samples(
                module, images, path("reconstructions_samples"), s.n_samples, s.seed
            )
        if "reconstructions" in include:
            out["reconstructions"] = save_reconstructions(module, images, path("reconstructions"))
    if "samples" in include:
        out["samples"] = save_samples(module, path("samples"), s.n_samples, s.seed)
    if include & {"traversal", "scatter", "kl_per_dim"}:
        batch, labels = split_sample(datamodule, s.split, s.scatter.n_points)
        mu, logvar = encode_means(module, batch)
        if "traversal" in include:
            out.update(_traversal(module, datamodule, mu, logvar, s, path))
        if "kl_per_dim" in include:
            out["kl_per_dim"] = save_kl_per_dim(mu, logvar, path("kl_per_dim"))
        if "scatter" in include:
            label, name = pick_label(labels, datamodule.source.label_names, s.scatter.color_by)
            out["scatter"], _ = save_latent_scatter(
                module, batch, path("latent_scatter"), label, name, s.scatter.method
            )
    if "interpolation" in include:
        i = s.interpolation
        images = datamodule.split_images(s.split, n=2 * i.n_pairs)
        if len(images) < 2:  # a tiny split: the other figures manage with one image
            more = "data.subset" if s.split == "train" else f"data.{s.split}_fraction"
            log.info("figures: interpolation skipped: the %s split has %d image and it needs "
                     "two (raise %s for it)", s.split, len(images), more)  # fmt: skip
        else:
            out["interpolation"] = save_interpolations(
                module, images, path("interpolation"), i.steps, i.method
            )
    if "factors" in include and datamodule.source.has_factors:
        source = datamodule.source
        matrices = FactorMatrices.from_suite(suite) if suite is not None else None
        if matrices is None:
            matrices = factor_matrices(
                module, source, s.factors.num_points, s.seed, datamodule.source_images
            )
        dci, mig = save_factor_heatmaps(matrices, source.factor_names, fig_dir)
        out["dci_importance"], out["mig_mutual_info"] = dci, mig
    return out


def _traversal(module, datamodule, mu, logvar, s: FigureSettings, path) -> dict[str, Path]:
    t = s.traversal
    scores, score_name = dim_scores(mu, logvar)
    dims = order_dims(scores, t.max_dims)
    values = traversal_values(
        mu,
        t.steps,
        t.range,
        tuple(t.limits),
        t.quantile,
        t.spread,
        module.objective.variational,
        codebook=module.codebook() if hasattr(module, "codebook") else None,
    )
    base, _ = encode_means(module, datamodule.split_images(s.split, n=t.n_base))
    images = traverse(module, base, dims, values)
    out = {"traversal": save_traversal(images, dims, scores, score_name, path("traversal"))}
    if t.gif:
        out["traversal_gif"] = save_traversal_gif(images, path("traversal", "gif"), t.frame_ms)
    return out


def save_run_figures(
    module,
    datamodule,
    out_dir: str | Path,
    loggers: Iterable[Logger] = (),
    settings: FigureSettings | Mapping[str, Any] | None = None,
    step: int | None = None,
    suite: SuiteResult | None = None,
) -> list[Path]:
    """Write every figure under ``<out_dir>/figures/`` and log them to the W&B and TensorBoard
    loggers among ``loggers`` at ``step`` (default: the module's global step); returns the
    files written, relative to ``out_dir``. ``suite``: the end-of-run disentanglement
    results, whose matrices the heat maps reuse."""
    out_dir = Path(out_dir)
    settings = FigureSettings.from_config(settings)
    figures = make_figures(module, datamodule, out_dir / "figures", settings, suite=suite)
    log_figures(loggers, figures, module.global_step if step is None else step)
    return [p.relative_to(out_dir) for p in figures.values()]
