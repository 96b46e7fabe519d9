"""The user's own images: a folder of PNG / JPEG files or one array file.

- A folder: every ``*.png``, ``*.jpg``, ``*.jpeg`` under it (sub-folders included), in the
  order of their paths; all of one size and one kind (grey or colour). Read once, kept.
- An array file: ``.npy`` (memory-mapped), ``.npz`` (the array ``key``, else ``images``, else
  the only one) or HDF5 ``.h5`` / ``.hdf5`` (the dataset ``key``, else ``images``; read by
  rows). Shapes ``[N, H, W]`` (grey), ``[N, H, W, C]`` or ``[N, C, H, W]`` with C 1 or 3;
  uint8 values 0..255, booleans, or floats in [0, 1] (``round(255 x)``; a float array with
  values outside [0, 1] is refused when it is opened).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vaelab.data.base import DataError, ImageSource
from vaelab.data.files import corrupt_error, read_npy, read_rows

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")
YOURS = "Check the file and the settings data.path / data.key."
FLOAT_SLACK = 1e-3  # float pixels this far outside [0, 1] are rounding, clipped (< 1/510)
SCAN_BYTES = 64 << 20  # a float array's range is read this much at a time
MODES = {"L": "L", "1": "L", "LA": "L", "RGB": "RGB", "RGBA": "RGB", "P": "RGB", "CMYK": "RGB"}


def image_paths(folder: Path) -> list[Path]:
    """The PNG / JPEG files under ``folder``, sorted by their path inside it."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: Path) -> np.ndarray:
    """uint8 ``[H, W]`` (grey) or ``[H, W, 3]`` (colour) of one image file."""
    try:
        with Image.open(path) as image:
            if image.mode not in MODES:
                problem = f"its pixels are {image.mode!r}, not grey or colour"
                raise corrupt_error(path, problem, YOURS)
            return np.asarray(image.convert(MODES[image.mode]))
    except (UnidentifiedImageError, OSError) as error:
        raise corrupt_error(path, f"it cannot be read as an image ({error})", YOURS) from None


