"""Latent traversals: ranges, the decoded grid, rows ordered by KL with the KL beside each
row, and the GIF's frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vaelab.viz.figures import make_figures
from vaelab.viz.grids import PAD, to_grid
from vaelab.viz.latents import dim_scores, order_dims
from vaelab.viz.settings import FigureSettings, TraversalSettings
from vaelab.viz.traversal import gif_frames, traversal_values, traverse

from .conftest import ScaledEncoder, make_module

SCALES = [0.5, 3.0, 0.1, 1.5]  # KL order: z1, z3, z0, z2


def test_ranges_fixed_quantiles_fitted_and_auto():
    mu = torch.tensor([[0.0, 10.0], [2.0, 14.0]])  # means 1, 12; stds 1, 2
    fixed = traversal_values(mu, 5, "fixed", limits=(-2.0, 2.0))
    assert torch.allclose(fixed, torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]).repeat(2, 1))
    q = traversal_values(mu, 3, "quantiles", quantile=0.025)
    assert q[0].tolist() == pytest.approx([-1.95996, 0.0, 1.95996], abs=1e-4)
    fitted = traversal_values(mu, 3, "fitted", spread=2.0)
    assert torch.allclose(fitted, torch.tensor([[-1.0, 1.0, 3.0], [8.0, 12.0, 16.0]]))
    assert torch.equal(traversal_values(mu, 3, "auto", variational=False), fitted)
    assert torch.equal(traversal_values(mu, 3, "auto", spread=2.0), traversal_values(mu, 3))
    with pytest.raises(ValueError, match="unknown traversal range"):
        traversal_values(mu, 3, "wide")


def test_each_row_varies_one_dimension_and_holds_the_others():
    module = make_module(latent_dim=3)
    base = torch.randn(2, 3)
    values = torch.linspace(-2, 2, 5).repeat(3, 1)
    images = traverse(module, base, np.array([2, 0]), values)
    assert images.shape == (2, 2, 5, 1, 8, 8)  # base images x rows (dims) x columns (steps)
    z = base[1].clone()
    z[0] = values[0, 3]
    expected = module.objective.likelihood.mean(module.decode(z[None]))[0]
    assert torch.allclose(images[1, 1, 3], expected, atol=1e-6)
    grid = to_grid(images[0].flatten(0, 1), 5)  # the PNG's panel: rows = dims, cols = steps
    assert grid.shape == (3, PAD + 2 * (8 + PAD), PAD + 5 * (8 + PAD))


@pytest.mark.parametrize("variational", [True, False])
def test_rows_follow_the_kl_order_with_the_kl_printed(bars, figures, tmp_path, variational: bool):
    module = make_module(4, variational, ScaledEncoder(SCALES, variational))
    settings = FigureSettings(include=("traversal",), traversal=TraversalSettings(steps=5))
    written = make_figures(module, bars, tmp_path, settings)
    assert set(written) == {"traversal", "traversal_gif"}
    mu, logvar = module.encode(bars.split_images("test").float() / 255)
    scores, name = dim_scores(mu.detach(), None if logvar is None else logvar.detach())
    assert name == ("KL" if variational else "var")
    assert order_dims(scores).tolist() == [1, 3, 0, 2]
    if variational:  # logvar = 0: KL_j = 0.5 mean(mu_j^2)
        assert scores == pytest.approx(0.5 * (mu.detach().double() ** 2).mean(0).numpy(), rel=1e-5)
    texts = [t for t in figures["traversal.png"].axes[0].texts]
    texts.sort(key=lambda t: t.get_position()[1])  # top row first (image y grows downwards)
    assert [t.get_text().split()[0] for t in texts] == ["z1", "z3", "z0", "z2"]
    assert texts[0].get_text() == f"z1  {name} {scores[1]:.2f}"
    assert (tmp_path / "traversal.png").stat().st_size > 1000


def test_the_gif_has_one_frame_per_step(bars, tmp_path):
    module = make_module(3)
    t = TraversalSettings(steps=7, max_dims=2, n_base=2, frame_ms=80)
    make_figures(module, bars, tmp_path, FigureSettings(include=("traversal",), traversal=t))
    with Image.open(tmp_path / "traversal.gif") as gif:
        assert gif.n_frames == 7
        assert gif.info["loop"] == 0 and gif.info["duration"] == 80
        size = gif.size
    images = torch.rand(2, 2, 7, 1, 8, 8)
    frames = gif_frames(images)
    assert len(frames) == 7 and frames[0].size == size
    grid = to_grid(images[:, :, 0].flatten(0, 1), 2)  # base images in rows, dims in columns
    scale = size[0] // grid.shape[2]
    assert size == (grid.shape[2] * scale, (grid.shape[1] + 3) * scale) and scale >= 2


def test_one_figure_named_alone_is_a_list_of_one_and_a_typo_is_named():
    assert FigureSettings.from_config({"include": "traversal"}).include == ("traversal",)
    with pytest.raises(ValueError, match=r"figures.include: unknown \['travesal'\]"):
        FigureSettings.from_config({"include": "travesal"})  # was: unknown ['a', 'e', 'l', ...]
