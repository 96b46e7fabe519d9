"""The suite's three steps on the toy source (fast): each metric's own stream, the settings
passed on, the matrices kept for the figures, the keys and lines it writes, the code table's
batches, devices and dtypes."""

from __future__ import annotations

import logging
import re
import time

import numpy as np
import pytest
import torch

from tests.metrics.toy import ToySource, identity_encoder, mixing_encoder
from vaelab.metrics.codes import TABLE_BATCH, CodeTable, DirectCodes, encode_table
from vaelab.metrics.dci import importance_matrix
from vaelab.metrics.downstream import downstream_from_draw
from vaelab.metrics.draws import SharedDraw, draw_suite, needed_indices
from vaelab.metrics.fairness import fairness_from_draw
from vaelab.metrics.infomec import infomec_from_codes
from vaelab.metrics.irs import irs_from_codes
from vaelab.metrics.settings import METRICS, SuiteConfig, make_config
from vaelab.metrics.suite import evaluate_disentanglement, run_suite, score_suite, source_notes
from vaelab.metrics.unsupervised import unsupervised_from_codes
from vaelab.metrics.utils import discrete_entropy, discrete_mutual_info, discretize

SMALL = {"num_train": 200, "num_test": 100, "num_variance_estimate": 200, "batch_size": 8,
         "downstream_sizes": (10, 100), "fairness_per_class": 5}  # fmt: skip


def scores(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if "/time/" not in k}


def test_the_defaults_and_unknown_settings():
    cfg = make_config(num_train=70)
    assert cfg == SuiteConfig(num_train=70) and cfg.num_test == 5_000
    with pytest.raises(TypeError, match=r"unknown disentanglement settings \['bins', 'trian'\]"):
        make_config(trian=3, bins=4)
    with pytest.raises(ValueError, match=r"unknown metrics \['udr'\]"):
        run_suite(ToySource(), identity_encoder, metrics=["mig", "udr"])


def test_each_metric_draws_from_its_own_stream():
    source, cfg = ToySource(), make_config(**SMALL)
    alone = {m: draw_suite(source, 5, [m], cfg) for m in METRICS}
    together = draw_suite(source, 5, METRICS, cfg)
    assert set(together) == {"codes", "beta_vae", "factor_vae", "downstream", "fairness"}
    assert set(alone["mig"]) == set(alone["sap"]) == {"codes"}
    assert set(alone["beta_vae"]) == {"beta_vae"} and set(alone["factor_vae"]) == {"factor_vae"}
    np.testing.assert_array_equal(alone["dci"]["codes"].train, together["codes"].train)
    np.testing.assert_array_equal(alone["dci"]["codes"].test, together["codes"].test)
    for m in ("beta_vae", "factor_vae"):
        np.testing.assert_array_equal(
            needed_indices(source, alone[m]), needed_indices(source, {m: together[m]})
        )
    codes = together["codes"]
    assert codes.train.shape == (200, 3) and codes.test.shape == (100, 3)
    assert not np.array_equal(codes.train[:100], codes.test)  # two draws, not one twice
    other = draw_suite(source, 6, METRICS, cfg)
    assert not np.array_equal(other["codes"].train, codes.train)  # the seed reaches them


def test_a_metrics_value_does_not_depend_on_which_others_run():
    source, encode = ToySource(), mixing_encoder()
    together = scores(evaluate_disentanglement(source, encode, 2, METRICS, **SMALL))
    for m in ("mig", "modularity", "beta_vae", "factor_vae"):
        alone = scores(evaluate_disentanglement(source, encode, 2, [m], **SMALL))
        mine = {k: v for k, v in alone.items() if k.startswith(f"disent/{m}")}
        assert mine and mine == {k: together[k] for k in mine}
    assert scores(evaluate_disentanglement(source, encode, 3, ["mig"], **SMALL)) != {
        k: v for k, v in together.items() if k == "disent/mig"
    }


