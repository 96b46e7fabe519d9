"""The user's own images with their factors of variation: ``data=factors``.

The images are an ``ImageFiles`` (a folder or an array file); the factors a table with one
row per image, in the images' order:

- ``.csv``: a header row of names, then numbers. A column ``file`` (or ``filename``) instead
  matches rows to a folder's images by file name (its path inside the folder);
- ``.npy``: a number array ``[N, K]``, its columns named by ``names`` (else factor_0, ...);
- ``.npz``: the array ``factors`` (names from ``names``, else an array ``factor_names``);
- ``.h5`` / ``.hdf5``: the dataset ``factors`` (names from ``names``, else its ``names``
  attribute).

``columns`` chooses some of the named columns (default: all). Whole numbers are classes,
other real values are binned (``bins`` equal-width bins; ``FactorTable``).
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch

from vaelab.data.base import DataError
from vaelab.data.factor_table import FactorTable, TableSource
from vaelab.data.files import corrupt_error, read_npy
from vaelab.data.image_files import ImageFiles

FILE_COLUMNS = ("file", "filename")
YOURS = "Check the file and the settings data.factors / data.factor_names / data.factor_columns."


def read_csv(path: Path) -> tuple[list[str], np.ndarray, list[str] | None]:
    """``(names, values [N, K] float64, files or None)`` of a factor CSV."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise corrupt_error(path, f"it cannot be read as text ({error})", YOURS) from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise corrupt_error(path, "it needs a header row of names and a row per image", YOURS)
    header = [name.strip() for name in rows[0]]
    if any(len(r) != len(header) for r in rows[1:]):
        bad = next(i for i, r in enumerate(rows[1:], 2) if len(r) != len(header))
        problem = f"line {bad} does not have the header's {len(header)} columns"
        raise corrupt_error(path, problem, YOURS)
    file_column = next((i for i, n in enumerate(header) if n.lower() in FILE_COLUMNS), None)
    files = None if file_column is None else [r[file_column].strip() for r in rows[1:]]
    names = [n for i, n in enumerate(header) if i != file_column]
    values = np.empty((len(rows) - 1, len(names)), dtype=np.float64)
    for j, i in enumerate(i for i in range(len(header)) if i != file_column):
        for r, row in enumerate(rows[1:]):
            try:
                values[r, j] = float(row[i])
            except ValueError:
                raise corrupt_error(
                    path, f"column {header[i]!r} is not numeric (line {r + 2}: {row[i]!r})", YOURS
                ) from None
    return names, values, files


def read_array(path: Path, names: Sequence[str] | None) -> tuple[list[str], np.ndarray]:
    """``(names, values [N, K])`` of a factor array file (module docstring)."""
    suffix, found = path.suffix.lower(), None
    if suffix == ".npy":
        values = read_npy(path, remedy=YOURS)
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                if "factors" not in npz.files:
                    raise corrupt_error(path, f"it has no array 'factors', only {npz.files}", YOURS)
                values = npz["factors"]
                found = npz["factor_names"].tolist() if "factor_names" in npz.files else None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise corrupt_error(path, f"it cannot be read ({error})", YOURS) from None
    else:
        try:
            with h5py.File(path, "r") as f:
                if "factors" not in f:
                    raise corrupt_error(path, f"it has no dataset 'factors', only {list(f)}", YOURS)
                values = f["factors"][()]
                found = f["factors"].attrs.get("names")
                found = None if found is None else [str(n) for n in np.asarray(found).tolist()]
        except OSError as error:
            raise corrupt_error(path, f"it is not a readable HDF5 file ({error})", YOURS) from None
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.dtype.kind not in "biuf":
        problem = f"its factors are {values.dtype} {values.shape}, not numbers [N, K]"
        raise corrupt_error(path, problem, YOURS)
    chosen = list(names) if names else found or [f"factor_{k}" for k in range(values.shape[1])]
    if len(chosen) != values.shape[1]:
        raise corrupt_error(
            path, f"it has {values.shape[1]} factor columns but {len(chosen)} names {chosen}", YOURS
        )
    return chosen, values.astype(np.float64)


