"""Data sets read through torchvision's own classes, downloaded when their files are missing.

A download runs in a staging folder and only complete folders are moved into place, so an
interrupted or offline download leaves nothing behind; its failure is a ``DataError`` that
names the data set, the folder searched, the files expected and where they are published.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import numpy as np
import torch

from vaelab.data.base import DataError, ImageSource
from vaelab.data.files import missing_error, staged_download


class TorchvisionSource(ImageSource):
    """Images and labels of a torchvision data set under ``root`` (``paths.data_dir``).

    ``download``: fetch missing files (needs internet). ``verify``: check the published md5
    sums where torchvision has them (turn off only for files you made yourself, e.g. tests).
    Subclasses name the ``folder`` torchvision uses, the ``files`` it needs there and the
    page where the data set is ``published``, and read everything in ``read()``."""

    folder: str  # relative to root, e.g. "MNIST/raw"
    files: tuple[str, ...]
    published: str

    def __init__(self, root: str | Path, download: bool = True, verify: bool = True) -> None:
        self.root, self.download, self.verify = Path(root), download, verify
        self._images: torch.Tensor | None = None
        self._labels: np.ndarray | None = None

    @property
    def location(self) -> Path:
        """The folder that holds the files."""
        return self.root / self.folder

    def missing(self) -> list[str]:
        """The expected files (or folders) that are not there."""
        return [f for f in self.files if not (self.location / f).exists()]

    def check_available(self) -> None:
        if self.missing() and self.download:
            self.fetch()
        if missing := self.missing():
            why = "the download did not produce them" if self.download else "download is off"
            raise missing_error(self.name, self.location, missing, self.published, why)
        if self.verify:
            self.check_files()

    def check_files(self) -> None:
        """Raise ``DataError`` naming a file whose checksum or shape is wrong."""

    def fetch(self) -> None:
        """Download with torchvision into a staging folder; ``DataError`` when that fails."""
        try:
            top = Path(self.folder).parts[0]  # the entry torchvision makes under its root
            staged_download(
                self.root, self.download_into, keep=[top], needed=lambda: bool(self.missing())
            )
        except Exception as error:  # any failure of the network or the archive
            raise missing_error(
                self.name,
                self.location,
                self.missing(),
                self.published,
                f"the download failed: {type(error).__name__}: {error}".replace("\n", " "),
            ) from error

    @abstractmethod
    def download_into(self, root: Path) -> None:
        """Let torchvision download the data set under ``root``."""

    @abstractmethod
    def read(self) -> tuple[torch.Tensor, np.ndarray]:
        """All images (uint8 ``[N, C, H, W]``) and labels ``[N, L]`` from the files."""

    def _arrays(self) -> tuple[torch.Tensor, np.ndarray]:
        if self._images is None:
            self.check_available()
            try:
                images, labels = self.read()
            except (OSError, ValueError, RuntimeError, KeyError, EOFError) as error:
                raise DataError(
                    f"The {self.name} files in {self.location} cannot be read: "
                    f"{type(error).__name__}: {error}. Delete them and download them again."
                ) from error
            if images.dtype != torch.uint8 or images.shape[1:] != self.image_shape:
                raise DataError(
                    f"The {self.name} files in {self.location} hold images of shape "
                    f"{tuple(images.shape[1:])} ({images.dtype}), expected uint8 "
                    f"{self.image_shape}."
                )
            self._images, self._labels = images.contiguous(), labels
        return self._images, self._labels

    def __len__(self) -> int:
        return len(self._arrays()[0])

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        images = self._arrays()[0]
        return images if indices is None else images[torch.as_tensor(indices, dtype=torch.long)]

    def labels(self, indices: np.ndarray | None = None) -> np.ndarray:
        labels = self._arrays()[1]
        return labels if indices is None else labels[np.asarray(indices, dtype=np.int64)]
