"""Run the disentanglement metrics on one model and return a flat, loggable dict.

MIG, SAP, DCI and modularity/explicitness share one draw of ``num_train`` training and
``num_test`` test codes (each metric's definition draws its own; sharing them changes only
which random images are used). BetaVAE and FactorVAE draw their own batches. Every metric has
its own random stream spawned from ``seed``, so its value does not depend on which others run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.beta_vae import beta_vae_score
from vaelab.metrics.dci import Estimator, dci_from_codes
from vaelab.metrics.factor_vae import factor_vae_score
from vaelab.metrics.mig import mig_from_codes
from vaelab.metrics.modularity import explicitness_from_codes, modularity_from_codes
from vaelab.metrics.sap import sap_from_codes
from vaelab.metrics.utils import ENCODE_BATCH, NUM_BINS, Encode, sample_codes

METRICS = ("mig", "dci", "sap", "modularity", "beta_vae", "factor_vae")
CODE_METRICS = ("mig", "dci", "sap", "modularity")


@dataclass(frozen=True)
class SuiteConfig:
    """Sample counts and settings; the defaults are disentanglement_lib's."""

    num_train: int = 10_000  # codes / points / votes to fit on
    num_test: int = 5_000  # to evaluate on
    batch_size: int = 64  # BetaVAE and FactorVAE batches
    num_variance_estimate: int = 10_000  # FactorVAE global variances
    prune_threshold: float = 0.05  # FactorVAE: minimum std of an active latent
    num_bins: int = NUM_BINS  # MIG and modularity discretisation
    dci_estimator: Estimator = "hist"
    encode_batch: int = ENCODE_BATCH  # images per forward pass


def make_config(**overrides: object) -> SuiteConfig:
    """``SuiteConfig`` with ``overrides``; unknown names raise ``TypeError``."""
    known = {f.name for f in fields(SuiteConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown disentanglement settings {unknown}; known: {sorted(known)}")
    return replace(SuiteConfig(), **overrides)


def _code_metrics(name: str, cfg: SuiteConfig, codes: tuple[np.ndarray, ...]) -> dict[str, float]:
    train, y_train, test, y_test = codes
    if name == "mig":
        return {"mig": mig_from_codes(train, y_train, cfg.num_bins)}
    if name == "sap":
        return {"sap": sap_from_codes(train, y_train, test, y_test)}
    if name == "dci":
        d = dci_from_codes(train, y_train, test, y_test, cfg.dci_estimator)
        return {
            "dci_d": d["disentanglement"],
            "dci_c": d["completeness"],
            "dci_i_train": d["informativeness_train"],
            "dci_i_test": d["informativeness_test"],
        }
    explicit = explicitness_from_codes(train, y_train, test, y_test)
    return {
        "modularity": modularity_from_codes(train, y_train, cfg.num_bins),
        "explicitness_train": explicit["train"],
        "explicitness_test": explicit["test"],
    }


def evaluate_disentanglement(
    source: GroundTruthSource,
    encode: Encode,
    seed: int = 0,
    metrics: Sequence[str] = METRICS,
    **overrides: object,
) -> dict[str, float]:
    """``{"disent/<name>": value, "disent/time/<metric>": seconds}`` for ``metrics``
    (a subset of ``METRICS``); ``overrides`` set ``SuiteConfig`` fields."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    cfg = make_config(**overrides)
    streams = dict(zip(("codes", *METRICS), np.random.SeedSequence(seed).spawn(7), strict=True))
    rng = {name: np.random.default_rng(s) for name, s in streams.items()}
    out: dict[str, float] = {}
    codes: tuple[np.ndarray, ...] = ()
    if any(m in CODE_METRICS for m in metrics):
        start = time.perf_counter()
        train = sample_codes(source, encode, cfg.num_train, rng["codes"], cfg.encode_batch)
        test = sample_codes(source, encode, cfg.num_test, rng["codes"], cfg.encode_batch)
        codes = (*train, *test)
        out["disent/time/codes"] = time.perf_counter() - start
    for name in metrics:
        start = time.perf_counter()
        if name in CODE_METRICS:
            values = _code_metrics(name, cfg, codes)
        elif name == "beta_vae":
            s = beta_vae_score(
                source, encode, rng[name], cfg.batch_size, cfg.num_train, cfg.num_test,
                cfg.encode_batch,
            )  # fmt: skip
            values = {"beta_vae_train": s["train_accuracy"], "beta_vae_eval": s["eval_accuracy"]}
        else:
            s = factor_vae_score(
                source, encode, rng[name], cfg.batch_size, cfg.num_train, cfg.num_test,
                cfg.num_variance_estimate, cfg.prune_threshold, cfg.encode_batch,
            )  # fmt: skip
            values = {
                "factor_vae_train": s["train_accuracy"],
                "factor_vae_eval": s["eval_accuracy"],
                "factor_vae_active_dims": s["num_active_dims"],
            }
        out.update({f"disent/{k}": float(v) for k, v in values.items()})
        out[f"disent/time/{name}"] = time.perf_counter() - start
    return out
