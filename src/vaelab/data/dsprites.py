"""A procedurally rendered replica of DeepMind's dSprites (no download).

737,280 binary 64x64 images: every combination of shape (square, ellipse, heart), 6 scales,
40 orientations and 32x32 positions, in the row-major order of ``GroundTruthSource``.

Geometry. Pixel (row r, column c) is the point (x=c, y=r), y pointing down. A sprite with
factors (shape, s, θ, pos_x, pos_y) is centred at ``(cx, cy) = (16 + 32 pos_x, 16 + 32 pos_y)``
and rotated counter-clockwise on screen by θ. A pixel at offset ``(dx, dy)`` from the centre
has body coordinates (u right, v up, in pixels of a scale-1 sprite)

    u = ( cos θ dx - sin θ dy) / s',    v = (-sin θ dx - cos θ dy) / s',

with ``s' = s`` for the square and ``s' = s + δ`` (δ = 0.028, 0.036) for the ellipse and the
heart, which reproduces dSprites' pixel counts at small scales. The pixel is on (255) when
(u, v) is inside the shape (no anti-aliasing):

* square: ``-10 <= u < 10`` and ``-10 <= v < 10`` (half-open, so (20 s)^2 pixels at an integer
  centre);
* ellipse: ``(u / 12.6)^2 + (v / 6.8)^2 <= 1`` (long axis along x at θ = 0);
* heart: ``(x^2 + y^2 - 1)^3 <= x^2 y^3`` with ``x = u / 8``, ``y = v / 6.95 + 0.118``: lobes on
  top, tip at the bottom, about 19 x 16 px at scale 1, centred on its bounding box.

No sprite reaches 15 px from its centre, so only a 32x32 window of pixels around
``floor(centre)`` (offsets -16..15, always inside the image) is evaluated per image.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from vaelab.data.base import GroundTruthSource
from vaelab.data.files import corrupt_error, read_npy, write_cache

log = logging.getLogger(__name__)

SHAPE_NAMES = ("square", "ellipse", "heart")
IMAGE_SIZE = 64
WINDOW = 32
SQUARE_HALF = 10.0
ELLIPSE_AXES = (12.6, 6.8)
HEART_AXES = (8.0, 6.95)
HEART_Y0 = 0.118
SCALE_OFFSET = (0.0, 0.028, 0.036)
CACHE_REMEDY = "Delete it and it is rendered again on the next run."
EPS = 1e-4  # keeps the square's half-open edges exact despite float rounding


def inside_shape(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Boolean mask: is the body-frame point ``(u, v)`` (u right, v up, px at scale 1) inside
    shape ``shape`` (0 square, 1 ellipse, 2 heart)? See the module docstring for the curves."""
    if shape == 0:
        lo, hi = -SQUARE_HALF - EPS, SQUARE_HALF - EPS
        return (u >= lo) & (u < hi) & (v >= lo) & (v < hi)
    if shape == 1:
        x, y = u / ELLIPSE_AXES[0], v / ELLIPSE_AXES[1]
        return x * x + y * y <= 1.0
    if shape == 2:
        x, y = u / HEART_AXES[0], v / HEART_AXES[1] + HEART_Y0
        x2 = x * x
        return (x2 + y * y - 1.0) ** 3 <= x2 * y * y * y
    raise ValueError(f"unknown shape {shape}; expected 0..{len(SHAPE_NAMES) - 1}")


def _render_one_shape(
    shape: int, scale: torch.Tensor, theta: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor
) -> torch.Tensor:
    """Flat uint8 images ``[n, 64 * 64]`` of one shape for float64 parameters ``[n]``."""
    n = scale.shape[0]
    x0, y0 = torch.floor(cx) - WINDOW // 2, torch.floor(cy) - WINDOW // 2
    offsets = torch.arange(WINDOW, dtype=torch.float64)
    dx = (x0[:, None] + offsets - cx[:, None]).float()[:, None, :]  # [n, 1, W]
    dy = (y0[:, None] + offsets - cy[:, None]).float()[:, :, None]  # [n, W, 1]
    s = scale + SCALE_OFFSET[shape]
    cos = (torch.cos(theta) / s).float()[:, None, None]
    sin = (torch.sin(theta) / s).float()[:, None, None]
    u = cos * dx - sin * dy
    v = -(sin * dx) - cos * dy
    window = inside_shape(shape, u, v).view(n, WINDOW * WINDOW).to(torch.uint8).mul_(255)
    corner = (y0 * IMAGE_SIZE + x0).long()
    grid = torch.arange(WINDOW)
    flat = (grid[:, None] * IMAGE_SIZE + grid[None, :]).view(1, -1)
    out = torch.zeros(n, IMAGE_SIZE * IMAGE_SIZE, dtype=torch.uint8)
    return out.scatter_(1, corner[:, None] + flat, window)


