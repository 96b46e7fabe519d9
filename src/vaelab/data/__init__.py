"""Data: image sources (one module per data set) and the datamodule that serves them."""

from vaelab.data.base import DataError, GroundTruthSource, ImageSource
from vaelab.data.datamodule import ImageDataModule

__all__ = ["DataError", "GroundTruthSource", "ImageDataModule", "ImageSource"]
