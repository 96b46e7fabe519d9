"""The shared pipeline: resize / pad / binarise, memory maps, device placement, checks."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from vaelab.data import DataError, ImageDataModule
from vaelab.data.files import read_rows
from vaelab.data.storage import allocate_uint8, place
from vaelab.data.transforms import binarize_uint8, pad_uint8, resize_uint8

from .test_datamodule import Numbered


class Grey(Numbered):
    """Numbered's images plus a grey ramp in the last row; no factors."""

    def images(self, indices=None):
        out = super().images(indices)
        out[:, 0, 7] = torch.arange(0, 256, 32, dtype=torch.uint8)
        return out


def make(source=None, **kwargs) -> ImageDataModule:
    settings = dict(batch_size=8, val_fraction=0.1, test_fraction=0.1, image_size=8, seed=3)
    dm = ImageDataModule(source or Numbered(), **{**settings, **kwargs})
    dm.setup()
    return dm


def test_has_factors_tells_ground_truth_sources_apart():
    assert Numbered().has_factors and Numbered().labels(np.array([31])).tolist() == [[1, 0, 1]]
    from vaelab.data.digits import Digits

    assert not Digits().has_factors and Digits().labels is not None


def test_pad_centres_and_crops():
    images = torch.arange(1, 17, dtype=torch.uint8).view(1, 1, 4, 4)
    padded = pad_uint8(images, 8)
    assert torch.equal(padded[0, 0, 2:6, 2:6], images[0, 0]) and padded.sum() == images.sum()
    assert torch.equal(pad_uint8(padded, 4), images)


def test_resize_and_binarize():
    images = torch.full((3, 1, 8, 8), 200, dtype=torch.uint8)
    assert torch.equal(resize_uint8(images, 16), torch.full((3, 1, 16, 16), 200, dtype=torch.uint8))
    ramp = torch.tensor([0, 127, 128, 255], dtype=torch.uint8)
    assert binarize_uint8(ramp).tolist() == [0, 0, 255, 255]


def test_binarized_images_are_0_or_255_and_need_bernoulli():
    dm = make(Grey(), binarize=True)
    assert set(dm.images.unique().tolist()) <= {0, 255}
    assert dm.images[:, 0, 7].tolist()[0] == [0, 0, 0, 0, 255, 255, 255, 255]
    with pytest.raises(DataError, match=r"binary here \(data\.binarize=true\), so data\.likelihood "
                       r"must be bernoulli, not gaussian"):  # fmt: skip
        make(Grey(), binarize=True, likelihood="gaussian")
    assert make(Grey(), likelihood="gaussian").images[0, 0, 7, 1] == 32  # grey stays grey


def test_pad_through_the_datamodule_keeps_the_split():
    plain, padded = make(), make(image_size=12, fit="pad")
    assert padded.images.shape == (120, 1, 12, 12)
    assert torch.equal(padded.images[:, :, 2:10, 2:10], plain.images)
    assert all((plain.split_indices[k] == padded.split_indices[k]).all() for k in ("train", "val"))
    with pytest.raises(DataError, match=r"data\.fit must be one of resize, pad"):
        make(fit="stretch")


def test_large_sets_are_memory_mapped_without_leaving_files(tmp_path):
    in_memory = make(image_size=16)
    mapped = make(image_size=16, max_memory_gb=1e-6, spill_dir=tmp_path / "spill")
    assert torch.equal(mapped.images, in_memory.images)
    assert list((tmp_path / "spill").iterdir()) == []  # the file has no name
    batch = next(iter(mapped.train_dataloader()))
    assert batch.dtype == torch.uint8 and batch.shape == (8, 1, 16, 16)
    assert allocate_uint8((2, 3), 1.0).shape == (2, 3)


def test_cuda_without_a_gpu_falls_back_to_cpu_with_one_log_line(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="vaelab.data.storage"):
        dm = make(device="cuda")
    assert dm.images.device.type == "cpu"
    assert len(caplog.records) == 1 and "CUDA is not available" in caplog.text
    assert next(iter(dm.train_dataloader())).device.type == "cpu"
    with pytest.raises(ValueError, match="cpu or cuda"):
        place(torch.zeros(1), "tpu")
    with pytest.raises(DataError, match=r"data\.device must be cpu, cuda or cuda:<index>"):
        make(device="gpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_keeps_images_and_batches_on_the_gpu():
    dm = make(device="cuda")
    assert dm.images.device.type == "cuda"
    batches = list(dm.train_dataloader())
    assert all(b.device.type == "cuda" and b.dtype == torch.uint8 for b in batches)
    assert dm.split_images("val", 4).device.type == "cpu"
    cpu = make()
    assert torch.equal(dm.images.cpu(), cpu.images)


def test_read_rows_in_blocks_matches_fancy_indexing():
    array = np.arange(5000 * 3).reshape(5000, 3)
    rows = np.random.default_rng(0).integers(0, 5000, 700)
    assert (read_rows(array, rows, block=128) == array[rows]).all()
    assert read_rows(array, np.array([], dtype=np.int64)).shape == (0, 3)
