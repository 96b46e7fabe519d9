"""CIFAR-10: 60,000 colour 32x32 images of 10 classes, read by torchvision from the pickled
batches in ``<root>/cifar-10-batches-py`` (train batches 1-5, then the test batch)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets
from torchvision.datasets.utils import check_integrity

from vaelab.data.files import corrupt_error
from vaelab.data.torchvision_source import TorchvisionSource

CHECKSUMS = dict(
    datasets.CIFAR10.train_list
    + datasets.CIFAR10.test_list
    + [[datasets.CIFAR10.meta["filename"], datasets.CIFAR10.meta["md5"]]]
)


class _UnverifiedCIFAR10(datasets.CIFAR10):
    """torchvision's reader without its md5 checks, for files that are not the published
    ones (tests); every file must still be there."""

    def _check_integrity(self) -> bool:
        folder = os.path.join(self.root, self.base_folder)
        return all(os.path.isfile(os.path.join(folder, name)) for name in CHECKSUMS)

    def _load_meta(self) -> None:
        path = os.path.join(self.root, self.base_folder, self.meta["filename"])
        with open(path, "rb") as infile:
            self.classes = pickle.load(infile, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


class CIFAR10(TorchvisionSource):
    """Krizhevsky's CIFAR-10; ``labels()`` is the class ``[N, 1]``, named in ``classes``."""

    name = "cifar10"
    folder = datasets.CIFAR10.base_folder
    files = tuple(CHECKSUMS)
    published = "https://www.cs.toronto.edu/~kriz/cifar.html (cifar-10-python.tar.gz)"
    label_names = ("class",)
    classes: tuple[str, ...] = ()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, 32, 32)

    def check_files(self) -> None:
        for name, md5 in CHECKSUMS.items():
            if not check_integrity(str(self.location / name), md5):
                raise corrupt_error(self.location / name, f"its md5 sum is not the published {md5}")

    def download_into(self, root: Path) -> None:
        datasets.CIFAR10(root, train=True, download=True)

    def read(self) -> tuple[torch.Tensor, np.ndarray]:
        reader = datasets.CIFAR10 if self.verify else _UnverifiedCIFAR10
        parts = [reader(self.root, train=train, download=False) for train in (True, False)]
        self.classes = tuple(parts[0].classes)
        images = np.concatenate([p.data for p in parts])  # [N, 32, 32, 3]
        labels = np.concatenate([p.targets for p in parts]).astype(np.int64)[:, None]
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels
