"""CelebA: 202,599 aligned colour face photos (178x218) with 40 binary attributes, read by
torchvision from ``<root>/celeba`` (``img_align_celeba/`` and its list files). Each image is
cut to its centre ``crop x crop`` square and resized to 64x64 as it is read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets, transforms
from torchvision.datasets.utils import check_integrity

from vaelab.data.files import corrupt_error
from vaelab.data.torchvision_source import TorchvisionSource

IMAGE_FOLDER = "img_align_celeba"
LIST_FILES = {name: md5 for _, md5, name in datasets.CelebA.file_list if name.endswith(".txt")}


class _UnverifiedCelebA(datasets.CelebA):
    """torchvision's reader without its md5 checks of the list files, for files that are not
    the published ones (tests); every list file and the image folder must still be there."""

    def _check_integrity(self) -> bool:
        folder = os.path.join(self.root, self.base_folder)
        files = all(os.path.isfile(os.path.join(folder, name)) for name in LIST_FILES)
        return files and os.path.isdir(os.path.join(folder, IMAGE_FOLDER))


class CelebA(TorchvisionSource):
    """Liu et al.'s CelebA (all splits); ``labels()`` are the 40 attributes (0/1) ``[N, 40]``
    named in ``label_names``. Images are decoded on request, not held by the source."""

    name = "celeba"
    folder = datasets.CelebA.base_folder
    files = (IMAGE_FOLDER, *LIST_FILES)
    published = (
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive: "
        "img_align_celeba.zip and the list files; unzip the images into img_align_celeba/)"
    )

    def __init__(
        self,
        root: str | Path,
        crop: int = 148,
        size: int = 64,
        download: bool = True,
        verify: bool = True,
    ) -> None:
        super().__init__(root, download=download, verify=verify)
        self.crop, self.size = crop, size
        self._dataset: datasets.CelebA | None = None
        self.label_names: tuple[str, ...] = ()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def check_files(self) -> None:
        for name, md5 in LIST_FILES.items():
            if not check_integrity(str(self.location / name), md5):
                raise corrupt_error(self.location / name, f"its md5 sum is not the published {md5}")

    def download_into(self, root: Path) -> None:
        datasets.CelebA(root, split="all", download=True)

    def dataset(self) -> datasets.CelebA:
        """torchvision's CelebA (all splits) that crops and resizes each image it reads."""
        if self._dataset is None:
            self.check_available()
            reader = datasets.CelebA if self.verify else _UnverifiedCelebA
            pipeline = transforms.Compose(
                [
                    transforms.CenterCrop(self.crop),
                    transforms.Resize(self.size, antialias=True),
                    transforms.PILToTensor(),
                ]
            )
            try:
                self._dataset = reader(self.root, split="all", transform=pipeline)
            except (OSError, ValueError, RuntimeError, IndexError) as error:
                raise corrupt_error(self.location, f"{type(error).__name__}: {error}") from error
            self.label_names = tuple(n for n in self._dataset.attr_names if n)
        return self._dataset

    def read(self) -> tuple[torch.Tensor, np.ndarray]:  # not used: images are read lazily
        return self.images(), self.labels()

    def __len__(self) -> int:
        return len(self.dataset())

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        data = self.dataset()
        rows = np.arange(len(data)) if indices is None else np.asarray(indices).reshape(-1)
        out = torch.empty((len(rows), *self.image_shape), dtype=torch.uint8)
        for i, row in enumerate(rows):
            try:
                out[i] = data[int(row)][0]
            except OSError as error:
                path = self.location / IMAGE_FOLDER / data.filename[int(row)]
                raise corrupt_error(path, f"it is not a readable image ({error})") from error
        return out

    def labels(self, indices: np.ndarray | None = None) -> np.ndarray:
        attr = self.dataset().attr.numpy().astype(np.int64)
        return attr if indices is None else attr[np.asarray(indices, dtype=np.int64)]
