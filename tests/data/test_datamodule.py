"""The in-memory pipeline: seeded disjoint splits, uint8 batches by indexing, epoch shuffles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaelab.data import GroundTruthSource, ImageDataModule
from vaelab.data.loader import ShuffledBatches


class Numbered(GroundTruthSource):
    """Image i is filled with the value i % 256 in its first pixel row; factors 4 x 5 x 6."""

    name = "numbered"
    factor_names = ("a", "b", "c")
    factor_sizes = (4, 5, 6)
    image_shape = (1, 8, 8)

    def images(self, indices=None):
        idx = np.arange(len(self)) if indices is None else np.asarray(indices)
        out = torch.zeros(len(idx), 1, 8, 8, dtype=torch.uint8)
        out[:, 0, 0, :] = torch.as_tensor(idx % 256, dtype=torch.uint8)[:, None]
        out[:, 0, 1, 0] = torch.as_tensor(idx // 256, dtype=torch.uint8)
        return out


def index_in(images: torch.Tensor) -> np.ndarray:
    return (images[:, 0, 0, 0].long() + 256 * images[:, 0, 1, 0].long()).numpy()


def make(**kwargs) -> ImageDataModule:
    defaults = dict(
        batch_size=8,
        eval_batch_size=16,
        val_fraction=0.1,
        test_fraction=0.1,
        image_size=8,
        channels=1,
        seed=3,
    )
    source = kwargs.pop("source", None) or Numbered()
    dm = ImageDataModule(source, **{**defaults, **kwargs})
    dm.setup("fit")
    return dm


def test_mixed_radix_indexing_round_trips():
    src = Numbered()
    classes = src.sample_factors(50, np.random.default_rng(0))
    assert (src.factors_of(src.index_of(classes)) == classes).all()
    assert src.index_of(np.array([[1, 2, 3]]))[0] == 1 * 30 + 2 * 6 + 3
    with pytest.raises(ValueError, match="out of range"):
        src.index_of(np.array([[4, 0, 0]]))


def test_splits_are_disjoint_cover_the_data_and_depend_only_on_the_seed():
    dm = make()
    splits = dm.split_indices
    assert sum(len(v) for v in splits.values()) == 120
    assert len(splits["val"]) == len(splits["test"]) == 12
    assert not set(splits["train"]) & set(splits["val"]) and not set(splits["val"]) & set(
        splits["test"]
    )
    again, other = make(), make(seed=4)
    assert all((again.split_indices[k] == splits[k]).all() for k in splits)
    assert not (other.split_indices["val"] == splits["val"]).all()


def test_batches_are_uint8_images_of_their_split():
    dm = make()
    batches = list(dm.train_dataloader())
    assert len(batches) == 96 // 8
    assert all(b.dtype == torch.uint8 and b.shape == (8, 1, 8, 8) for b in batches)
    seen = np.concatenate([index_in(b) for b in batches])
    assert sorted(seen) == sorted(dm.split_indices["train"])
    val = np.concatenate([index_in(b) for b in dm.val_dataloader()])
    assert (val == dm.split_indices["val"]).all()  # in order, not shuffled


def test_each_epoch_has_its_own_seeded_order():
    dm = make()
    loader = dm.train_dataloader()
    first = np.concatenate([index_in(b) for b in loader])
    loader.sampler.set_epoch(1)
    second = np.concatenate([index_in(b) for b in loader])
    loader.sampler.set_epoch(0)
    again = np.concatenate([index_in(b) for b in loader])
    assert (first == again).all() and not (first == second).all()


def test_the_training_order_follows_the_seed():
    def order(seed: int) -> list[int]:
        return [i for b in ShuffledBatches(64, 8, True, seed=seed, drop_last=True) for i in b]

    assert order(0) == order(0) and order(0) != order(1)
    assert sorted(order(1)) == list(range(64))


def test_subset_by_count_and_fraction():
    assert len(make(subset=60).images) == 60
    assert len(make(subset=0.25).images) == 30
    assert set(make(subset=60).split_indices["train"]) <= set(range(120))


def test_images_are_resized_to_the_requested_side():
    dm = make(image_size=16)
    assert dm.images.shape == (120, 1, 16, 16) and dm.images.dtype == torch.uint8


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(ValueError, match=r"data\.channels is 3"):
        make(channels=3)


def test_shuffled_batches_drop_last_only_when_asked():
    assert len(ShuffledBatches(10, 4, shuffle=True, drop_last=True)) == 2
    assert [len(b) for b in ShuffledBatches(10, 4, shuffle=False)] == [4, 4, 2]


class StreamedNumbered(Numbered):
    """``Numbered`` read batch by batch; counts the images it is asked for."""

    streamed = True
    read = prepared = 0

    def prepare_streaming(self):
        self.prepared += 1

    def images(self, indices=None):
        out = super().images(indices)
        self.read += len(out)
        return out


@pytest.mark.parametrize("image_size", [8, 16])
def test_a_streamed_source_larger_than_memory_gives_the_same_batches_read_batch_by_batch(
    image_size,
):
    limit = 100 * image_size**2 / 2**30  # GiB: less than the 120 images take
    loaded = make(image_size=image_size, max_memory_gb=1.0)
    streamed = make(source=StreamedNumbered(), image_size=image_size, max_memory_gb=limit)
    assert isinstance(loaded.images, torch.Tensor) and streamed.source.read == 0
    assert streamed.source.prepared == 1
    first = next(iter(streamed.train_dataloader()))
    assert streamed.source.read == 8  # the batch, nothing more
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(loaded.split_indices[split], streamed.split_indices[split])
        assert torch.equal(loaded.split_images(split), streamed.split_images(split))
    assert torch.equal(first, next(iter(loaded.train_dataloader())))
    assert first.shape == (8, 1, image_size, image_size) and first.dtype == torch.uint8
    rows = np.array([5, 77, 3])
    assert torch.equal(streamed.source_images(rows), loaded.source_images(rows))
