"""3D Shapes (Burgess & Kim 2018): 480,000 colour 64x64 renders of an object in a room, the
full product of 6 factors, from DeepMind's ``3dshapes.h5`` (``images`` uint8 [N, 64, 64, 3],
``labels`` float [N, 6]). The file's rows are in row-major factor order; ``check_available``
verifies that by mapping every label row to its classes."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from vaelab.data.base import GroundTruthSource
from vaelab.data.files import corrupt_error, missing_error, read_rows

FILE_NAME = "3dshapes.h5"
PUBLISHED = "https://github.com/google-deepmind/3d-shapes (gs://3d-shapes/3dshapes.h5)"


class Shapes3D(GroundTruthSource):
    """Factors floor hue 10, wall hue 10, object hue 10, scale 8, shape 4, orientation 15."""

    name = "shapes3d"
    factor_names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    factor_sizes = (10, 10, 10, 8, 4, 15)

    def __init__(self, data_dir: str | Path, file_name: str = FILE_NAME) -> None:
        self.path = Path(data_dir) / file_name
        self._checked = False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, 64, 64)

    def check_available(self) -> None:
        if self._checked:
            return
        if not self.path.is_file():
            raise missing_error(self.name, self.path.parent, [self.path.name], PUBLISHED)
        n, k = len(self), len(self.factor_sizes)
        try:
            with h5py.File(self.path, "r") as f:
                if "images" not in f or "labels" not in f:
                    raise corrupt_error(
                        self.path, f"it has keys {sorted(f)}, expected 'images' and 'labels'"
                    )
                images, labels = f["images"], f["labels"]
                if images.shape != (n, 64, 64, 3) or images.dtype != np.uint8:
                    raise corrupt_error(
                        self.path,
                        f"'images' is {images.dtype} {images.shape}, expected uint8 "
                        f"{(n, 64, 64, 3)}",
                    )
                if labels.shape != (n, k):
                    raise corrupt_error(
                        self.path, f"'labels' has shape {labels.shape}, expected {(n, k)}"
                    )
                values = labels[()]
        except OSError as error:
            raise corrupt_error(self.path, f"it is not a readable HDF5 file ({error})") from error
        self._check_order(values)
        self._checked = True

    def _check_order(self, values: np.ndarray) -> None:
        """Map label values to classes per factor; they must count up in row-major order."""
        classes = np.empty(values.shape, dtype=np.int64)
        for k, size in enumerate(self.factor_sizes):
            levels = np.unique(values[:, k])
            if len(levels) != size:
                raise corrupt_error(
                    self.path,
                    f"factor {self.factor_names[k]} takes {len(levels)} values, expected {size}",
                )
            classes[:, k] = np.searchsorted(levels, values[:, k])
        if not (classes @ self.strides == np.arange(len(values))).all():
            raise corrupt_error(self.path, "its images are not in row-major factor order")

    def images(self, indices: np.ndarray | None = None, chunk: int = 8192) -> torch.Tensor:
        """uint8 ``[N, 3, 64, 64]``, read from the file ``chunk`` images at a time."""
        self.check_available()
        rows = np.arange(len(self)) if indices is None else np.asarray(indices).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"image indices out of range for {len(self)} images")
        out = torch.empty((len(rows), *self.image_shape), dtype=torch.uint8)
        with h5py.File(self.path, "r") as f:
            for start in range(0, len(rows), chunk):
                block = read_rows(f["images"], rows[start : start + chunk])
                out[start : start + len(block)] = torch.from_numpy(block).permute(0, 3, 1, 2)
        return out