def render_sprites(
    shape: np.ndarray,
    scale: np.ndarray,
    theta: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    chunk: int = 2048,
) -> torch.Tensor:
    """uint8 images ``[N, 1, 64, 64]`` (0 or 255) of sprites given per image: shape id, scale,
    angle θ (radians, counter-clockwise on screen) and centre ``(cx, cy)`` in pixels, which
    must lie in [16, 48] so that the 32x32 window stays inside the image."""
    shape = np.asarray(shape, dtype=np.int64).reshape(-1)
    params = [torch.as_tensor(np.asarray(p, dtype=np.float64).reshape(-1)) for p in (scale, theta)]
    params += [torch.as_tensor(np.asarray(p, dtype=np.float64).reshape(-1)) for p in (cx, cy)]
    if any(p.shape[0] != shape.shape[0] for p in params):
        raise ValueError("shape, scale, theta, cx and cy must have the same length")
    if ((params[2] < 16) | (params[2] > 48) | (params[3] < 16) | (params[3] > 48)).any():
        raise ValueError("sprite centres must lie in [16, 48] x [16, 48]")
    n = shape.shape[0]
    out = torch.empty(n, IMAGE_SIZE * IMAGE_SIZE, dtype=torch.uint8)
    for start in range(0, n, chunk):
        block = shape[start : start + chunk]
        for sid in np.unique(block):
            rows = np.flatnonzero(block == sid) + start
            if len(rows) == block.shape[0]:  # the whole chunk has this shape: no gather
                sel = slice(start, start + len(rows))
                out[sel] = _render_one_shape(int(sid), *(p[sel] for p in params))
            else:
                idx = torch.from_numpy(rows)
                out[idx] = _render_one_shape(int(sid), *(p[idx] for p in params))
    return out.view(n, 1, IMAGE_SIZE, IMAGE_SIZE)


class ProceduralDSprites(GroundTruthSource):
    """dSprites rendered on the fly; all images are cached as ``<cache_dir>/<cache_name>``
    (uint8 ``[737280, 64, 64]``, 2.8 GiB) the first time they are all requested.

    With ``use_file`` (the default), DeepMind's own dSprites file in ``cache_dir``, when there,
    is read instead of rendering (see ``vaelab.data.dsprites_file``)."""

    name = "dsprites"
    cache_name = "dsprites_procedural_v1.npy"
    factor_names = ("shape", "scale", "orientation", "pos_x", "pos_y")
    factor_sizes = (3, 6, 40, 32, 32)
    factor_values = (
        np.arange(3),
        np.linspace(0.5, 1.0, 6),
        np.linspace(0.0, 2 * math.pi, 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    )

    binary = True

    def __init__(self, cache_dir: str | Path | None = None, use_file: bool = True) -> None:
        self.cache_path = None if cache_dir is None else Path(cache_dir) / self.cache_name
        self.use_file = use_file

    def real_file(self) -> GroundTruthSource | None:
        """DeepMind's dSprites file as a source when ``use_file`` and it is in ``cache_dir``."""
        if not self.use_file or self.cache_path is None:
            return None
        from vaelab.data.dsprites_file import DSpritesFile  # it builds on this module

        found = DSpritesFile(self.cache_path.parent)
        if found.path is None or tuple(self.factor_sizes) != tuple(found.factor_sizes):
            return None
        return found

    def check_available(self) -> None:
        if (found := self.real_file()) is not None:
            found.check_available()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, IMAGE_SIZE, IMAGE_SIZE)

    def render(self, classes: np.ndarray, chunk: int = 2048) -> torch.Tensor:
        """uint8 images ``[N, 1, 64, 64]`` for rows of factor classes ``[N, 5]``."""
        classes = np.asarray(classes, dtype=np.int64)
        self.index_of(classes)  # validates shape and ranges
        shape, scale, theta, px, py = (
            v[c] for v, c in zip(self.factor_values, classes.T, strict=True)
        )
        return render_sprites(shape, scale, theta, 16 + 32 * px, 16 + 32 * py, chunk=chunk)

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        """uint8 images ``[N, 1, 64, 64]``: all of them (from the cache, written if missing,
        when there is a ``cache_dir``) when ``indices`` is None, else those rows (read from the
        cache when it exists, else rendered). DeepMind's file, when used, replaces both."""
        if (found := self.real_file()) is not None:
            return found.images(indices)
        if indices is None:
            if self.cache_path is None:
                return self.render(self.factors_of(np.arange(len(self))))
            if not self.cache_path.exists():
                self.write_cache()
            self._check_cache()
            return torch.from_numpy(read_npy(self.cache_path, remedy=CACHE_REMEDY)).unsqueeze(1)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if ((indices < 0) | (indices >= len(self))).any():
            raise IndexError(f"image indices out of range for {len(self)} images")
        if self.cache_path is not None and self.cache_path.exists():
            rows = self._check_cache()[indices]
            return torch.from_numpy(np.ascontiguousarray(rows)).unsqueeze(1)
        return self.render(self.factors_of(indices))

    def write_cache(self, chunk: int = 16384) -> Path:
        """Render every image into the cache file (``files.write_cache``: whole or not at all,
        and once where parallel jobs ask for it together)."""
        if self.cache_path is None:
            raise ValueError("no cache_dir was given")

        def fill(array: np.ndarray) -> None:
            began = time.perf_counter()
            log.info("rendering the %s images of procedural %s into %s (once: later runs read "
                     "the file) ...", f"{len(self):,}", self.name, self.cache_path)  # fmt: skip
            for start in range(0, len(self), chunk):
                rows = np.arange(start, min(start + chunk, len(self)))
                array[rows[0] : rows[-1] + 1] = self.render(self.factors_of(rows))[:, 0].numpy()
            log.info("rendered in %.1f s", time.perf_counter() - began)

        write_cache(self.cache_path, (len(self), IMAGE_SIZE, IMAGE_SIZE), fill)
        return self.cache_path

    def _check_cache(self) -> np.ndarray:
        """The cache file, memory-mapped read-only, after checking its shape and dtype."""
        array = read_npy(self.cache_path, mmap_mode="r", remedy=CACHE_REMEDY)
        expected = (len(self), IMAGE_SIZE, IMAGE_SIZE)
        if array.shape != expected or array.dtype != np.uint8:
            problem = f"it holds {array.dtype} {array.shape}, expected uint8 {expected}"
            raise corrupt_error(self.cache_path, problem, CACHE_REMEDY)
        return array