class ImageFiles(ImageSource):
    """Images from ``path`` (a folder or an array file; module docstring)."""

    name = "images"

    def __init__(self, path: str | Path, key: str | None = None) -> None:
        self.path, self.key = Path(path).expanduser(), key
        self._array = None  # [N, H, W, C] uint8-like, in memory or mapped (an HDF5 dataset)
        self._hdf5: h5py.File | None = None
        self.files: list[Path] = []

    @property
    def title(self) -> str:
        return f"data.path={self.path}"

    @property
    def streamed(self) -> bool:  # type: ignore[override]
        return self.path.suffix.lower() in (".npy", ".h5", ".hdf5")

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()

    def check_available(self) -> None:
        if self._array is not None:
            return
        if not self.path.exists():
            raise DataError(
                f"data.path={self.path} does not exist: give a folder of PNG / JPEG images or "
                f"an array file ({', '.join(ARRAY_SUFFIXES)})."
            )
        if self.is_folder:
            self._array = self._read_folder()
        elif self.path.suffix.lower() in ARRAY_SUFFIXES:
            self._array = self._open_array()
        else:
            raise DataError(
                f"data.path={self.path} is neither a folder of images nor an array file "
                f"({', '.join(ARRAY_SUFFIXES)})."
            )

    def _read_folder(self) -> np.ndarray:
        self.files = image_paths(self.path)
        if not self.files:
            raise DataError(
                f"The folder {self.path} (data.path) holds no PNG or JPEG images "
                f"({', '.join(IMAGE_SUFFIXES)}, sub-folders included)."
            )
        first = read_image(self.files[0])
        out = np.empty((len(self.files), *first.shape), dtype=np.uint8)
        for i, path in enumerate(self.files):
            image = first if i == 0 else read_image(path)
            if image.shape != first.shape:
                kind = {2: "grey", 3: "colour"}
                raise DataError(
                    f"The images of {self.path} differ in size or kind: {self.files[0].name} is "
                    f"{kind[first.ndim]} {first.shape[1]}x{first.shape[0]}, {path.name} is "
                    f"{kind[image.ndim]} {image.shape[1]}x{image.shape[0]}. Bring them to one "
                    f"size and one kind (all grey or all colour) first."
                )
            out[i] = image
        return out if out.ndim == 4 else out[..., None]

    def _open_array(self):
        suffix = self.path.suffix.lower()
        if suffix == ".npy":
            return self._layout(read_npy(self.path, mmap_mode="r", remedy=YOURS))
        if suffix == ".npz":
            try:
                with np.load(self.path, allow_pickle=False) as npz:
                    key = self._choose(list(npz.files))
                    return self._layout(npz[key])
            except DataError:  # already says what is wrong with the file
                raise
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                raise corrupt_error(self.path, f"it cannot be read ({error})", YOURS) from None
        try:
            self._hdf5 = h5py.File(self.path, "r")
        except OSError as error:
            problem = f"it is not a readable HDF5 file ({error})"
            raise corrupt_error(self.path, problem, YOURS) from None
        names = [k for k in self._hdf5 if isinstance(self._hdf5[k], h5py.Dataset)]
        return self._layout(self._hdf5[self._choose(names)])

    def _choose(self, keys: list[str]) -> str:
        """The array to read: ``key``, else ``images``, else the only one."""
        if not keys:
            raise corrupt_error(self.path, "it holds no arrays", YOURS)
        if self.key is not None and self.key not in keys:
            problem = f"it has no array {self.key!r} (data.key={self.key}), only {keys}"
            raise corrupt_error(self.path, problem, YOURS)
        if self.key is not None:
            return self.key
        if "images" in keys or len(keys) == 1:
            return "images" if "images" in keys else keys[0]
        problem = (
            f"it holds the arrays {keys} and none is named 'images': choose one with data.key "
            f"(e.g. data.key={keys[0]})"
        )
        raise corrupt_error(self.path, problem, YOURS)

    def _layout(self, array):
        """The array seen as ``[N, H, W, C]``; checks its shape and type."""
        shape, dtype = tuple(array.shape), np.dtype(array.dtype)
        if not (dtype == np.uint8 or dtype == np.bool_ or dtype.kind == "f"):
            raise corrupt_error(self.path, f"its images are {dtype}, not uint8 or float", YOURS)
        if dtype.kind == "f":
            self._check_range(array)
        if len(shape) == 3:
            return _Channels(array, None)
        if len(shape) == 4 and shape[3] in (1, 3):
            return _Channels(array, "last")
        if len(shape) == 4 and shape[1] in (1, 3):
            return _Channels(array, "first")
        raise corrupt_error(
            self.path,
            f"its images have shape {shape}, not [N, H, W], [N, H, W, C] or [N, C, H, W] "
            f"with C 1 or 3",
            YOURS,
        )

    def _check_range(self, array) -> None:
        """Refuse float images outside [0, 1] (beyond ``FLOAT_SLACK``) or not finite: read
        ``SCAN_BYTES`` at a time, so a memory-mapped or HDF5 array is never whole in memory."""
        rows = max(1, SCAN_BYTES // max(1, array.dtype.itemsize * math.prod(array.shape[1:])))
        low, high = np.inf, -np.inf
        for start in range(0, array.shape[0], rows):
            block = np.asarray(array[start : start + rows])
            if block.size:  # np.minimum / np.maximum keep a NaN
                low, high = np.minimum(low, block.min()), np.maximum(high, block.max())
        if array.shape[0] == 0 or (low >= -FLOAT_SLACK and high <= 1 + FLOAT_SLACK):
            return
        if np.isfinite(low) and np.isfinite(high):
            problem = f"its float images take values from {low:.4g} to {high:.4g}"
        else:
            problem = "its float images hold NaN or infinite values"
        raise corrupt_error(
            self.path,
            f"{problem}, but float images must lie in [0, 1] (read as round(255 x)) and uint8 "
            f"images in 0..255",
            "Rescale the array into [0, 1] (values in 0..255: divide by 255; in [-1, 1]: "
            "(x + 1) / 2) or save it as uint8 0..255, and set data.path to the new file.",
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        self.check_available()
        _, h, w, c = self._array.shape
        return (c, h, w)

    def __len__(self) -> int:
        self.check_available()
        return self._array.shape[0]

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        self.check_available()
        rows = np.arange(len(self)) if indices is None else np.asarray(indices).reshape(-1)
        block = self._array[rows]
        return torch.from_numpy(np.ascontiguousarray(block)).permute(0, 3, 1, 2).contiguous()


class _Channels:
    """``[N, H, W, C]`` uint8 rows of an array stored ``[N, H, W]``, ``[N, H, W, C]`` or
    ``[N, C, H, W]`` as uint8, bool or float in [0, 1]; rows read with ``read_rows``."""

    def __init__(self, array, channels: str | None) -> None:
        self.array, self.channels = array, channels
        s = array.shape
        c = {None: 1, "last": s[-1], "first": s[1]}[channels]
        h, w = (s[2], s[3]) if channels == "first" else (s[1], s[2])
        self.shape = (s[0], h, w, c)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        block = read_rows(self.array, rows)
        if self.channels is None:
            block = block[..., None]
        elif self.channels == "first":
            block = block.transpose(0, 2, 3, 1)
        if block.dtype == np.bool_:
            return block.astype(np.uint8) * 255
        if block.dtype.kind == "f":
            return np.rint(np.clip(block, 0.0, 1.0) * 255.0).astype(np.uint8)
        return block
