"""Run the disentanglement metrics on one model and return a flat, loggable dict.

The suite works in three steps, so that every distinct image is encoded once (settings in
vaelab.metrics.settings, draws in vaelab.metrics.draws):

1. draw: each metric draws the image indices it will read, from its own random stream
   spawned from ``seed`` (so its value does not depend on which others run). MIG, SAP, DCI
   (both variants), modularity/explicitness, IRS, the unsupervised scores, InfoMEC and DCI-ES
   share one draw of ``num_train`` training and ``num_test`` test codes (IRS, the
   unsupervised scores and InfoMEC read the training codes only); BetaVAE, FactorVAE, the
   downstream tasks and fairness draw their own;
2. encode: the distinct indices of all draws go through the encoder once (``CodeTable``);
3. score: every metric reads its codes from the table.

The draws and the scores are the ones of the metric functions called on their own
(``beta_vae_score`` etc.), so the values are the same on both paths for the same seed.

Measures that differ between papers under one name carry their variant in the key:
``disent/dci[gbt]/d`` (boosted trees, disentanglement_lib) and ``disent/dci[rf]/d`` (Tripod's
forest), ``disent/infomec[range]/m`` or ``[iqr]`` (the pruning rule), ``disent/dci_es[rf]/e``.
``vaelab.report.RENAMED`` reads the keys of earlier versions (``disent/dci_d``) under these.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
import torch
from joblib import cpu_count

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.beta_vae import beta_vae_from_draws
from vaelab.metrics.classifiers import start_workers, workers
from vaelab.metrics.codes import Codes, Images, encode_table
from vaelab.metrics.dci import VARIANTS, completeness, disentanglement, importance_matrix
from vaelab.metrics.dci_es import dci_es_from_codes
from vaelab.metrics.downstream import downstream_from_draw
from vaelab.metrics.draws import Draws, draw_suite, needed_indices
from vaelab.metrics.factor_vae import factor_vae_from_draws
from vaelab.metrics.fairness import fairness_from_draw
from vaelab.metrics.infomec import infomec_from_codes
from vaelab.metrics.irs import irs_from_codes
from vaelab.metrics.mig import mig_from_mi
from vaelab.metrics.modularity import explicitness_from_codes, modularity_from_mi
from vaelab.metrics.sap import sap_from_codes
from vaelab.metrics.settings import (
    CODE_METRICS,
    METRICS,
    POOLED,
    SuiteConfig,
    make_config,
)
from vaelab.metrics.unsupervised import unsupervised_from_codes
from vaelab.metrics.utils import Encode, discrete_entropy, discrete_mutual_info, discretize

log = logging.getLogger(__name__)


@dataclass
class SuiteResult:
    """The scores, and the matrices the heat-map figures show (None when not computed):
    DCI's importance R ``[D, K]``, MIG's I(z_i; v_j) ``[D, K]`` and H(v_j) ``[K]``."""

    values: dict[str, float] = field(default_factory=dict)
    importance: np.ndarray | None = None
    mutual_info: np.ndarray | None = None
    entropy: np.ndarray | None = None


def score_suite(
    source: GroundTruthSource,
    draws: Draws,
    codes: Codes,
    metrics: Sequence[str],
    cfg: SuiteConfig,
) -> SuiteResult:
    """Each metric of ``metrics`` from the codes of its draws; logs one line per metric as
    it ends. With ``cfg.jobs`` other than 1 the ``POOLED`` metrics run side by side (a thread
    each, their fits in the shared workers) while this thread scores the others, so their
    times overlap; the values are the same."""
    cfg = cfg.resolved(metrics, len(source.factor_sizes))  # "auto" given here: this machine's
    result = SuiteResult()
    shared: tuple[np.ndarray, ...] = ()
    if "codes" in draws:
        d = draws["codes"]
        shared = (codes(source.index_of(d.train)), d.train, codes(source.index_of(d.test)), d.test)

    def score(name: str) -> tuple[dict[str, float], float]:
        start = time.perf_counter()
        values = _score(name, source, draws, codes, cfg, shared, result)
        seconds = time.perf_counter() - start
        shown = ", ".join(f"{k} {v:.3f}" for k, v in values.items())
        log.info("%-12s %6.1f s  %s", name, seconds, shown)
        return values, seconds

    pooled = [name for name in POOLED if name in metrics]  # boosted trees first (POOLED)
    if cfg.jobs == 1 or len(pooled) < 2:
        done = {name: score(name) for name in metrics}
    else:
        executor = workers(cfg.jobs)
        threads = ThreadPoolExecutor(len(pooled), thread_name_prefix="suite")
        try:
            running = {name: threads.submit(score, name) for name in pooled}
            done = {name: score(name) for name in metrics if name not in running}
            wait(running.values(), return_when=FIRST_EXCEPTION)  # the first failure at once
            done.update({name: future.result() for name, future in running.items()})
        except BaseException:  # a metric failed or Ctrl-C: stop the others' fits now
            executor.shutdown(wait=False, kill_workers=True)
            raise
        finally:
            threads.shutdown(wait=False, cancel_futures=True)
    for name in metrics:  # the keys in the order of ``metrics`` whatever ended first
        values, seconds = done[name]
        result.values.update({f"disent/{k}": float(v) for k, v in values.items()})
        result.values[f"disent/time/{name}"] = seconds
    return result


def _score(
    name: str,
    source: GroundTruthSource,
    draws: Draws,
    codes: Codes,
    cfg: SuiteConfig,
    shared: tuple[np.ndarray, ...],
    result: SuiteResult,
) -> dict[str, float]:
    """One metric's values (keys without ``disent/``)."""
    if name in CODE_METRICS:
        return _code_metric(name, cfg, shared, result)
    if name == "fairness":
        return fairness_from_draw(draws[name], codes, source, cfg.dci_estimator, cfg.jobs)
    if name == "downstream":
        return downstream_from_draw(draws[name], codes, source, cfg.downstream_estimator, cfg.jobs)
    if name == "beta_vae":
        s = beta_vae_from_draws(*draws[name], codes)
        return {"beta_vae_train": s["train_accuracy"], "beta_vae_eval": s["eval_accuracy"]}
    s = factor_vae_from_draws(draws[name], codes, len(source.factor_sizes), cfg.prune_threshold)
    return {
        "factor_vae_train": s["train_accuracy"],
        "factor_vae_eval": s["eval_accuracy"],
        "factor_vae_active_dims": s["num_active_dims"],
    }


