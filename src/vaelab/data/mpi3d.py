"""MPI3D (Gondal et al. 2019, "On the Transfer of Inductive Bias from Simulation to the Real
World"): a robot finger moving an object, as ``toy`` (simple renders), ``realistic`` (realistic
renders) or ``real`` (camera images). Each variant is one ``mpi3d_<variant>.npz``, an
uncompressed zip (``np.savez``) whose member ``images.npy`` is uint8 ``[1036800, 64, 64, 3]``:
the full product of 7 factors in row-major order (``FACTOR_SIZES``), 12.7 GB. The images are
memory-mapped inside the zip and read by index, never loaded whole; an extracted
``mpi3d_<variant>.npy`` next to it is used instead when present.

Where the facts come from:

- factors and order: the README of github.com/rr-learning/disentanglement_dataset (since
  commit f6750d4, 2019-10-21: "1,036,800 images ... array.reshape([6,6,2,3,3,40,40,64,64,3])");
  nmichlo/disent ``disent/dataset/data/_groundtruth__mpi3d.py`` (4890b62, 2023) uses the same
  sizes and asserts that shape. disentanglement_lib's ``data/ground_truth/mpi3d.py`` still
  uses 4 colours x 4 shapes for toy / realistic: the first (460,800-image) release of 2019.
- URLs: that README, at three times: ``storage.googleapis.com/disentanglement_dataset/
  Final_Dataset/`` (f6750d4, 2019), ``storage.googleapis.com/mpi3d_disentanglement_dataset/
  data/`` (084c4fa, 2024) and Hugging Face ``waleedgondal/mpi3d`` (a7a6729, 2025-04-17,
  "Corrected corrupted mpi3d_real.npz dataset"; the current links). For ``real`` only the
  corrected file is fetched.
- checksums: the publishers give none. ``DISENT_MD5`` are the whole-file ("full") md5 sums
  that disent file records for the 2019 Final_Dataset files; ``real`` was replaced since, and
  whether the Hugging Face files are byte-identical to the 2019 ones is not published, so
  they are not enforced: ``check_available`` checks the zip structure, the dtype, the shape
  and the file's length.
"""

from __future__ import annotations

import logging
import mmap
import struct
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaelab.data.base import DataError, GroundTruthSource
from vaelab.data.files import (
    PICKLED,
    corrupt_error,
    missing_error,
    read_npy,
    read_rows,
    staged_download,
)

log = logging.getLogger(__name__)

VARIANTS = ("toy", "realistic", "real")
FACTOR_NAMES = ("object_color", "object_shape", "object_size", "camera_height",
                "background_color", "horizontal_axis", "vertical_axis")  # fmt: skip
FACTOR_SIZES = (6, 6, 2, 3, 3, 40, 40)
IMAGE_SHAPE = (64, 64, 3)  # as stored (HWC)
PAGE = "github.com/rr-learning/disentanglement_dataset"
_HF = "https://huggingface.co/datasets/waleedgondal/mpi3d/resolve/main/mpi3d_{}.npz"
_GCS_2024 = "https://storage.googleapis.com/mpi3d_disentanglement_dataset/data/mpi3d_{}.npz"
_GCS_2019 = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/mpi3d_{}.npz"
URLS: dict[str, tuple[str, ...]] = {
    "toy": tuple(u.format("toy") for u in (_HF, _GCS_2024, _GCS_2019)),
    "realistic": tuple(u.format("realistic") for u in (_HF, _GCS_2024, _GCS_2019)),
    "real": (_HF.format("real"),),  # the 2025 correction; the earlier copies were corrupt
}
DISENT_MD5 = {  # of the 2019 Final_Dataset files, as recorded by nmichlo/disent; not enforced
    "toy": "55889cb7c7dfc655d6e0277beee88868",
    "realistic": "59a6225b88b635365f70c91b3e52f70f",
    "real": "0f33f609918fb5c97996692f91129802",
}
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # a zip member's local file header: 30 bytes


def memmap_npz(path: Path, key: str = "images") -> np.memmap:
    """Array ``key`` of an ``.npz`` memory-mapped read-only where it lies in the zip: the
    member must be stored uncompressed (``np.savez``). Only the zip directory, the member's
    local header and the ``.npy`` header are read. A ``DataError`` names the file otherwise."""
    member = f"{key}.npy"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if member not in names:
                raise corrupt_error(path, f"it has members {names}, expected {member}")
            info = archive.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            raise corrupt_error(
                path,
                f"its {member} is compressed, so it cannot be memory-mapped",
                f"Extract it once next to it (unzip -p {path.name} {member} > "
                f"{path.stem}.npy), or download the uncompressed original again.",
            )
        with path.open("rb") as f:
            f.seek(info.header_offset)
            local = f.read(_LOCAL_HEADER.size)
            if len(local) < _LOCAL_HEADER.size or local[:4] != b"PK\x03\x04":
                raise corrupt_error(path, f"the zip header of {member} is damaged")
            *_, name_length, extra_length = _LOCAL_HEADER.unpack(local)
            start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
            f.seek(start)
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                version, np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        problem = f"it is not a readable .npz ({type(error).__name__}: {error})"
        raise corrupt_error(path, problem) from None
    if dtype.hasobject:
        raise corrupt_error(path, PICKLED)
    needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    held = min(path.stat().st_size - offset, info.file_size - (offset - start))
    if held < needed:
        raise corrupt_error(
            path,
            f"it is truncated: its {member} header says {dtype} {tuple(shape)} ({needed:,} "
            f"bytes) but the file holds {max(held, 0):,} bytes of it",
        )
    order = "F" if fortran else "C"
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)