def test_needed_indices_list_every_drawn_image():
    source, cfg = ToySource(), make_config(**SMALL)
    assert needed_indices(source, {}).dtype == np.int64 and len(needed_indices(source, {})) == 0
    draws = draw_suite(source, 0, METRICS, cfg)
    shared = draws["codes"]
    needed = needed_indices(source, {"codes": shared})
    np.testing.assert_array_equal(
        needed, np.r_[source.index_of(shared.train), source.index_of(shared.test)]
    )
    # the same list whatever the order of the draws
    reordered = {k: draws[k] for k in reversed(list(draws))}
    np.testing.assert_array_equal(
        np.sort(needed_indices(source, reordered)), np.sort(needed_indices(source, draws))
    )
    # BetaVAE: (train, test) points of 2 x batch images; FactorVAE: variance + votes
    downstream = (10 + 100) + (100 + 100)
    fairness = 200 + 5 * 2 * (4 + 5 + 6)  # training rows; 5 per value of each sensitive factor
    total = 300 + 2 * 8 * 300 + 200 + 8 * 300 + downstream + fairness
    assert len(needed_indices(source, draws)) == total


def test_the_suite_writes_every_key_the_matrices_and_one_line_per_metric(caplog):
    source, cfg = ToySource(), make_config(**SMALL)
    caplog.set_level(logging.INFO, logger="vaelab.metrics")
    start = time.perf_counter()
    result = run_suite(source, identity_encoder, seed=1, **SMALL)
    elapsed = time.perf_counter() - start
    values = result.values
    want = {
        "mig", "sap", "dci[gbt]/d", "dci[gbt]/c", "dci[gbt]/i_train", "dci[gbt]/i_test",
        "dci[rf]/d", "dci[rf]/c", "dci[rf]/i_train", "dci[rf]/i_test", "modularity",
        "infomec[range]/m", "infomec[range]/e", "infomec[range]/c", "infomec[range]/active_dims",
        "dci_es[rf]/e", "dci_es[rf]/s",
        "explicitness_train", "explicitness_test", "beta_vae_train", "beta_vae_eval",
        "factor_vae_train", "factor_vae_eval", "factor_vae_active_dims", "encoded_images",
        "irs", "irs_active_dims", "gaussian_tc", "gaussian_wasserstein",
        "gaussian_wasserstein_norm", "mutual_info", "downstream_lr_10", "downstream_gbt_10",
        "downstream_lr_100", "downstream_gbt_100", "fairness", "fairness_max",
    }  # fmt: skip
    assert set(scores(values)) == {f"disent/{k}" for k in want}
    assert {k for k in values if "/time/" in k} == {
        f"disent/time/{m}" for m in (*METRICS, "encode")
    }
    assert all(0 <= values[k] <= elapsed for k in values if "/time/" in k)
    # a perfect code: every score at its best, and three active latents
    for key in ("dci[gbt]/d", "dci[gbt]/c", "modularity", "beta_vae_eval", "factor_vae_eval",
                "irs", "infomec[range]/e", "dci_es[rf]/s"):  # fmt: skip
        assert values[f"disent/{key}"] == pytest.approx(1.0, abs=0.002), key
    for key in ("infomec[range]/m", "infomec[range]/c", "dci[rf]/i_test"):
        assert values[f"disent/{key}"] > 0.95, key  # MI by k-nearest neighbours: a little below
    assert values["disent/infomec[range]/active_dims"] == 3.0
    assert values["disent/dci_es[rf]/e"] > 0.8  # probes of depth 1 and 2 cannot be perfect
    assert values["disent/mig"] > 0.95  # MI estimated from 200 codes: a little below 1
    assert values["disent/factor_vae_active_dims"] == 3.0
    assert values["disent/encoded_images"] == len(source)  # most images: the whole set once
    # the matrices of the figures are the ones of the shared draw's codes
    shared = draw_suite(source, 1, ["mig"], cfg)["codes"]
    train = identity_encoder(source.images_of(shared.train).float() / 255)[0].double().numpy()
    test = identity_encoder(source.images_of(shared.test).float() / 255)[0].double().numpy()
    np.testing.assert_array_equal(
        result.mutual_info, discrete_mutual_info(discretize(train, cfg.num_bins), shared.train)
    )
    np.testing.assert_array_equal(result.entropy, discrete_entropy(shared.train))
    np.testing.assert_array_equal(
        result.importance, importance_matrix(train, shared.train, test, shared.test)[0]
    )
    said = [r.getMessage() for r in caplog.records if r.name == "vaelab.metrics.suite"]
    assert [s.split()[0] for s in said] == list(METRICS)
    assert re.fullmatch(rf"mig +\d+\.\d s  mig {values['disent/mig']:.3f}", said[0])
    dci = said[METRICS.index("dci")]
    assert re.search(
        r"  dci\[gbt\]/d 1\.000, dci\[gbt\]/c 1\.000, dci\[gbt\]/i_train 1\.000, "
        r"dci\[gbt\]/i_test 1\.000$",
        dci,
    )
    line = said[METRICS.index("factor_vae")]
    assert "factor_vae_eval 1.000" in line and "factor_vae_active_dims 3.000" in line