def _code_metric(
    name: str, cfg: SuiteConfig, shared: tuple[np.ndarray, ...], result: SuiteResult
) -> dict[str, float]:
    train, y_train, test, y_test = shared
    if name in ("mig", "modularity") and result.mutual_info is None:
        result.mutual_info = discrete_mutual_info(discretize(train, cfg.num_bins), y_train)
        result.entropy = discrete_entropy(y_train)
    if name == "mig":
        return {"mig": mig_from_mi(result.mutual_info, result.entropy)}
    if name == "sap":
        return {"sap": sap_from_codes(train, y_train, test, y_test)}
    if name == "irs":
        irs = irs_from_codes(train, y_train, num_bins=cfg.num_bins)
        return {"irs": irs["irs"], "irs_active_dims": irs["active_dims"]}
    if name == "unsupervised":
        return unsupervised_from_codes(train, cfg.num_bins)
    if name in ("dci", "dci_rf"):
        estimator = cfg.dci_estimator if name == "dci" else "rf"
        importance, acc_train, acc_test = importance_matrix(
            train, y_train, test, y_test, estimator, jobs=cfg.jobs
        )
        if name == "dci":
            result.importance = importance
        key = f"dci[{VARIANTS[estimator]}]"
        return {
            f"{key}/d": disentanglement(importance),
            f"{key}/c": completeness(importance),
            f"{key}/i_train": acc_train,
            f"{key}/i_test": acc_test,
        }
    if name == "infomec":
        info = infomec_from_codes(
            train, y_train, cfg.infomec_pruning, discrete_latents=cfg.infomec_discrete_latents
        )
        key = f"infomec[{cfg.infomec_pruning}]"
        return {
            f"{key}/m": info["infom"],
            f"{key}/e": info["infoe"],
            f"{key}/c": info["infoc"],
            f"{key}/active_dims": info["active_dims"],
        }
    if name == "dci_es":
        es = dci_es_from_codes(
            train, y_train, test, y_test, cfg.dci_es_depths, cfg.dci_es_trees,
            refit=cfg.dci_es_refit, jobs=cfg.jobs,
        )  # fmt: skip
        return {"dci_es[rf]/e": es["explicitness"], "dci_es[rf]/s": es["size"]}
    explicit = explicitness_from_codes(train, y_train, test, y_test)
    return {
        "modularity": modularity_from_mi(result.mutual_info),
        "explicitness_train": explicit["train"],
        "explicitness_test": explicit["test"],
    }


