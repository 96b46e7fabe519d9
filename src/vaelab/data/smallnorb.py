"""SmallNORB (LeCun et al. 2004) as disentanglement_lib defines it (Locatello et al. 2019).

Files in ``<data_dir>/small_norb/`` (disentanglement_lib's layout), each ``.mat`` or its
published ``.mat.gz``: ``smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat`` and
``smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat``, NYU "binary matrices":
int32 little-endian magic (0x1E3D4C55 uint8, 0x1E3D4C54 int32, ...), int32 ndim, ``max(3,
ndim)`` int32 dims, then the data (little-endian, row-major). ``dat`` uint8 [24300, 2, 96, 96]
(two cameras), ``cat`` int32 [24300] (category 0..4), ``info`` int32 [24300, 4] (instance
0..9, elevation 0..8, azimuth 0, 2, .., 34, lighting 0..5).

As disentanglement_lib: training then testing rows, camera 0, resized to 64x64 by PIL's
LANCZOS; factors category 5, elevation 9, azimuth 18 (value / 2), lighting 6. The instance is
no factor: each combination has 10 images and ``index_of`` spreads draws over them. The resized
images are kept in ``<data_dir>/smallnorb_64x64_v1.npy`` (uint8 [48600, 64, 64]); a cache of
another shape, or unreadable, is an error that says to delete it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import urllib.request
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image

from vaelab.data.factor_table import FactorTable, TableSource
from vaelab.data.files import (
    corrupt_error,
    file_digest,
    missing_error,
    read_cache,
    staged_download,
    write_cache,
)

ROWS = 24300  # images in each of the two published files
SIZES = (5, 9, 18, 6)  # classes of category, elevation, azimuth, lighting
SPLITS = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")
FILES = {kind: [f"smallnorb-{s}-{kind}.mat" for s in SPLITS] for kind in ("dat", "cat", "info")}
ALL_FILES = tuple(name for names in FILES.values() for name in names)
FOLDER = "small_norb"
URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
PUBLISHED = f"{URL} (the six .mat.gz files; gzipped or not)"
# sha256 of the published .mat.gz files: tensorflow_datasets, url_checksums/smallnorb.txt
_SUMS = {
    "training-dat": "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873",
    "training-cat": "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa",
    "training-info": "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32",
    "testing-dat": "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474",
    "testing-cat": "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff",
    "testing-info": "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2",
}
SHA256 = {f"{name}.gz": _SUMS[name.split("-")[-2] + "-" + kind]
          for kind, names in FILES.items() for name in names}  # fmt: skip
MAGIC = {0x1E3D4C55: "u1", 0x1E3D4C54: "<i4", 0x1E3D4C56: "<i2",
         0x1E3D4C51: "<f4", 0x1E3D4C53: "<f8"}  # fmt: skip
CACHE_NAME = "smallnorb_64x64_v1.npy"
SIDE = 64
LANCZOS = Image.Resampling.LANCZOS  # PIL's ANTIALIAS, as in disentanglement_lib
FACTOR_NAMES = ("category", "elevation", "azimuth", "lighting")
INFO_LIMITS = np.array([10, 9, 36, 6])  # instance, elevation, azimuth, lighting
INFO_RANGES = (
    "it holds values outside instance 0..9, elevation 0..8, azimuth 0, 2, .., 34 or lighting 0..5"
)


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_header(stream: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, header bytes)`` of a binary matrix, the stream left at its data."""
    head = stream.read(8)
    if len(head) < 8:
        raise corrupt_error(path, "it is shorter than a binary matrix header")
    magic, ndim = struct.unpack("<ii", head)
    if magic not in MAGIC:
        raise corrupt_error(path, f"its magic number 0x{magic & 0xFFFFFFFF:08X} is not a "
                                  "binary matrix's (0x1E3D4C51..0x1E3D4C56)")  # fmt: skip
    if not 0 < ndim <= 16:
        raise corrupt_error(path, f"its header gives {ndim} dimensions")
    stored = max(3, ndim)
    dims = stream.read(4 * stored)
    if len(dims) < 4 * stored:
        raise corrupt_error(path, "it ends inside its header")
    shape = struct.unpack(f"<{stored}i", dims)[:ndim]
    return np.dtype(MAGIC[magic]), tuple(shape), 8 + 4 * stored


