"""Data files on disk: the "missing data" error, downloads that leave nothing half-written,
arrays read with pickles disallowed, and reads of arbitrary rows from large on-disk arrays in
bounded memory."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from vaelab.data.base import DataError
from vaelab.io import folder_locked

DOWNLOAD_TIMEOUT_S = 20.0  # a socket that stays silent this long fails the download


def missing_error(
    name: str, folder: Path, files: Sequence[str], source: str, reason: str = ""
) -> DataError:
    """One paragraph: which data set is missing, where it was looked for, what to put there."""
    because = f" ({reason})" if reason else ""
    return DataError(
        f"The {name} data set is not available{because}. Looked in {folder} for "
        f"{', '.join(files)}. It is published at {source}; download it there (or run once "
        f"with internet access) and place the files in that folder, or set paths.data_dir "
        f"(VAELAB_DATA_DIR) to the folder that holds them."
    )


DOWNLOAD_AGAIN = "Delete it and download it again."
CACHE_REMEDY = "Delete it and it is made again from the data files on the next run."


def corrupt_error(path: Path, problem: str, remedy: str = DOWNLOAD_AGAIN) -> DataError:
    """A data file exists but cannot be what it claims to be."""
    return DataError(f"The data file {path} cannot be used: {problem}. {remedy}")


PICKLED = (
    "it holds Python objects (an object array), and vaelab reads arrays with pickles "
    "disallowed because unpickling can run code stored in the file"
)


NOT_AN_ARRAY = (
    "it is not a .npy/.npz array file (numpy would read it as a pickle, which vaelab does not "
    "unpickle because that can run code stored in the file)"
)


def _array_error(path: Path, error: Exception, remedy: str) -> DataError:
    text = str(error)
    if "pickled" in text:  # numpy's words for a file without the .npy / .npz magic
        return corrupt_error(path, NOT_AN_ARRAY, remedy)
    if "allow_pickle" in text or "Python objects" in text:
        return corrupt_error(path, PICKLED, remedy)
    return corrupt_error(path, f"it cannot be read ({type(error).__name__}: {error})", remedy)


def read_npy(path: Path, mmap_mode: str | None = None, remedy: str = DOWNLOAD_AGAIN) -> np.ndarray:
    """``np.load`` of a ``.npy`` with ``allow_pickle=False``; a ``DataError`` naming the file
    for an object array, a truncated file or anything else unreadable."""
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise _array_error(path, error, remedy) from None


def read_npz(path: Path, key: str) -> np.ndarray:
    """Array ``key`` of an ``.npz``, read with ``allow_pickle=False`` (errors as ``read_npy``)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return npz[key]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise _array_error(path, error, DOWNLOAD_AGAIN) from None


@contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Make every new socket give up after ``seconds`` without data (restored afterwards)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def staged_download(
    root: Path, fetch: Callable[[Path], None], keep: Sequence[str], needed: Callable[[], bool]
) -> None:
    """Run ``fetch(staging)`` in a fresh folder beside ``root``; on success move the entries
    named in ``keep`` into ``root``, on any failure delete everything it wrote, so a broken
    download never leaves files that look like data. Exceptions propagate. Under the lock of
    ``root``, and only while ``needed()`` (the caller's check that files are missing) holds
    there: the jobs of a parallel sweep download once, the others wait and find the files."""
    root.mkdir(parents=True, exist_ok=True)
    with folder_locked(root, announce=True):
        if not needed():
            return
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
        try:
            with socket_timeout(DOWNLOAD_TIMEOUT_S):
                fetch(staging)
            for entry in keep:
                target = root / entry
                if target.exists():
                    shutil.rmtree(target) if target.is_dir() else target.unlink()
                os.replace(staging / entry, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def read_rows(array, indices: np.ndarray, block: int = 1024) -> np.ndarray:
    """``array[indices]`` for any array-like that slices (HDF5 dataset, memmap), reading
    whole blocks of ``block`` rows in order so memory stays bounded and reads sequential."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    out = np.empty((len(indices), *array.shape[1:]), dtype=array.dtype)
    if len(indices) == 0:
        return out
    order = np.argsort(indices, kind="stable")
    sorted_idx = indices[order]
    blocks = sorted_idx // block
    starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]])
    ends = np.r_[starts[1:], len(sorted_idx)]
    for a, b in zip(starts, ends, strict=True):
        lo = int(blocks[a]) * block
        hi = min(int(sorted_idx[b - 1]) + 1, len(array))
        chunk = np.asarray(array[lo:hi])
        out[order[a:b]] = chunk[sorted_idx[a:b] - lo]
    return out


def write_cache(path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]) -> None:
    """A uint8 ``.npy`` of ``shape`` filled by ``fill(array)`` in a temporary file of the same
    folder, moved into place only when complete. Under the folder's lock, and not again where
    another process wrote it meanwhile: the jobs of a parallel sweep make a cache once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with folder_locked(path.parent, announce=True):
        if path.exists():
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
        os.close(fd)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared data folder needs it readable
        try:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            fill(array)
            array.flush()
            del array
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def read_cache(path: Path, shape: tuple[int, ...], remedy: str = CACHE_REMEDY) -> np.ndarray:
    """The cache memory-mapped read-only, after checking its dtype and shape."""
    array = read_npy(path, mmap_mode="r", remedy=remedy)
    if array.shape != shape or array.dtype != np.uint8:
        problem = f"it holds {array.dtype} {array.shape}, expected uint8 {shape}"
        raise corrupt_error(path, problem, remedy)
    return array


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest (``sha256``, ``md5``, ...) of a file, read 4 MiB at a time."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()