class FactorImages(TableSource):
    """``images`` (an ``ImageFiles``) with the factor table in ``factors`` (module docstring)."""

    name = "factors"

    def __init__(
        self,
        images: ImageFiles,
        factors: str | Path,
        names: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        bins: int = 20,
    ) -> None:
        self.image_files, self.path = images, Path(factors).expanduser()
        self.names = None if names is None else [str(n) for n in names]
        self.columns = None if columns is None else [str(c) for c in columns]
        self.bins = bins
        self._rows: np.ndarray | None = None  # image of each table row
        self._values: tuple[list[str], np.ndarray] | None = None

    @property
    def title(self) -> str:
        return self.image_files.title

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.image_files.image_shape

    @property
    def streamed(self) -> bool:  # type: ignore[override]
        return self.image_files.streamed

    def check_available(self) -> None:
        if self._values is not None:
            return
        self.image_files.check_available()
        if not self.path.is_file():
            raise DataError(
                f"data.factors={self.path} is not a file: give a table of the images' factors "
                f"(.csv with a header row, or .npy / .npz / .h5 arrays [N, K])."
            )
        files = None
        if self.path.suffix.lower() == ".csv":
            names, values, files = read_csv(self.path)
        else:
            names, values = read_array(self.path, self.names)
        n = len(self.image_files)
        self._rows = np.arange(n) if files is None else self._match(files)
        if len(values) != n and files is not None:
            named = set(self._rows.tolist())
            missing = next(p for i, p in enumerate(self.image_files.files) if i not in named)
            raise DataError(
                f"The factor table {self.path} has a row for {len(values)} of the {n} images in "
                f"{self.image_files.path}: give one row per image (none names e.g. "
                f"{missing.relative_to(self.image_files.path).as_posix()!r})."
            )
        if len(values) != n:
            raise DataError(
                f"The factor table {self.path} has {len(values)} rows but {self.image_files.path} "
                f"holds {n} images: give one row per image, in the images' order (or a `file` "
                f"column naming each row's image)."
            )
        if self.columns is not None:
            unknown = [c for c in self.columns if c not in names]
            if unknown:
                raise DataError(
                    f"data.factor_columns names {unknown}, which {self.path} does not have; "
                    f"its columns are {names}."
                )
            values = values[:, [names.index(c) for c in self.columns]]
            names = list(self.columns)
        self._values = (names, values)

    def _match(self, files: list[str]) -> np.ndarray:
        if not self.image_files.is_folder:
            raise DataError(
                f"The factor table {self.path} has a `file` column, but data.path "
                f"{self.image_files.path} is an array file, whose images have no names: drop "
                f"the column and give the rows in the array's order."
            )
        folder = self.image_files.path
        names = [p.relative_to(folder).as_posix() for p in self.image_files.files]
        position = {name: i for i, name in enumerate(names)}
        unknown = [f for f in files if f not in position]
        if unknown:
            what = f"{len(unknown)} files that are not images in {folder}, e.g."
            if len(unknown) == 1:
                what = f"a file that is not an image in {folder}:"
            raise DataError(f"The factor table {self.path} names {what} {unknown[0]!r}.")
        if len(set(files)) != len(files):
            raise DataError(f"The factor table {self.path} names an image more than once.")
        return np.array([position[f] for f in files], dtype=np.int64)

    def load_table(self) -> FactorTable:
        names, values = self._values
        try:
            return FactorTable(values, names, self.bins)
        except ValueError as error:
            raise corrupt_error(self.path, str(error), YOURS) from None

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        self.check_available()
        rows = self._rows if indices is None else self._rows[np.asarray(indices).reshape(-1)]
        return self.image_files.images(rows)