def read_binary_matrix(path: Path) -> np.ndarray:
    """The whole array of a binary matrix file (``.mat`` or ``.mat.gz``)."""
    try:
        with _open(path) as f:
            dtype, shape, _ = read_header(f, path)
            data = f.read()
    except (OSError, EOFError) as error:
        raise corrupt_error(path, f"it cannot be read ({error})") from error
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise corrupt_error(path, f"it holds {len(data)} bytes of data, {shape} {dtype} needs "
                                  f"{expected} (truncated or not this array)")  # fmt: skip
    return np.frombuffer(data, dtype).reshape(shape)


class SmallNORB(TableSource):
    """Factors category 5, elevation 9, azimuth 18, lighting 6; 10 instances of each.

    ``download``: fetch the six .mat.gz files when any is missing. ``verify``: check the .gz
    files' published sha256 (cat and info when checked, dat when read for the cache).
    ``rows``: test-only, images per file of small test files (factors of any grid sizes)."""

    name = "smallnorb"

    def __init__(
        self, data_dir: str | Path, download: bool = True, verify: bool = True, rows: int = ROWS
    ) -> None:
        self.data_dir = Path(data_dir)
        self.folder = self.data_dir / FOLDER
        self.cache_path = self.data_dir / CACHE_NAME
        self.download, self.verify, self.rows = download, verify, rows
        self.instances: np.ndarray | None = None
        self._checked = False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, SIDE, SIDE)

    def path(self, name: str) -> Path | None:
        """The published ``.mat.gz`` of a file when there, else the ``.mat``, else None."""
        for candidate in (self.folder / f"{name}.gz", self.folder / name):
            if candidate.is_file():
                return candidate
        return None

    def missing(self) -> list[str]:
        return [name for name in ALL_FILES if self.path(name) is None]

    def check_available(self) -> None:
        if self._checked:
            return
        if self.missing() and self.download:
            self.fetch()
        if missing := self.missing():
            why = "the download did not produce them" if self.download else "download is off"
            raise missing_error(self.name, self.folder, missing, PUBLISHED, why)
        shapes = {"dat": ("u1", (self.rows, 2, 96, 96)), "cat": ("<i4", (self.rows,)),
                  "info": ("<i4", (self.rows, 4))}  # fmt: skip
        for kind, names in FILES.items():
            for name in names:
                self._check_file(self.path(name), *shapes[kind], hash_it=kind != "dat")
        if self._table is None:
            self._table = self.load_table()  # reads and checks the factors
        if self.cache_path.exists():
            read_cache(self.cache_path, (2 * self.rows, SIDE, SIDE))
        self._checked = True

    def _check_file(self, path: Path, dtype: str, shape: tuple, hash_it: bool) -> None:
        """Header, size (a .gz's trailer holds it mod 2**32) and, for ``hash_it``, sha256."""
        try:
            with _open(path) as f:
                found_dtype, found_shape, header = read_header(f, path)
        except (OSError, EOFError) as error:
            raise corrupt_error(path, f"it cannot be read ({error})") from error
        if found_dtype != np.dtype(dtype) or found_shape != shape:
            raise corrupt_error(path, f"it holds {found_dtype} {found_shape}, expected "
                                      f"{np.dtype(dtype)} {shape}")  # fmt: skip
        size = header + int(np.prod(shape)) * found_dtype.itemsize
        if path.suffix == ".gz":
            with open(path, "rb") as f:
                f.seek(-4, os.SEEK_END)
                stored = struct.unpack("<I", f.read(4))[0]
            if stored != size % 2**32:
                raise corrupt_error(path, f"it unpacks to {stored} bytes, expected {size}")
        elif path.stat().st_size != size:
            raise corrupt_error(path, f"it has {path.stat().st_size} bytes, expected {size}")
        if hash_it:
            self._verify(path)

    def _verify(self, path: Path) -> None:
        expected = SHA256.get(path.name)
        if self.verify and expected is not None and file_digest(path) != expected:
            raise corrupt_error(path, f"its sha256 is not the published {expected}")

    def fetch(self) -> None:
        """Download the six .mat.gz files; ``DataError`` when that fails (nothing is left)."""
        try:
            staged_download(
                self.data_dir,
                self.download_into,
                keep=[FOLDER],
                needed=lambda: bool(self.missing()),
            )
        except Exception as error:  # any failure of the network or the files
            reason = f"the download failed: {type(error).__name__}: {error}".replace("\n", " ")
            raise missing_error(self.name, self.folder, self.missing(), PUBLISHED, reason) from None

    def download_into(self, root: Path) -> None:
        (root / FOLDER).mkdir()
        for name in ALL_FILES:
            target = root / FOLDER / f"{name}.gz"
            with urllib.request.urlopen(URL + target.name) as response, open(target, "wb") as f:
                shutil.copyfileobj(response, f)
            if self.verify and file_digest(target) != SHA256[target.name]:
                raise ValueError(f"{target.name} does not have the published sha256")

    def load_table(self) -> FactorTable:
        """Category, elevation, azimuth / 2 and lighting of training then testing rows."""
        columns = []
        for cat_name, info_name in zip(FILES["cat"], FILES["info"], strict=True):
            cat_path, info_path = self.path(cat_name), self.path(info_name)
            cat, info = read_binary_matrix(cat_path), read_binary_matrix(info_path)
            if ((cat < 0) | (cat >= 5)).any():
                raise corrupt_error(cat_path, "it holds categories outside 0..4")
            if ((info < 0) | (info >= INFO_LIMITS)).any() or (info[:, 2] % 2).any():
                raise corrupt_error(info_path, INFO_RANGES)
            columns.append(np.column_stack([cat, info]).astype(np.int64))
        values = np.concatenate(columns)  # category, instance, elevation, azimuth, lighting
        table = FactorTable(values[:, [0, 2, 3, 4]] // [1, 1, 2, 1], FACTOR_NAMES)
        counts = np.unique(table.classes @ table.strides, return_counts=True)[1]
        if not table.is_grid or counts.min() != counts.max():
            raise corrupt_error(self.folder, "its factors do not form a grid with the same "
                                "number of images (instances) in each combination")  # fmt: skip
        if self.rows == ROWS and table.sizes != SIZES:
            raise corrupt_error(self.folder, f"its factors take {list(table.sizes)} values, "
                                f"expected {list(SIZES)}")  # fmt: skip
        self.instances = values[:, 1]
        return table

    def write_cache(self) -> None:
        def fill(array: np.ndarray) -> None:  # camera 0 of both dat files, resized
            for split, name in enumerate(FILES["dat"]):
                path = self.path(name)
                self._verify(path)
                self._resize_file(path, array[split * self.rows : (split + 1) * self.rows])

        write_cache(self.cache_path, (2 * self.rows, SIDE, SIDE), fill)

    def _resize_file(self, path: Path, out: np.ndarray, chunk: int = 1024) -> None:
        row_bytes = 2 * 96 * 96
        try:
            with _open(path) as f:
                read_header(f, path)
                for start in range(0, self.rows, chunk):
                    n = min(chunk, self.rows - start)
                    data = f.read(n * row_bytes)
                    if len(data) < n * row_bytes:
                        at = start + len(data) // row_bytes
                        raise corrupt_error(path, f"it ends inside image {at}")
                    pairs = np.frombuffer(data, np.uint8).reshape(n, 2, 96, 96)
                    for i, image in enumerate(pairs[:, 0]):  # camera 0
                        out[start + i] = Image.fromarray(image).resize((SIDE, SIDE), LANCZOS)
        except (OSError, EOFError) as error:
            raise corrupt_error(path, f"it cannot be read ({error})") from error

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        """uint8 ``[N, 1, 64, 64]`` from the cache (made on first use)."""
        self.check_available()
        if not self.cache_path.exists():
            self.write_cache()
        cache = read_cache(self.cache_path, (2 * self.rows, SIDE, SIDE))
        if indices is None:
            return torch.from_numpy(np.array(cache)).unsqueeze(1)
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        if ((rows < 0) | (rows >= len(cache))).any():
            raise IndexError(f"image indices out of range for {len(cache)} images")
        return torch.from_numpy(np.ascontiguousarray(cache[rows])).unsqueeze(1)