def test_settings_reach_the_metrics():
    source, encode = ToySource(), mixing_encoder()
    base = scores(evaluate_disentanglement(source, encode, 0, ["mig", "dci"], **SMALL))
    for setting, metric in (("num_bins", "mig"), ("dci_estimator", "dci[gbt]/d")):
        value = 5 if setting == "num_bins" else "sklearn"
        changed = evaluate_disentanglement(source, encode, 0, ["mig", "dci"], **SMALL,
                                           **{setting: value})  # fmt: skip
        assert changed[f"disent/{metric}"] != base[f"disent/{metric}"], setting
    pruned = evaluate_disentanglement(
        source, identity_encoder, 0, ["factor_vae"], **SMALL, prune_threshold=10.0
    )
    assert pruned["disent/factor_vae_active_dims"] == 0.0


def test_each_setting_gives_its_metrics_value_as_a_direct_call():
    """Non-default bins, tree estimators and pruning reach IRS, the unsupervised scores,
    InfoMEC, fairness and the downstream tasks: each value is that of its function called
    on the same draw with the same setting. MI is computed only for MIG and modularity.
    Mixed codes whose third latent, scaled by 1/15, is active by range / 20 and inactive by
    IQR / 10."""
    source, mix = ToySource(), mixing_encoder()

    def encode(x: torch.Tensor) -> torch.Tensor:
        return mix(x) * torch.tensor([1.0, 1.0, 1 / 15])

    setting = {"num_bins": 5, "dci_estimator": "sklearn", "downstream_estimator": "sklearn",
               "infomec_pruning": "iqr"}  # fmt: skip
    metrics = ["irs", "unsupervised", "infomec", "fairness", "downstream"]
    cfg = make_config(**SMALL, **setting)
    result = run_suite(source, encode, 3, metrics, **SMALL, **setting)
    assert result.mutual_info is None and result.entropy is None
    draws, codes = draw_suite(source, 3, metrics, cfg), DirectCodes(source, encode)
    shared = draws["codes"].train
    train = codes(source.index_of(shared)).astype(np.float64)
    irs = irs_from_codes(train, shared, num_bins=5)
    info = infomec_from_codes(train, shared, "iqr")
    expected = {
        "irs": irs["irs"], "irs_active_dims": irs["active_dims"],
        **unsupervised_from_codes(train, 5),
        "infomec[iqr]/m": info["infom"], "infomec[iqr]/e": info["infoe"],
        "infomec[iqr]/c": info["infoc"], "infomec[iqr]/active_dims": info["active_dims"],
        **fairness_from_draw(draws["fairness"], codes, source, "sklearn"),
        **downstream_from_draw(draws["downstream"], codes, source, "sklearn"),
    }  # fmt: skip
    got = scores(result.values)
    del got["disent/encoded_images"]
    assert got == pytest.approx({f"disent/{k}": v for k, v in expected.items()}, rel=1e-12)
    assert got["disent/infomec[iqr]/active_dims"] == 2.0


def test_the_new_measures_settings_reach_them_and_name_their_variant():
    """The pruning rule is in InfoMEC's keys; DCI-ES's depth grid and tree count change E;
    the boosted-tree and forest DCIs are computed in one evaluation under their own keys."""
    source, encode = ToySource(), mixing_encoder()
    both = scores(evaluate_disentanglement(source, encode, 0, ["dci", "dci_rf"], **SMALL))
    assert {k.split("/")[1] for k in both} == {"dci[gbt]", "dci[rf]", "encoded_images"}
    assert both["disent/dci[gbt]/d"] != both["disent/dci[rf]/d"]
    iqr = evaluate_disentanglement(source, encode, 0, ["infomec"], **SMALL, infomec_pruning="iqr")
    assert "disent/infomec[iqr]/m" in iqr and "disent/infomec[range]/m" not in iqr
    # latents as classes: plug-in mutual information instead of the k-nearest-neighbour one
    both = [
        evaluate_disentanglement(source, identity_encoder, 0, ["infomec"], **SMALL, **setting)
        for setting in ({}, {"infomec_discrete_latents": True})
    ]
    assert both[0]["disent/infomec[range]/m"] != both[1]["disent/infomec[range]/m"]
    few = {**SMALL, "dci_es_trees": 10}
    base = evaluate_disentanglement(source, encode, 0, ["dci_es"], **few)["disent/dci_es[rf]/e"]
    for setting in ({"dci_es_depths": (1, 2)}, {"dci_es_trees": 3}, {"dci_es_refit": True}):
        changed = evaluate_disentanglement(source, encode, 0, ["dci_es"], **{**few, **setting})
        assert changed["disent/dci_es[rf]/e"] != base, setting