def source_notes(source: GroundTruthSource, metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    """What the suite's values on ``source`` do not say themselves (factors of real values
    binned into classes; fairness skipped where not every combination of the factors'
    classes has an image), and the ``metrics`` that apply."""
    notes = []
    binned = source.binned_factors
    if binned:
        factors = (
            f"factor {binned[0]} takes" if len(binned) == 1 else f"factors {', '.join(binned)} take"
        )
        notes.append(f"{factors} real values: binned into equal-width classes for the metrics "
                     f"(data.factor_bins)")  # fmt: skip
    constant = [n for n, size in zip(source.factor_names, source.factor_sizes, strict=True)
                if size < 2]  # fmt: skip
    if constant:
        notes.append(
            f"{'factor ' if len(constant) == 1 else 'factors '}{', '.join(constant)} "
            f"{'takes' if len(constant) == 1 else 'take'} one value only: what a metric "
            f"computes per factor is undefined there, and a score that averages over the "
            f"factors (DCI's disentanglement, explicitness) may be NaN"
        )
    if not source.is_grid and "fairness" in metrics:
        notes.append(
            "fairness skipped: it needs an image of every combination of the factors' classes"
        )
        metrics = [m for m in metrics if m != "fairness"]
    return notes, list(metrics)


def run_suite(
    source: GroundTruthSource,
    encode: Encode,
    seed: int = 0,
    metrics: Sequence[str] = METRICS,
    images: Images | None = None,
    device: torch.device | str | None = None,
    beside: int = 1,
    **overrides: object,
) -> SuiteResult:
    """Draw, encode every distinct image once, score (module docstring). ``images``: the
    images of source indices as the model sees them (default ``source.images``);
    ``device``: where the encoder runs; ``beside``: the jobs running at once on this
    machine, which ``jobs="auto"`` shares the cores with; ``overrides`` set ``SuiteConfig``
    fields."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    asked = make_config(**overrides)
    cfg = asked.resolved(metrics, len(source.factor_sizes), beside)
    if asked.jobs == "auto" and set(metrics) & set(POOLED):
        where = "in this process" if cfg.jobs == 1 else f"in {cfg.jobs} worker processes"
        shared = f", shared by {beside} jobs at once" if beside > 1 else ""
        log.info("suite: classifiers fitted %s (evaluation.suite.jobs=auto: %d cores%s)",
                 where, cpu_count(), shared)  # fmt: skip
    if cfg.jobs != 1 and set(metrics) & set(POOLED):
        start_workers(cfg.jobs)  # they start while the encoder runs
    draws = draw_suite(source, seed, metrics, cfg)
    start = time.perf_counter()
    table = encode_table(
        len(source), needed_indices(source, draws), encode, images or source.images,
        cfg.encode_batch, device,
    )  # fmt: skip
    encode_seconds = time.perf_counter() - start
    result = score_suite(source, draws, table, metrics, cfg)
    result.values["disent/time/encode"] = encode_seconds
    result.values["disent/encoded_images"] = float(len(table))
    return result


def evaluate_disentanglement(
    source: GroundTruthSource,
    encode: Encode,
    seed: int = 0,
    metrics: Sequence[str] = METRICS,
    **overrides: object,
) -> dict[str, float]:
    """``{"disent/<name>": value, "disent/time/<metric>": seconds}`` for ``metrics``
    (a subset of ``METRICS``); ``overrides`` set ``SuiteConfig`` fields."""
    return run_suite(source, encode, seed, metrics, **overrides).values
