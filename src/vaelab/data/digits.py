"""scikit-learn's bundled handwritten digits: 1,797 grey 8x8 images (UCI optdigits, values
0..16 stored as ``round(v * 255 / 16)``) with their digit labels. Real data that needs no
download; the datamodule resizes or pads them to ``data.image_size``."""

from __future__ import annotations

import numpy as np
import torch

from vaelab.data.base import ImageSource


class Digits(ImageSource):
    """The 8x8 digits of ``sklearn.datasets.load_digits``; ``labels()`` is the digit."""

    name = "digits"
    label_names = ("digit",)

    def __init__(self) -> None:
        self._images: torch.Tensor | None = None
        self._labels: np.ndarray | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 8, 8)

    def _load(self) -> tuple[torch.Tensor, np.ndarray]:
        if self._images is None:
            from sklearn.datasets import load_digits  # scikit-learn is slow to import

            bunch = load_digits()
            grey = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
            self._images = torch.from_numpy(grey).unsqueeze(1).contiguous()
            self._labels = bunch.target.astype(np.int64)[:, None]
        return self._images, self._labels

    def __len__(self) -> int:
        return len(self._load()[0])

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        images = self._load()[0]
        return images if indices is None else images[torch.as_tensor(indices, dtype=torch.long)]

    def labels(self, indices: np.ndarray | None = None) -> np.ndarray:
        labels = self._load()[1]
        return labels if indices is None else labels[np.asarray(indices, dtype=np.int64)]
