"""The procedural dSprites: indexing, sprite geometry, rendering paths and the image cache."""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pytest
import torch

from vaelab.data import DataError, dsprites
from vaelab.data.dsprites import SHAPE_NAMES, ProceduralDSprites, inside_shape

STRIDES = np.array([245760, 40960, 1024, 32, 1])
TARGETS = {  # dSprites' pixel counts at orientation 0, scale 0.5 .. 1.0
    "square": [100, 144, 196, 256, 324, 400],
    "ellipse": [76, 104, 144, 184, 228, 288],
    "heart": [58, 84, 108, 140, 182, 222],
}


@pytest.fixture(scope="module")
def data() -> ProceduralDSprites:
    return ProceduralDSprites()


def grid(shape: int, scale: int, orientation: int, step: int = 1) -> np.ndarray:
    """Classes of one sprite at every ``step``-th position, ``[n, 5]``."""
    px, py = np.meshgrid(np.arange(0, 32, step), np.arange(0, 32, step), indexing="ij")
    n = px.size
    return np.stack(
        [np.full(n, shape), np.full(n, scale), np.full(n, orientation), px.ravel(), py.ravel()],
        axis=1,
    )


def centre(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return 16 + 32 * classes[:, 3] / 31, 16 + 32 * classes[:, 4] / 31


def moments(mask: torch.Tensor) -> tuple[float, float, float, float, float]:
    """Centroid (x, y) and second moments (xx, xy, yy) in up-pointing coordinates."""
    rows, cols = np.nonzero(mask.numpy())
    x, y = cols.mean(), rows.mean()
    dx, du = cols - x, -(rows - y)
    return x, y, (dx * dx).mean(), (dx * du).mean(), (du * du).mean()


def test_factors_and_indexing(data: ProceduralDSprites) -> None:
    assert len(data) == 737280
    assert data.name == "dsprites" and data.image_shape == (1, 64, 64)
    assert tuple(data.factor_sizes) == (3, 6, 40, 32, 32)
    assert list(data.strides) == list(STRIDES)
    assert SHAPE_NAMES == ("square", "ellipse", "heart")
    for values, size in zip(data.factor_values, data.factor_sizes, strict=True):
        assert len(values) == size
    np.testing.assert_allclose(data.factor_values[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert data.factor_values[2][-1] == pytest.approx(2 * math.pi)
    classes = data.sample_factors(2000, np.random.default_rng(0))
    np.testing.assert_array_equal(data.factors_of(data.index_of(classes)), classes)
    picked = np.array([[0, 0, 0, 0, 0], [2, 5, 39, 31, 31], [1, 3, 17, 4, 29], [0, 1, 0, 0, 1]])
    np.testing.assert_array_equal(data.index_of(picked), picked @ STRIDES)
    assert data.index_of(picked)[1] == 737279


def test_images_are_binary_uint8(data: ProceduralDSprites) -> None:
    classes = data.sample_factors(300, np.random.default_rng(1))
    images = data.render(classes)
    assert images.dtype == torch.uint8 and images.shape == (300, 1, 64, 64)
    assert images.is_contiguous()
    assert set(images.unique().tolist()) == {0, 255}
    assert (images > 0).flatten(1).any(1).all()  # every image shows its sprite


@pytest.mark.parametrize("shape", range(3))
def test_pixel_counts_match_dsprites(data: ProceduralDSprites, shape: int) -> None:
    for scale, target in enumerate(TARGETS[SHAPE_NAMES[shape]]):
        counts = (data.render(grid(shape, scale, 0, step=3)) > 0).flatten(1).sum(1).float()
        assert counts.mean().item() == pytest.approx(target, rel=0.05), (shape, scale)


def test_square_at_integer_centre_has_exact_area(data: ProceduralDSprites) -> None:
    for scale in range(6):
        classes = np.array([[0, scale, 0, 0, 0], [0, scale, 0, 31, 31], [0, scale, 0, 0, 31]])
        counts = (data.render(classes) > 0).flatten(1).sum(1)
        side = round(20 * data.factor_values[1][scale])
        assert counts.tolist() == [side * side] * 3


def test_window_render_matches_full_image_evaluation(data: ProceduralDSprites) -> None:
    """Evaluating the documented equations on all 64x64 pixels gives the same images."""
    classes = data.sample_factors(200, np.random.default_rng(2))
    theta = data.factor_values[2][classes[:, 2]]
    scale = data.factor_values[1][classes[:, 1]] + np.take(dsprites.SCALE_OFFSET, classes[:, 0])
    cx, cy = centre(classes)
    rows, cols = np.meshgrid(np.arange(64.0), np.arange(64.0), indexing="ij")
    dx, dy = cols[None] - cx[:, None, None], rows[None] - cy[:, None, None]
    c, s = (np.cos(theta) / scale)[:, None, None], (np.sin(theta) / scale)[:, None, None]
    u, v = torch.as_tensor(c * dx - s * dy), torch.as_tensor(-s * dx - c * dy)
    expected = torch.stack([inside_shape(int(k), u[i], v[i]) for i, k in enumerate(classes[:, 0])])
    mismatched = (data.render(classes)[:, 0] > 0).ne(expected).sum().item()
    assert mismatched <= 2  # float32 rendering may flip a pixel whose centre is on an edge


def test_sprite_is_centred_and_y_points_down(data: ProceduralDSprites) -> None:
    for shape, orientation in [(0, 0), (1, 0), (1, 7), (0, 13)]:
        classes = np.array(
            [[shape, 3, orientation, px, py] for px, py in [(0, 0), (5, 20), (31, 9)]]
        )
        images = data.render(classes)[:, 0] > 0
        cx, cy = centre(classes)
        for image, x, y in zip(images, cx, cy, strict=True):
            got_x, got_y = moments(image)[:2]
            # Within half a pixel: the half-open square is off by exactly 0.5 at integer centres.
            assert abs(got_x - x) <= 0.5 + 1e-9 and abs(got_y - y) <= 0.5 + 1e-9, (shape, x, y)
    low, high = data.render(np.array([[1, 2, 0, 10, 2], [1, 2, 0, 10, 28]]))[:, 0] > 0
    assert moments(high)[1] > moments(low)[1] + 20  # larger pos_y: further down the image
    assert moments(high)[0] == pytest.approx(moments(low)[0], abs=0.5)  # same column


def test_rotation_is_counter_clockwise_on_screen(data: ProceduralDSprites) -> None:
    theta = data.factor_values[2][3]  # ~27.7 degrees
    for px, py in [(3, 4), (16, 16), (30, 25)]:
        mask = data.render(np.array([[1, 5, 3, px, py]]))[0, 0] > 0
        _, _, xx, xy, yy = moments(mask)
        angle = 0.5 * math.atan2(2 * xy, xx - yy)  # long axis, counter-clockwise from +x
        assert angle == pytest.approx(theta, abs=math.radians(2))
    # Upright heart rotated by ~92 degrees: the tip points right, the lobes left; ~277: mirrored.
    for orientation, lobes_left in [(10, True), (30, False)]:
        mask = data.render(np.array([[2, 5, orientation, 15, 15]]))[0, 0] > 0
        x = centre(np.array([[2, 5, orientation, 15, 15]]))[0][0]
        cols = np.nonzero(mask.numpy())[1]
        assert ((cols < x).sum() > (cols > x).sum()) == lobes_left


def test_heart_is_upright(data: ProceduralDSprites) -> None:
    for scale in range(6):
        for px, py in [(0, 0), (11, 23), (31, 31)]:
            mask = data.render(np.array([[2, scale, 0, px, py]]))[0, 0] > 0
            rows, cols = np.nonzero(mask.numpy())
            mid = (rows.min() + rows.max()) / 2
            assert (rows < mid).sum() > 1.3 * (rows > mid).sum()
            widths = np.bincount(rows - rows.min())
            assert widths.argmax() < len(widths) / 2  # widest row in the top half
            assert widths[-1] <= widths.max() / 2  # the tip at the bottom is narrow
            assert abs(cols.mean() - centre(np.array([[2, 0, 0, px, py]]))[0][0]) < 0.5


def test_full_turn_matches_orientation_zero(data: ProceduralDSprites) -> None:
    for shape in range(3):
        first, last = grid(shape, 4, 0, step=5), grid(shape, 4, 39, step=5)
        assert torch.equal(data.render(first), data.render(last))


def test_images_without_cache_render_the_requested_rows(data: ProceduralDSprites) -> None:
    indices = np.random.default_rng(3).integers(0, len(data), 500)
    images = data.images(indices)
    assert torch.equal(images, data.render(data.factors_of(indices)))
    classes = data.factors_of(indices[:20])
    assert torch.equal(data.images_of(classes), images[:20])
    assert data.images(np.array([], dtype=np.int64)).shape == (0, 1, 64, 64)
    with pytest.raises(IndexError):
        data.images(np.array([len(data)]))
    with pytest.raises(ValueError):
        data.render(np.array([[3, 0, 0, 0, 0]]))


class TinyDSprites(ProceduralDSprites):
    """The same sprites on a small factor grid, so the cache path can be tested quickly."""

    factor_sizes = (3, 2, 3, 2, 2)
    factor_values = (
        np.arange(3),
        np.array([0.5, 1.0]),
        np.linspace(0.0, 2 * math.pi, 3),
        np.array([0.0, 1.0]),
        np.array([0.25, 0.75]),
    )


def test_cache_is_written_once_and_read_back(tmp_path, monkeypatch, caplog) -> None:
    rendered = TinyDSprites().images()  # no cache_dir: rendered on the fly
    assert rendered.shape == (72, 1, 64, 64)
    data = TinyDSprites(tmp_path / "cache")
    caplog.set_level(logging.INFO, logger="vaelab.data.dsprites")
    all_images = data.images()
    path = tmp_path / "cache" / "dsprites_procedural_v1.npy"
    said = [r.getMessage() for r in caplog.records]  # a first run's wait is announced, once
    assert said[0] == (
        f"rendering the 72 images of procedural dsprites into {path} (once: later runs read the "
        "file) ..."
    )
    assert len(said) == 2 and re.fullmatch(r"rendered in \d+\.\d s", said[1]), said[1]
    assert 0 <= float(said[1].split()[2]) < 60  # the time it took (it once printed -693312.7 s)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert np.load(path).shape == (72, 64, 64)
    assert torch.equal(all_images, rendered) and all_images.is_contiguous()

    def no_render(self, classes, chunk=2048):
        raise AssertionError("should have been read from the cache")

    monkeypatch.setattr(TinyDSprites, "render", no_render)
    indices = np.array([71, 0, 5, 5, 40])
    assert torch.equal(data.images(indices), rendered[indices])
    assert torch.equal(data.images(), rendered)
    assert len(caplog.records) == 2  # read back without a word

    np.save(path, np.zeros((10, 64, 64), dtype=np.uint8))  # a stale cache of another size
    with pytest.raises(DataError, match=r"holds uint8 \(10, 64, 64\), expected .* Delete it and"):
        data.images(indices)


def test_failed_cache_write_leaves_no_file(tmp_path, monkeypatch) -> None:
    def broken_render(self, classes, chunk=2048):
        raise RuntimeError("killed")

    monkeypatch.setattr(TinyDSprites, "render", broken_render)
    with pytest.raises(RuntimeError, match="killed"):
        TinyDSprites(tmp_path).images()
    assert list(tmp_path.iterdir()) == []
