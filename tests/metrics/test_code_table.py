"""The code table: every distinct image encoded once, and the same values as encoding each
metric's images directly (the metric functions on their own) for the same seed."""

import numpy as np
import pytest
import torch

from tests.metrics.toy import ToySource, duplicate_encoder, mixing_encoder
from vaelab.data.dsprites import ProceduralDSprites
from vaelab.metrics.beta_vae import beta_vae_score
from vaelab.metrics.codes import CodeTable, DirectCodes, encode_table, sample_codes
from vaelab.metrics.dci import dci_from_codes
from vaelab.metrics.downstream import downstream_from_draw, draw_downstream
from vaelab.metrics.factor_vae import factor_vae_score
from vaelab.metrics.fairness import draw_fairness, fairness_from_draw
from vaelab.metrics.irs import irs_from_codes
from vaelab.metrics.mig import mig_from_codes
from vaelab.metrics.modularity import explicitness_from_codes, modularity_from_codes
from vaelab.metrics.sap import sap_from_codes
from vaelab.metrics.suite import METRICS, run_suite
from vaelab.metrics.unsupervised import unsupervised_from_codes

SMALL = {"num_train": 300, "num_test": 200, "num_variance_estimate": 300, "batch_size": 16,
         "downstream_sizes": (10, 100), "fairness_per_class": 5}  # fmt: skip
# dSprites renders each image (~0.1 ms): fewer draws keep the test at a few seconds
DSPRITES = {"num_train": 120, "num_test": 80, "num_variance_estimate": 120, "batch_size": 8,
            "downstream_sizes": (10, 20), "fairness_per_class": 2}  # fmt: skip


def centroid_encoder(x: torch.Tensor) -> torch.Tensor:
    """Centroid and mass of a dSprites image: a fixed function of each image."""
    grid = torch.arange(64.0) / 63
    img = x[:, 0]
    mass = img.sum((1, 2)).clamp_min(1.0)
    return torch.stack(
        [(img.sum(1) * grid).sum(1) / mass, (img.sum(2) * grid).sum(1) / mass, mass / 1000], 1
    )


def direct_values(source, encode, seed: int, sizes: dict[str, int]) -> dict[str, float]:
    """Each metric called on its own, on the stream the suite gives it, encoding directly."""
    spawned = np.random.SeedSequence(seed).spawn(len(METRICS) + 1)
    streams = dict(zip(("codes", *METRICS), spawned, strict=True))
    rng = {k: np.random.default_rng(s) for k, s in streams.items()}
    n, m, v, b = (sizes[k] for k in ("num_train", "num_test", "num_variance_estimate",
                                     "batch_size"))  # fmt: skip
    train, y = sample_codes(source, encode, n, rng["codes"])
    test, y_test = sample_codes(source, encode, m, rng["codes"])
    dci = dci_from_codes(train, y, test, y_test)
    explicit = explicitness_from_codes(train, y, test, y_test)
    beta = beta_vae_score(source, encode, rng["beta_vae"], b, n, m)
    factor = factor_vae_score(source, encode, rng["factor_vae"], b, n, m, v)
    downstream = draw_downstream(source, rng["downstream"], sizes["downstream_sizes"], m)
    tasks = downstream_from_draw(downstream, DirectCodes(source, encode), source)
    fair_draw = draw_fairness(source, rng["fairness"], n, sizes["fairness_per_class"])
    fair = fairness_from_draw(fair_draw, DirectCodes(source, encode), source)
    irs = irs_from_codes(train, y)
    unsupervised = {f"disent/{k}": v for k, v in unsupervised_from_codes(train).items()}
    return {
        **unsupervised,
        "disent/fairness": fair["fairness"],
        "disent/fairness_max": fair["fairness_max"],
        **{f"disent/{k}": v for k, v in tasks.items()},
        "disent/irs": irs["irs"],
        "disent/irs_active_dims": irs["active_dims"],
        "disent/mig": mig_from_codes(train, y),
        "disent/sap": sap_from_codes(train, y, test, y_test),
        "disent/dci[gbt]/d": dci["disentanglement"],
        "disent/dci[gbt]/c": dci["completeness"],
        "disent/dci[gbt]/i_test": dci["informativeness_test"],
        "disent/modularity": modularity_from_codes(train, y),
        "disent/explicitness_test": explicit["test"],
        "disent/beta_vae_train": beta["train_accuracy"],
        "disent/beta_vae_eval": beta["eval_accuracy"],
        "disent/factor_vae_train": factor["train_accuracy"],
        "disent/factor_vae_eval": factor["eval_accuracy"],
        "disent/factor_vae_active_dims": factor["num_active_dims"],
    }


@pytest.mark.parametrize(
    ("source", "encode", "sizes"),
    [(ToySource(), mixing_encoder(), SMALL), (ProceduralDSprites(), centroid_encoder, DSPRITES)],
    ids=["toy-rotated", "dsprites-centroid"],
)
def test_table_path_equals_direct_path(source, encode, sizes):
    suite = run_suite(source, encode, seed=3, **sizes).values
    direct = direct_values(source, encode, seed=3, sizes=sizes)
    assert {k: suite[k] for k in direct} == direct  # exactly, not approximately


def test_each_distinct_image_is_encoded_once():
    encoded: list[np.ndarray] = []

    def images(indices):
        encoded.append(np.asarray(indices).copy())
        return ProceduralDSprites().images(indices)

    result = run_suite(ProceduralDSprites(), centroid_encoder, 0, images=images, **DSPRITES)
    seen = np.concatenate(encoded)
    assert len(seen) == len(np.unique(seen)) == result.values["disent/encoded_images"]
    # 2 x 8 x 200 + 120 + 8 x 200 + 200 + 10 + 80 + 20 + 80 + 120 + 2 x 4 x 113 images were
    # drawn, many of them twice
    assert len(seen) < 2 * 8 * 200 + 120 + 8 * 200 + 200 + 190 + 120 + 2 * 4 * 113
    assert result.importance.shape == (3, 5) and result.mutual_info.shape == (3, 5)


def test_whole_data_set_in_order_when_most_of_it_is_needed():
    source = ToySource()  # 120 images
    batches = []

    def images(indices):
        batches.append(np.asarray(indices))
        return source.images(indices)

    table = encode_table(len(source), np.arange(0, 120, 2), duplicate_encoder, images, 50)
    assert table.indices is not None and len(table) == 60  # half: only the distinct ones
    batches.clear()
    table = encode_table(len(source), np.r_[np.arange(100), 5, 5], duplicate_encoder, images, 50)
    assert table.indices is None and len(table) == 120  # most: everything, in order
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(120))


def test_table_reads_the_codes_it_encoded_and_refuses_others():
    source = ToySource()
    table = encode_table(len(source), np.array([7, 3, 3, 50]), mixing_encoder(), source.images)
    direct = DirectCodes(source, mixing_encoder())
    np.testing.assert_array_equal(table(np.array([50, 3, 7, 3])), direct([50, 3, 7, 3]))
    with pytest.raises(KeyError):
        table(np.array([4]))
    full = CodeTable(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(full(np.array([2, 0])), [[4.0, 5.0], [0.0, 1.0]])