def test_score_suite_reads_only_the_table():
    source, cfg = ToySource(), make_config(**SMALL)
    draws = draw_suite(source, 0, ["mig", "sap"], cfg)
    table = encode_table(len(source), needed_indices(source, draws), identity_encoder,
                         source.images)  # fmt: skip
    direct = DirectCodes(source, identity_encoder)
    assert score_suite(source, draws, table, ["mig", "sap"], cfg).values.keys() == {
        "disent/mig", "disent/sap", "disent/time/mig", "disent/time/sap"
    }  # fmt: skip
    a = scores(score_suite(source, draws, table, ["mig", "sap"], cfg).values)
    assert a == scores(score_suite(source, draws, direct, ["mig", "sap"], cfg).values)
    assert isinstance(draws["codes"], SharedDraw)


def test_the_table_batches_by_device_and_keeps_the_codes_dtype(caplog):
    source = ToySource()
    sizes = []

    def images(indices):
        sizes.append(len(indices))
        return source.images(indices)

    def float64_encoder(x):
        assert x.dtype == torch.float32 and float(x.max()) <= 1.0  # images / 255
        return identity_encoder(x)[0].double(), None

    caplog.set_level(logging.INFO, logger="vaelab.metrics")
    table = encode_table(len(source), np.arange(100), float64_encoder, images)
    assert sizes == [TABLE_BATCH["cpu"], 56] == [64, 56] and table.codes.dtype == np.float64
    sizes.clear()
    table = encode_table(len(source), np.arange(100), mixing_encoder(), images, device="cpu")
    assert sizes == [64, 56] and table.codes.dtype == np.float32
    said = [r.getMessage() for r in caplog.records if r.name == "vaelab.metrics.codes"]
    assert re.fullmatch(r"encoded all 120 images in \d+\.\d s \([\d,]+ images/s\)", said[0])
    empty = encode_table(len(source), np.zeros(0, np.int64), mixing_encoder(), images)
    assert len(empty) == 0 and empty.codes.shape == (0, 0)
    np.testing.assert_array_equal(empty.indices, [])


def test_the_table_refuses_an_index_past_its_last():
    table = CodeTable(np.arange(6.0).reshape(3, 2), np.array([2, 5, 9]))
    np.testing.assert_array_equal(table(np.array([9, 2])), [[4.0, 5.0], [0.0, 1.0]])
    assert table(np.array([5])).dtype == np.float64
    for index in (10, 0, 3):
        with pytest.raises(KeyError) as error:
            table(np.array([index]))
        assert error.value.args == ("the code table was asked for an image it did not encode",)


def test_direct_codes_of_no_images_are_an_empty_table():
    codes = DirectCodes(ToySource(), identity_encoder, 4)
    assert codes(np.zeros(0, np.int64)).shape == (0, 0)
    assert codes(np.arange(6)).shape == (6, 3)  # two batches of 4 and 2


class _OneValueFactor(ToySource):
    factor_names = ("a",)
    factor_sizes = (1,)


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
def test_a_factor_of_one_value_is_noted_where_its_scores_are_nan():
    """A factor table with a constant column gave NaN scores in metrics.json without a word."""
    source = _OneValueFactor()
    notes, metrics = source_notes(source, ["dci", "modularity"])
    assert notes == [
        "factor a takes one value only: what a metric computes per factor is undefined there, "
        "and a score that averages over the factors (DCI's disentanglement, explicitness) may "
        "be NaN"
    ]
    assert metrics == ["dci", "modularity"]  # scored all the same, as before
    values = run_suite(source, identity_encoder, seed=0, metrics=metrics, **SMALL).values
    assert np.isnan(values["disent/dci[gbt]/d"]) and np.isnan(values["disent/explicitness_test"])
    assert not source_notes(ToySource(), ["dci"])[0]
