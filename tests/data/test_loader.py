"""The batch sampler, the gather and the loader's place in the epoch, on known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaelab.data.loader import IndexedImages, ResumableLoader, ShuffledBatches


@pytest.mark.parametrize(("n", "sizes"), [(12, [4, 4, 4]), (13, [4, 4, 4, 1]), (14, [4, 4, 4, 2])])
def test_batches_cover_every_index_once_and_only_the_last_is_short(n, sizes):
    for shuffle in (False, True):
        batches = list(ShuffledBatches(n, 4, shuffle=shuffle, seed=5))
        assert [len(b) for b in batches] == sizes == [4, 4, 4, *sizes[3:]]
        assert sorted(np.concatenate(batches)) == list(range(n))
        dropped = ShuffledBatches(n, 4, shuffle=shuffle, seed=5, drop_last=True)
        assert len(dropped) == 3 and [len(b) for b in dropped] == [4, 4, 4]


def test_the_permutation_is_numpys_for_seed_and_epoch():
    sampler = ShuffledBatches(10, 5, shuffle=True, seed=7)
    sampler.set_epoch(2)
    expected = np.random.default_rng([7, 2]).permutation(10)
    assert np.array_equal(np.concatenate(list(sampler)), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [(dict(rank=2, world_size=2), "got rank 2 of 2"), (dict(rank=-1, world_size=2), "rank -1"),
     (dict(rank=0, world_size=0), "got rank 0 of 0"),
     (dict(rank=0, world_size=3), "global batch size 8 must be a multiple of the number of "
                                  "processes 3"),
     (dict(rank=0, world_size=2, drop_last=False), "sharded batches need drop_last=True")],
)  # fmt: skip
def test_impossible_shards_are_refused_with_the_reason(kwargs, message):
    kwargs = {"drop_last": True, **kwargs}
    with pytest.raises(ValueError) as error:
        ShuffledBatches(20, 8, shuffle=True, **kwargs)
    assert str(error.value).startswith(("need 0 <= rank < world_size, ", "the global", "sharded"))
    assert message in str(error.value)


def loader(n: int = 20, batch: int = 4) -> ResumableLoader:
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1)
    sampler = ShuffledBatches(n, batch, shuffle=True, seed=1)
    return ResumableLoader(IndexedImages(images, np.arange(n)), sampler=sampler, batch_size=None)


def test_the_loaders_state_counts_the_batches_handed_out_and_resumes_after_them():
    whole = [b.flatten().tolist() for b in loader()]
    first = loader()
    assert first.state_dict() == {"epoch": 0, "batches_done": 0}  # saved before any batch
    it = iter(first)
    seen = [next(it).flatten().tolist() for _ in range(2)]
    state = first.state_dict()
    assert state == {"epoch": 0, "batches_done": 2}
    resumed = loader()
    resumed.load_state_dict(state)
    it = iter(resumed)
    rest = [next(it).flatten().tolist()]
    assert resumed.state_dict()["batches_done"] == 3  # counted on from the resumed place
    rest += [b.flatten().tolist() for b in it]
    assert seen + rest == whole
    assert [b.flatten().tolist() for b in resumed] == whole  # the next pass starts at 0


def test_gather_reads_the_rows_of_the_split():
    images = torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1) * 3
    split = IndexedImages(images, np.array([9, 2, 4]))
    assert len(split) == 3
    assert split[np.array([2, 0])].flatten().tolist() == [12, 27]
    assert split[[1]].flatten().tolist() == [6]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_the_torch_gather_equals_numpys(device):
    """The gather a GPU uses (torch's, on the images' device), here on the CPU too."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    images = torch.randint(0, 255, (50, 1, 4, 4), dtype=torch.uint8)
    rows, picks = np.arange(49, -1, -2), np.array([3, 0, 24, 7])
    split = IndexedImages(images.to(device), rows, torch_gather=True)
    batch = split[picks]
    assert batch.device.type == device and split._array is None
    assert torch.equal(batch.cpu(), IndexedImages(images, rows)[picks])
    assert torch.equal(batch.cpu(), images[rows[picks]])
    assert torch.equal(split[[1, 1]].cpu(), images[[47, 47]])
    assert len(split) == 25
    assert IndexedImages(images, rows)._array is not None  # the CPU's default: numpy's


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gather_on_the_gpu_equals_the_cpu_gather():
    images = torch.randint(0, 255, (50, 1, 4, 4), dtype=torch.uint8)
    rows, picks = np.arange(49, -1, -2), np.array([3, 0, 24, 7])
    on_gpu = IndexedImages(images.cuda(), rows)[picks]
    assert on_gpu.device.type == "cuda" and torch.equal(
        on_gpu.cpu(), IndexedImages(images, rows)[picks]
    )
