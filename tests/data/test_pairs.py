"""Training pairs for Ada-GVAE: how many factors change (disentanglement_lib's
``simple_dynamics`` law), that exactly those change, the data order of the first images,
determinism, exact resume, DDP slices, and the refusal of data without factors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.data.test_datamodule import Numbered, index_in, make
from vaelab.data import DataError
from vaelab.data.digits import Digits
from vaelab.data.loader import IndexedImages, KeyedBatches
from vaelab.data.pairs import (
    PairedImages,
    check_pair_k,
    draw_changes,
    partner_factors,
    varying_factors,
)

SIZES = np.array([3, 4, 1, 5, 6])  # 4 factors vary; the one of a single class never changes


def reference_law(k: int, n_varying: int) -> dict[int, float]:
    """P(n factors change) of ``simple_dynamics``: k_obs = k, or uniform in 1..K-1 for
    k = -1; then n = random_state.choice([1, k_obs])."""
    k_values = range(1, n_varying) if k == -1 else [k]
    law: dict[int, float] = {}
    for k_obs in k_values:
        for n in (1, k_obs):
            law[n] = law.get(n, 0.0) + 0.5 / len(k_values)
    return law


@pytest.mark.parametrize("k", [-1, 3])
def test_exactly_n_factors_change_and_n_follows_the_references_law(k):
    rng = np.random.default_rng(0)
    n_pairs = 40_000
    first = np.stack([rng.integers(0, s, n_pairs) for s in SIZES], axis=1)
    changed, shift = draw_changes(n_pairs, SIZES, k, rng)
    second = partner_factors(first, changed, shift, SIZES)
    differ = second != first
    assert (differ == changed).all()  # a changed factor always takes another class
    assert not changed[:, 2].any() and ((second >= 0) & (second < SIZES)).all()
    n = differ.sum(1)
    expected = reference_law(k, n_varying=4)  # k=-1: {1: 2/3, 2: 1/6, 3: 1/6}; k=3: halves
    assert set(np.unique(n)) == set(expected)
    for value, p in expected.items():
        assert abs((n == value).mean() - p) < 0.01, (value, (n == value).mean(), p)
    # which factors change is uniform over the varying ones; the new class uniform over others
    rates = changed[:, [0, 1, 3, 4]].mean(0)
    assert np.allclose(rates, n.mean() / 4, atol=0.01)
    moved = second[changed[:, 4], 4] - first[changed[:, 4], 4]
    assert np.allclose(np.bincount(moved % 6, minlength=6)[1:] / len(moved), 1 / 5, atol=0.01)


def test_two_varying_factors_the_smallest_case():
    """Factors of 2 classes vary; with K = 2, k = -1 draws k_obs from {1}, so n = 1 always,
    and k may be 1 or 2 (the K factors), not 3."""
    sizes = np.array([2, 1, 2])
    assert varying_factors(sizes).tolist() == [True, False, True]
    changed, _ = draw_changes(2000, sizes, -1, np.random.default_rng(0))
    assert (changed.sum(1) == 1).all() and not changed[:, 1].any()
    two = OneFactor()
    two.factor_sizes = (2, 2)
    for k in (-1, 1, 2):
        check_pair_k(k, two)
    with pytest.raises(DataError, match="between 1 and the 2 factors"):
        check_pair_k(3, two)


def test_k_minus_one_law_by_hand():
    assert reference_law(-1, 3) == {1: 0.75, 2: 0.25}
    assert reference_law(2, 5) == {1: 0.5, 2: 0.5}


def test_non_grid_sources_redraw_missing_combinations_or_keep_the_first_image():
    first = np.array([[0, 0], [1, 1], [1, 2]])
    changed = np.array([[True, False], [True, False], [False, True]])
    shift = np.ones((3, 2), dtype=np.int64)
    sizes = np.array([3, 3])
    allowed = {(2, 0), (0, 1), (2, 2)}  # the other combinations have no image

    def exists(rows):
        return np.array([tuple(r) in allowed for r in rows])

    out = partner_factors(first, changed, shift, sizes, np.random.default_rng(0), exists)
    assert out[0].tolist() == [2, 0]  # (1, 0) missing: redrawn to the only other class, 2
    assert out[1].tolist() == [0, 1]  # (2, 1) missing: redrawn to 0
    assert out[2].tolist() == [1, 2]  # (1, 0) and (1, 1) missing: the first image twice


def pairs_of(dm) -> list[torch.Tensor]:
    return list(dm.train_dataloader())


def test_batches_are_pairs_whose_first_images_follow_the_usual_data_order():
    plain, paired = make(), make(pairs=True)
    batches = pairs_of(paired)
    assert [b.shape for b in batches] == [(8, 2, 1, 8, 8)] * len(batches)
    assert all(b.dtype == torch.uint8 for b in batches)
    for single, pair in zip(plain.train_dataloader(), batches, strict=True):
        assert torch.equal(single, pair[:, 0])
    source = Numbered()
    for pair in batches:
        a = source.factors_of(index_in(pair[:, 0]))
        b = source.factors_of(index_in(pair[:, 1]))
        assert set((a != b).sum(1)) <= {1, 2}  # K = 3: n in {1, 2}
    # validation and test stay single images
    assert next(iter(paired.val_dataloader())).shape == (12, 1, 8, 8)  # all 12 val images


def test_the_pair_stream_depends_only_on_the_seed_and_epoch():
    one, two, other = make(pairs=True), make(pairs=True), make(pairs=True, seed=4)
    a, b = pairs_of(one), pairs_of(two)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, pairs_of(other), strict=False))
    loader = one.train_dataloader()
    loader.sampler.set_epoch(1)
    assert not all(torch.equal(x[:, 1], y[:, 1]) for x, y in zip(a, loader, strict=True))


def test_a_resumed_loader_hands_out_the_same_pairs_as_an_uninterrupted_one():
    dm = make(pairs=True)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(2)
    whole = list(loader)
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches_done": 3}
    resumed = make(pairs=True).train_dataloader()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(whole) - 3
    assert all(torch.equal(x, y) for x, y in zip(rest, whole[3:], strict=True))


def test_ddp_ranks_take_their_slices_of_one_processs_pairs():
    dm = make(pairs=True)
    rows = dm._positions["train"]
    first = IndexedImages(dm.images, rows)

    def stream(rank: int, world_size: int) -> list[torch.Tensor]:
        batches = KeyedBatches(len(rows), 8, True, 3, True, rank, world_size)
        data = PairedImages(first, dm.split_indices["train"], dm.source, dm.source_images, -1, 3)
        return [data[item] for item in batches]

    whole = stream(0, 1)
    halves = zip(stream(0, 2), stream(1, 2), strict=True)
    assert all(torch.equal(torch.cat(h), w) for h, w in zip(halves, whole, strict=True))


def test_a_subset_reads_partners_from_the_whole_source():
    dm = make(pairs=True, subset=60)
    source = Numbered()
    for pair in pairs_of(dm):
        a = source.factors_of(index_in(pair[:, 0]))
        b = source.factors_of(index_in(pair[:, 1]))
        assert set((a != b).sum(1)) <= {1, 2}


class Sparse(Numbered):
    """Numbered's 4 x 5 x 6 classes without the combinations whose classes sum to a multiple
    of 3 (80 of 120 have an image): not a grid. Image i has the i-th remaining combination;
    ``index_of`` a missing one raises."""

    name = "sparse"
    combos = np.array([c for c in np.ndindex(4, 5, 6) if sum(c) % 3], dtype=np.int64)

    @property
    def is_grid(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self.combos)

    def factors_of(self, indices):
        return self.combos[np.asarray(indices, dtype=np.int64)]

    def index_of(self, classes):
        where = {tuple(c): i for i, c in enumerate(self.combos.tolist())}
        return np.array([where[tuple(c)] for c in np.asarray(classes).tolist()], dtype=np.int64)


def test_pairs_of_a_non_grid_source_exist_share_all_but_n_factors_and_repeat_by_seed():
    source = Sparse()
    first, again = (
        pairs_of(make(source=source, pairs=True)),
        pairs_of(make(source=Sparse(), pairs=True)),
    )
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    changed = []
    for pair in first:
        a = source.factors_of(index_in(pair[:, 0]))
        b = source.factors_of(index_in(pair[:, 1]))  # an image of the source: it exists
        assert (b.sum(1) % 3 != 0).all()
        changed += (a != b).sum(1).tolist()
    # a redraw finds an existing combination nearly always (n = 0: the first image twice)
    assert set(changed) <= {0, 1, 2} and changed.count(0) <= len(changed) // 10
    assert changed.count(1) > changed.count(2) > 0  # P(n = 1) = 3/4 with K = 3


class OneFactor(Numbered):
    factor_names = ("a", "b")
    factor_sizes = (12, 1)


@pytest.mark.parametrize(
    ("source", "k", "message"),
    [
        (Digits(), -1, "digits has no factors of variation; choose a data set with factors"),
        (OneFactor(), -1, "numbered has 1 factor with more than one class"),
        (Numbered(), 4, "data.pair_k must be -1 (a random number of changed factors per pair) "
                        "or between 1 and the 3 factors of numbered that vary, got 4"),
        (Numbered(), 0, "got 0"),
    ],
)  # fmt: skip
def test_pairs_without_factors_or_with_an_impossible_k_are_refused_in_one_sentence(
    source, k, message
):
    with pytest.raises(DataError) as error:
        make(source=source, pairs=True, pair_k=k, image_size=8)
    assert message in str(error.value)
