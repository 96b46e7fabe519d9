"""DeepMind's dSprites file: 737,280 binary 64x64 images with 6 latents (color, shape, scale,
orientation, pos_x, pos_y) in row-major order, as the ``.npz`` (``imgs`` uint8 0/1,
``latents_classes`` int [N, 6], ``latents_values``, ``metadata``) or its HDF5 twin (``imgs``,
``latents/classes``). The color latent has one value and is dropped; the five others are
those of ``ProceduralDSprites``. Pixels are stored as 0 / 255."""

from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch

from vaelab.data.base import DataError, GroundTruthSource
from vaelab.data.dsprites import ProceduralDSprites
from vaelab.data.files import corrupt_error, missing_error, read_npz, read_rows

STEM = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64"
FILE_NAMES = (f"{STEM}.npz", f"{STEM}.hdf5")
PUBLISHED = "https://github.com/google-deepmind/dsprites-dataset"


def npz_header(path: Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of array ``key`` in an ``.npz`` without decompressing it."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    return shape, dtype


class DSpritesFile(GroundTruthSource):
    """dSprites read from ``<data_dir>/<file_name>`` (the ``.npz``, else the ``.hdf5``)."""

    name = "dsprites_npz"
    binary = True
    factor_names = ProceduralDSprites.factor_names
    factor_sizes = ProceduralDSprites.factor_sizes
    factor_values = ProceduralDSprites.factor_values

    def __init__(self, data_dir: str | Path, file_name: str | None = None) -> None:
        self.data_dir, self.file_name = Path(data_dir), file_name
        self._images: np.ndarray | None = None  # the .npz, decompressed once
        self._checked = False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 64, 64)

    @property
    def path(self) -> Path | None:
        """The file found, or None."""
        names = FILE_NAMES if self.file_name is None else (self.file_name,)
        return next((self.data_dir / n for n in names if (self.data_dir / n).is_file()), None)

    def check_available(self) -> None:
        if self._checked:
            return
        path = self.path
        if path is None:
            names = FILE_NAMES if self.file_name is None else (self.file_name,)
            raise missing_error(self.name, self.data_dir, names, PUBLISHED)
        expected = (len(self), 64, 64)
        try:
            if path.suffix == ".npz":
                with zipfile.ZipFile(path) as archive:
                    keys = {Path(n).stem for n in archive.namelist()}
                if not {"imgs", "latents_classes"} <= keys:
                    raise corrupt_error(
                        path, f"it has keys {sorted(keys)}, expected imgs and latents_classes"
                    )
                shape, dtype = npz_header(path, "imgs")
                classes = read_npz(path, "latents_classes")
            else:
                with h5py.File(path, "r") as f:
                    if "imgs" not in f or "latents/classes" not in f:
                        raise corrupt_error(
                            path, f"it has keys {sorted(f)}, expected imgs and latents/classes"
                        )
                    shape, dtype = f["imgs"].shape, f["imgs"].dtype
                    classes = f["latents/classes"][()]
        except DataError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
            problem = f"it cannot be read ({type(error).__name__}: {error})"
            raise corrupt_error(path, problem) from error
        if tuple(shape) != expected or dtype != np.uint8:
            raise corrupt_error(path, f"imgs is {dtype} {tuple(shape)}, expected uint8 {expected}")
        want = np.concatenate(
            [np.zeros((len(self), 1), np.int64), self.factors_of(np.arange(len(self)))], 1
        )
        if classes.shape != want.shape or not (classes == want).all():
            raise corrupt_error(path, "its latents_classes are not the row-major factor grid")
        self._checked = True

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        """uint8 ``[N, 1, 64, 64]`` with values 0 / 255."""
        self.check_available()
        path = self.path
        if path.suffix == ".npz":
            if self._images is None:
                imgs = read_npz(path, "imgs")
                self._images = np.multiply(imgs, 255, out=imgs)
            array = self._images if indices is None else self._images[np.asarray(indices)]
            return torch.from_numpy(array).unsqueeze(1)
        rows = np.arange(len(self)) if indices is None else np.asarray(indices).reshape(-1)
        with h5py.File(path, "r") as f:
            array = read_rows(f["imgs"], rows)
        return torch.from_numpy(np.multiply(array, 255, out=array)).unsqueeze(1)
