"""MNIST and Fashion-MNIST: 70,000 grey 28x28 images (train then test) with class labels,
read from the IDX files by torchvision (``<root>/MNIST/raw``, ``<root>/FashionMNIST/raw``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision import datasets

from vaelab.data.torchvision_source import TorchvisionSource

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SPLITS = {"all": (True, False), "train": (True,), "test": (False,)}


class MNIST(TorchvisionSource):
    """LeCun et al.'s handwritten digits; ``split``: ``all`` (70,000), ``train`` or ``test``.

    ``labels()`` is the digit ``[N, 1]``."""

    name = "mnist"
    dataset_class = datasets.MNIST
    folder = "MNIST/raw"
    files = IDX_FILES
    published = "http://yann.lecun.com/exdb/mnist/ (mirrored by torchvision)"
    label_names = ("digit",)
    train_size, test_size = 60000, 10000

    def __init__(
        self, root: str | Path, split: str = "all", download: bool = True, verify: bool = True
    ) -> None:
        super().__init__(root, download=download, verify=verify)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.split = split

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28)

    def download_into(self, root: Path) -> None:
        for train in (True, False):
            self.dataset_class(root, train=train, download=True)

    def read(self) -> tuple[torch.Tensor, np.ndarray]:
        parts = [self.dataset_class(self.root, train=t, download=False) for t in SPLITS[self.split]]
        for part, train in zip(parts, SPLITS[self.split], strict=True):
            expected = self.train_size if train else self.test_size
            if self.verify and len(part.data) != expected:
                raise ValueError(
                    f"{'train' if train else 't10k'} files hold {len(part.data)} images, "
                    f"expected {expected}"
                )
            if len(part.data) != len(part.targets):
                raise ValueError(f"{len(part.data)} images but {len(part.targets)} labels")
        images = torch.cat([p.data for p in parts]).unsqueeze(1)
        labels = torch.cat([p.targets for p in parts]).numpy().astype(np.int64)[:, None]
        return images, labels


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 28x28 grey images of 10 kinds of clothing, MNIST's format."""

    name = "fashion_mnist"
    dataset_class = datasets.FashionMNIST
    folder = "FashionMNIST/raw"
    published = "https://github.com/zalandoresearch/fashion-mnist"
    label_names = ("class",)
