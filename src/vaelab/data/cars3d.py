"""Cars3D (Reed et al. 2015) as disentanglement_lib defines it (Locatello et al. 2019).

Files: the 183 ``car_NNN_mesh.mat`` (MATLAB v5; NNN from 001 to 199, with gaps) of the folder
``data/cars/`` of ``nips2015-analogy-data.tar.gz`` (www.scottreed.info), in ``<data_dir>/cars/``
(disentanglement_lib's layout). Each holds ``im``: uint8 [128, 128, 3, 24, 4] (height, width,
RGB, 24 azimuths, 4 elevations), and ``mask`` (unused).

As disentanglement_lib: object k is the k-th file in name order; a file's 96 views,
``einsum('abcde->deabc', im)`` reshaped to [96, 128, 128, 3] (azimuth-major, elevation
fastest), are each thumbnailed to 64x64 by PIL (LANCZOS) and stored at the row-major index of
(elevation, azimuth, object) in the grid [4, 24, 183]. The 17,568 resized images are kept in
``<data_dir>/cars3d_64x64_v1.npy`` (uint8 [17568, 3, 64, 64]); a cache of another shape, or
unreadable, is an error that says to delete it.
"""

from __future__ import annotations

import shutil
import tarfile
import urllib.request
from pathlib import Path, PurePosixPath

import numpy as np
import scipy.io
import torch
from PIL import Image
from scipy.io.matlab import MatReadError

from vaelab.data.base import GroundTruthSource
from vaelab.data.files import (
    corrupt_error,
    file_digest,
    missing_error,
    read_cache,
    staged_download,
    write_cache,
)
from vaelab.data.smallnorb import LANCZOS, SIDE

NUM_OBJECTS = 183
ELEVATIONS, AZIMUTHS = 4, 24
IM_SHAPE = (128, 128, 3, AZIMUTHS, ELEVATIONS)
FOLDER = "cars"
PATTERN = "*_mesh.mat"
ARCHIVE_URL = "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz"
# md5 of the whole archive: nmichlo/disent, disent/dataset/data/_groundtruth__cars3d.py ("full")
ARCHIVE_MD5 = "4e866a7919c1beedf53964e6f7a23686"
PUBLISHED = f"{ARCHIVE_URL} (its folder data/cars/, www.scottreed.info)"
CACHE_NAME = "cars3d_64x64_v1.npy"
# what scipy raises on files that are not MATLAB v5 (it trips on garbage in many ways)
UNREADABLE = (
    OSError,
    ValueError,
    EOFError,
    TypeError,
    IndexError,
    NotImplementedError,
    MatReadError,
)


class Cars3D(GroundTruthSource):
    """Factors elevation 4, azimuth 24, object 183.

    ``download``: fetch and unpack the archive's ``data/cars/`` when no mesh file is there.
    ``verify``: check the archive's published md5 when downloading. ``num_objects``:
    test-only, the number of mesh files of small test folders (the published set has 183)."""

    name = "cars3d"
    factor_names = ("elevation", "azimuth", "object")

    def __init__(
        self,
        data_dir: str | Path,
        download: bool = True,
        verify: bool = True,
        num_objects: int = NUM_OBJECTS,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.folder = self.data_dir / FOLDER
        self.cache_path = self.data_dir / CACHE_NAME
        self.download, self.verify = download, verify
        self.factor_sizes = (ELEVATIONS, AZIMUTHS, num_objects)
        self._checked = False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, SIDE, SIDE)

    @property
    def cache_shape(self) -> tuple[int, ...]:
        return (len(self), *self.image_shape)

    def mesh_files(self) -> list[Path]:
        """The ``*_mesh.mat`` files in name order (object k is the k-th)."""
        return sorted(self.folder.glob(PATTERN)) if self.folder.is_dir() else []

    def check_available(self) -> None:
        """The folder holds ``num_objects`` mesh files; without a cache, each has an ``im``
        of the right shape (read from the file's header, not unpacked)."""
        if self._checked:
            return
        if not self.mesh_files() and self.download:
            self.fetch()
        files = self.mesh_files()
        if not files:
            why = "the download did not produce them" if self.download else "download is off"
            expected = [f"{self.factor_sizes[2]} files car_NNN_mesh.mat"]
            raise missing_error(self.name, self.folder, expected, PUBLISHED, why)
        if len(files) != self.factor_sizes[2]:
            problem = f"it holds {len(files)} {PATTERN} files, expected {self.factor_sizes[2]}"
            raise corrupt_error(self.folder, problem)
        if self.cache_path.exists():
            read_cache(self.cache_path, self.cache_shape)
        else:
            for path in files:
                self._check_mat(path)
        self._checked = True

    def _check_mat(self, path: Path) -> None:
        try:
            found = {name: (shape, kind) for name, shape, kind in scipy.io.whosmat(path)}
        except UNREADABLE as error:
            raise corrupt_error(path, f"it is not a readable MATLAB file ({error})") from None
        if "im" not in found:
            raise corrupt_error(path, f"it has no 'im' array (it holds {sorted(found)})")
        shape, kind = found["im"]
        if tuple(shape) != IM_SHAPE or kind != "uint8":
            raise corrupt_error(path, f"'im' is {kind} {tuple(shape)}, expected uint8 {IM_SHAPE}")

    def load_views(self, path: Path) -> np.ndarray:
        """uint8 ``[96, 128, 128, 3]`` of a mesh file: view ``j`` has azimuth ``j // 4`` and
        elevation ``j % 4``."""
        try:
            im = scipy.io.loadmat(path)["im"]
        except KeyError:
            raise corrupt_error(path, "it has no 'im' array") from None
        except UNREADABLE as error:
            raise corrupt_error(path, f"it is not a readable MATLAB file ({error})") from None
        if im.shape != IM_SHAPE or im.dtype != np.uint8:
            raise corrupt_error(path, f"'im' is {im.dtype} {im.shape}, expected uint8 {IM_SHAPE}")
        return np.einsum("abcde->deabc", im).reshape(-1, *IM_SHAPE[:3])

    def write_cache(self) -> None:
        """Resize every view of every mesh file into the cache file."""
        files = self.mesh_files()
        views = np.arange(AZIMUTHS * ELEVATIONS)

        def fill(array: np.ndarray) -> None:
            for obj, path in enumerate(files):
                classes = np.stack([views % ELEVATIONS, views // ELEVATIONS,
                                    np.full_like(views, obj)], axis=1)  # fmt: skip
                for index, view in zip(self.index_of(classes), self.load_views(path), strict=True):
                    picture = Image.fromarray(view)
                    picture.thumbnail((SIDE, SIDE), LANCZOS)
                    array[index] = np.asarray(picture).transpose(2, 0, 1)

        write_cache(self.cache_path, self.cache_shape, fill)

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        """uint8 ``[N, 3, 64, 64]`` from the cache (made on first use)."""
        self.check_available()
        if not self.cache_path.exists():
            self.write_cache()
        cache = read_cache(self.cache_path, self.cache_shape)
        if indices is None:
            return torch.from_numpy(np.array(cache))
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        if ((rows < 0) | (rows >= len(cache))).any():
            raise IndexError(f"image indices out of range for {len(cache)} images")
        return torch.from_numpy(np.ascontiguousarray(cache[rows]))

    def fetch(self) -> None:
        """Download the archive and keep its ``data/cars/``; ``DataError`` when that fails."""
        try:
            staged_download(
                self.data_dir,
                self.download_into,
                keep=[FOLDER],
                needed=lambda: not self.mesh_files(),
            )
        except Exception as error:  # any failure of the network or the archive
            reason = f"the download failed: {type(error).__name__}: {error}".replace("\n", " ")
            expected = [f"{self.factor_sizes[2]} files car_NNN_mesh.mat"]
            raise missing_error(self.name, self.folder, expected, PUBLISHED, reason) from None

    def download_into(self, root: Path) -> None:
        archive = root / "nips2015-analogy-data.tar.gz"
        with urllib.request.urlopen(ARCHIVE_URL) as response, open(archive, "wb") as f:
            shutil.copyfileobj(response, f)
        if self.verify and file_digest(archive, "md5") != ARCHIVE_MD5:
            raise ValueError(f"{archive.name} does not have the published md5 {ARCHIVE_MD5}")
        (root / FOLDER).mkdir()
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.isfile() and len(parts) >= 2 and parts[-2] == FOLDER:
                    source = tar.extractfile(member)
                    with source, open(root / FOLDER / parts[-1], "wb") as out:
                        shutil.copyfileobj(source, out)
        archive.unlink()