class MPI3D(GroundTruthSource):
    """One MPI3D variant, streamed from ``<data_dir>/mpi3d_<variant>.npz`` (or ``.npy``).

    Factors: object colour 6, object shape 6, object size 2, camera height 3, background
    colour 3, horizontal axis 40, vertical axis 40. ``download``: fetch the ``.npz`` (12.7
    GB) when neither file is there."""

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    streamed = True  # 12.7 GB: read batch by batch from the memory map

    def __init__(self, data_dir: str | Path, variant: str = "toy", download: bool = True) -> None:
        if variant not in VARIANTS:
            raise DataError(
                f"MPI3D has the variants {', '.join(VARIANTS)}; got data.variant={variant!r}."
            )
        self.data_dir, self.variant, self.download = Path(data_dir), variant, download
        self.name = f"mpi3d_{variant}"
        self._array: np.ndarray | None = None
        self._advice: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (for loader workers) without the memory map, which each process reopens."""
        return {**self.__dict__, "_array": None, "_advice": None}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, 64, 64)

    @property
    def file_names(self) -> tuple[str, str]:
        """The published ``.npz`` and its extracted ``images.npy``, which is preferred."""
        return (f"{self.name}.npz", f"{self.name}.npy")

    @property
    def path(self) -> Path | None:
        """The file the images are read from (the ``.npy`` first), or None."""
        found = [self.data_dir / n for n in self.file_names if (self.data_dir / n).is_file()]
        return found[-1] if found else None

    def check_available(self) -> None:
        if self._array is not None:
            return
        if self.path is None and self.download:
            self._fetch()
        path = self.path
        if path is None:
            reason = "download is off" if not self.download else "the download produced nothing"
            raise missing_error(self.name, self.data_dir, self.file_names, self._published, reason)
        self._array = self._open(path)

    @property
    def _published(self) -> str:
        return f"{URLS[self.variant][0]} (linked from {PAGE})"

    def _open(self, path: Path) -> np.ndarray:
        """The memory-mapped images of ``path``, checked for dtype, shape and layout."""
        array = read_npy(path, mmap_mode="r") if path.suffix == ".npy" else memmap_npz(path)
        expected = (len(self), *IMAGE_SHAPE)
        if array.dtype != np.uint8 or array.shape != expected:
            first = array.shape[:1] == (460800,)  # the first release: 4 colours x 4 shapes
            old = " (the first, 2019 release of MPI3D)" if first else ""
            raise corrupt_error(
                path,
                f"its images are {array.dtype} {array.shape}{old}, expected uint8 {expected}",
                f"Download {URLS[self.variant][0]} again.",
            )
        if not array.flags.c_contiguous:
            raise corrupt_error(path, "its images are stored in Fortran order, expected C order")
        return array

    def _fetch(self) -> None:
        """Download the ``.npz`` into a staging folder, check it, then move it into place;
        the next URL is tried when one fails, and a ``DataError`` lists every failure."""
        name, failures = self.file_names[0], []
        for url in URLS[self.variant]:

            def fetch(staging: Path, url: str = url) -> None:
                log.info("Downloading %s (12.7 GB) from %s", name, url)
                urllib.request.urlretrieve(url, staging / name)
                self._open(staging / name)

            try:
                staged_download(self.data_dir, fetch, keep=[name], needed=lambda: self.path is None)
                return
            except Exception as error:  # any failure of the network or the file
                failures.append(f"{url}: {type(error).__name__}: {error}".replace("\n", " "))
        reason = "the download failed: " + "; ".join(failures)
        raise missing_error(self.name, self.data_dir, self.file_names, self._published, reason)

    def images(self, indices: np.ndarray | None = None, chunk: int = 4096) -> torch.Tensor:
        """uint8 ``[N, 3, 64, 64]`` of the given image indices (all 12.7 GB when None), read
        from the memory map ``chunk`` images at a time."""
        self.check_available()
        assert self._array is not None
        rows = np.arange(len(self)) if indices is None else np.asarray(indices).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"image indices out of range for {len(self)} images")
        self._advise(rows)
        out = torch.empty((len(rows), *self.image_shape), dtype=torch.uint8)
        for start in range(0, len(rows), chunk):
            block = read_rows(self._array, rows[start : start + chunk])
            out[start : start + len(block)] = torch.from_numpy(block).permute(0, 3, 1, 2)
        return out

    def _advise(self, rows: np.ndarray) -> None:
        """Let the kernel read ahead only for dense reads: scattered rows (a random batch) then
        fault in their own pages, not a read-ahead window around each (measured on Linux, a
        batch of 64 random rows: ~8 ms instead of ~260 ms, and 1/5 of the pages)."""
        handle = getattr(self._array, "_mmap", None)
        if handle is None or not hasattr(mmap, "MADV_RANDOM") or not len(rows):
            return
        dense = len(rows) * 16 >= int(rows.max() - rows.min()) + 1
        advice = mmap.MADV_NORMAL if dense else mmap.MADV_RANDOM
        if advice != self._advice:
            handle.madvise(advice)
            self._advice = advice
