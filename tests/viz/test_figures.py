"""Reconstructions, samples, interpolations, the latent scatter, the factor heat maps, the
settings, and ``save_run_figures`` as a whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vaelab.data import ImageDataModule
from vaelab.viz import save_run_figures
from vaelab.viz.figures import make_figures, pick_label, split_sample
from vaelab.viz.grids import samples
from vaelab.viz.heatmaps import factor_matrices
from vaelab.viz.interpolation import interpolate, lerp, slerp
from vaelab.viz.latents import scatter_coordinates
from vaelab.viz.settings import FIGURES, FigureSettings

from .conftest import Bars, ScaledEncoder, make_module


def test_run_figures_are_written_relative_and_complete(bars, tmp_path):
    settings = {"n_images": 4, "factors": {"num_points": 300}}
    written = save_run_figures(make_module(3), bars, tmp_path, [], settings, step=5)
    names = {p.name for p in written}
    assert names == {
        "reconstructions_samples.png",
        "reconstructions.png",
        "samples.png",
        "traversal.png",
        "traversal.gif",
        "interpolation.png",
        "latent_scatter.png",
        "kl_per_dim.png",
        "dci_importance.png",
        "mig_mutual_info.png",
    }
    assert all(not p.is_absolute() and p.parts[0] == "figures" for p in written)
    assert all((tmp_path / p).stat().st_size > 1000 for p in written)


def test_reconstruction_and_sample_grids(bars, figures, tmp_path):
    module = make_module(3)
    make_figures(
        module,
        bars,
        tmp_path,
        FigureSettings(n_images=5, n_samples=12, include=("reconstructions", "samples")),
    )
    height, width = figures["reconstructions.png"].axes[0].images[0].get_array().shape[:2]
    assert (height, width) == (2 + 2 * 10, 2 + 5 * 10)  # inputs over outputs, 5 columns
    height, width = figures["samples.png"].axes[0].images[0].get_array().shape[:2]
    assert (height, width) == (2 + 2 * 10, 2 + 8 * 10)  # 12 samples, 8 per row
    assert torch.equal(samples(module, 12, seed=3), samples(module, 12, seed=3))
    assert samples(module, 12, seed=3).shape == (12, 1, 8, 8)


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_interpolation_endpoints_are_the_reconstructions(bars, method: str):
    module = make_module(3)
    x = bars.split_images("test", n=2).float() / 255
    path = interpolate(module, x[0], x[1], steps=6, method=method)
    assert path.shape == (6, 1, 8, 8)
    recon = module.reconstruct(x)
    assert torch.allclose(path[0], recon[0], atol=1e-5)
    assert torch.allclose(path[-1], recon[1], atol=1e-5)
    if method == "linear":  # the module's own linear interpolation agrees
        assert torch.allclose(path, module.interpolate(x[0], x[1], steps=6), atol=1e-6)


def test_slerp_stays_on_the_sphere_and_lerp_on_the_segment():
    a, b, t = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0]), torch.linspace(0, 1, 5)
    assert torch.allclose(slerp(a, b, t).norm(dim=1), torch.full((5,), 3.0))
    assert torch.allclose(slerp(a, b, t)[2], torch.tensor([1.0, 1.0]) * 3 / 2**0.5)
    assert torch.allclose(lerp(a, b, t)[2], torch.tensor([1.5, 1.5]))
    assert torch.allclose(slerp(a, 2 * a, t), lerp(a, 2 * a, t))  # parallel: a straight line


def test_interpolation_figure_has_a_row_per_pair(bars, figures, tmp_path):
    settings = FigureSettings(include=("interpolation",))
    settings.interpolation.n_pairs, settings.interpolation.steps = 3, 4
    make_figures(make_module(3), bars, tmp_path, settings)
    grid = figures["interpolation.png"].axes[0].images[0].get_array()
    assert grid.shape[:2] == (2 + 3 * 10, 2 + (4 + 2) * 10)  # image a, 4 steps, image b


@pytest.mark.parametrize("variational", [True, False])
def test_scatter_uses_the_two_most_informative_dims(bars, figures, tmp_path, variational):
    module = make_module(4, variational, ScaledEncoder([0.5, 3.0, 0.1, 1.5], variational))
    make_figures(module, bars, tmp_path, FigureSettings(include=("scatter",)))
    ax = figures["latent_scatter.png"].axes[0]
    assert ax.get_xlabel().startswith("z1 (") and ax.get_ylabel().startswith("z3 (")
    images, labels = split_sample(bars, "test", 1000)
    mu, _ = module.encode(images.float() / 255)
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    expected = mu.detach().numpy()[:, [1, 3]]
    order_p, order_e = np.lexsort(points.T[::-1]), np.lexsort(expected.T[::-1])
    np.testing.assert_allclose(points[order_p], expected[order_e], atol=1e-5)
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "x"  # the first factor that varies
    assert {t.get_text() for t in legend.get_texts()} >= {str(v) for v in np.unique(labels[:, 0])}


def test_kl_per_dim_bars_are_the_mean_closed_form_kl_or_an_aes_variance(monkeypatch, tmp_path):
    import vaelab.viz.scatter as scatter

    drawn = []
    monkeypatch.setattr(scatter, "save_figure", lambda fig, path: drawn.append(fig) or path)
    mu = torch.tensor([[0.0, 2.0, 1.0], [0.0, -2.0, 3.0]])
    logvar = torch.tensor([[0.0, 0.0, np.log(4.0)], [0.0, 0.0, np.log(4.0)]])
    scatter.save_kl_per_dim(mu, logvar, tmp_path / "kl.png")
    scatter.save_kl_per_dim(mu, None, tmp_path / "var.png")
    heights = [[bar.get_height() for bar in fig.axes[0].patches] for fig in drawn]
    # KL_j = mean_b 0.5 (mu^2 + sigma^2 - 1 - log sigma^2): 0; 2; 0.5 (5 + 4 - 1 - log 4) / 1
    kl_2 = 0.5 * ((1 + 9) / 2 + 4 - 1 - np.log(4.0))
    np.testing.assert_allclose(heights[0], [0.0, 2.0, kl_2], rtol=1e-6)
    np.testing.assert_allclose(heights[1], [0.0, 4.0, 1.0], rtol=1e-6)  # population variance
    assert (
        "total 5.3 nats" in drawn[0].axes[0].get_title() and "AE" in drawn[1].axes[0].get_ylabel()
    )


def test_scatter_pca_and_an_ae_without_logvar():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(200, 3, generator=g) * torch.tensor([0.1, 5.0, 1.0])
    xy, names, dims = scatter_coordinates(mu, None, "kl")
    assert dims.tolist() == [1, 2] and names[0].startswith("z1 (var")
    xy, names, dims = scatter_coordinates(mu, None, "pca")
    assert dims is None and xy[:, 0].var() >= xy[:, 1].var()
    assert xy[:, 0].var() == pytest.approx(mu[:, 1].double().var().item(), rel=0.05)
    with pytest.raises(ValueError, match="unknown scatter method"):
        scatter_coordinates(mu, None, "tsne")


def test_factor_heat_maps_name_factors_and_latents(bars, figures, tmp_path):
    module = make_module(3)
    settings = FigureSettings(include=("factors",))
    settings.factors.num_points = 400
    written = make_figures(module, bars, tmp_path, settings)
    assert set(written) == {"dci_importance", "mig_mutual_info"}
    for name in ("dci_importance.png", "mig_mutual_info.png"):
        ax = figures[name].axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "height"]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["z0", "z1", "z2"]
        assert len(ax.texts) == 3 * 2  # every cell annotated
    m = factor_matrices(module, bars.source, num_points=400)
    assert m.importance.shape == m.mutual_info.shape == (3, 2)
    assert m.importance.sum(0) == pytest.approx([1.0, 1.0])
    assert (m.mutual_info >= 0).all() and 0 <= m.mig <= 1


def test_a_one_image_split_gets_every_figure_but_the_interpolation(tmp_path, caplog):
    dm = ImageDataModule(Bars(), batch_size=8, image_size=8, val_fraction=0.03,
                         test_fraction=0.03)  # fmt: skip
    dm.setup()
    assert len(dm.split_images("test")) == 1
    settings = FigureSettings(n_images=4)
    settings.factors.num_points = 100
    with caplog.at_level("INFO", logger="vaelab.viz.figures"):
        written = make_figures(make_module(3), dm, tmp_path, settings)
    everything = set(FIGURES) - {"interpolation", "factors"}
    assert set(written) == everything | {"traversal_gif", "dci_importance", "mig_mutual_info"}
    assert (
        "interpolation skipped: the test split has 1 image and it needs two (raise "
        "data.test_fraction for it)" in caplog.text
    )


def test_no_heat_maps_without_factors(tmp_path):
    from vaelab.data import ImageDataModule
    from vaelab.data.digits import Digits

    dm = ImageDataModule(Digits(), image_size=8, val_fraction=0.1, test_fraction=0.1)
    dm.setup()
    written = make_figures(make_module(3), dm, tmp_path, FigureSettings(include=("factors",)))
    assert written == {}


def test_settings_from_a_config_node_and_bad_keys():
    node = OmegaConf.create(
        {
            "n_images": 4,
            "include": ["samples"],
            "traversal": {"range": "quantiles", "limits": [-1, 1]},
        }
    )
    s = FigureSettings.from_config(node)
    assert s.n_images == 4 and s.include == ("samples",)
    assert s.traversal.range == "quantiles" and s.traversal.limits == (-1, 1)
    assert s.traversal.steps == 9 and FigureSettings.from_config(None).include == FIGURES
    with pytest.raises(ValueError, match=r"figures.traversal: unknown keys \['stepz'\]"):
        FigureSettings.from_config({"traversal": {"stepz": 3}})
    with pytest.raises(ValueError, match=r"figures\.include"):
        FigureSettings.from_config({"include": ["histogram"]})


def test_pick_label_by_name_or_the_first_that_varies():
    labels = np.array([[0, 1], [0, 2], [0, 3]])
    assert pick_label(labels, ["color", "shape"], None)[1] == "shape"
    column, name = pick_label(labels, ["color", "shape"], "color")
    assert name == "color" and column.tolist() == [0, 0, 0]
    assert pick_label(None, [], None) == (None, "label")
    with pytest.raises(ValueError, match="color_by"):
        pick_label(labels, ["color", "shape"], "size")
