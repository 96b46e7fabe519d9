"""What each metric of the suite reads: its image indices, drawn before any encoding, each
metric from its own random stream spawned from the seed (vaelab.metrics.suite, step 1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.beta_vae import BetaVAEDraw, draw_beta_vae_points
from vaelab.metrics.downstream import DownstreamDraw, draw_downstream
from vaelab.metrics.factor_vae import FactorVAEDraw, draw_factor_vae
from vaelab.metrics.fairness import FairnessDraw, draw_fairness
from vaelab.metrics.settings import CODE_METRICS, METRICS, SuiteConfig


@dataclass(frozen=True)
class SharedDraw:
    """Factor rows of the shared training ``[N, K]`` and test ``[M, K]`` codes."""

    train: np.ndarray
    test: np.ndarray


Draws = dict[
    str,
    SharedDraw
    | BetaVAEDraw
    | tuple[BetaVAEDraw, BetaVAEDraw]
    | FactorVAEDraw
    | DownstreamDraw
    | FairnessDraw,
]


def draw_suite(
    source: GroundTruthSource, seed: int, metrics: Sequence[str], cfg: SuiteConfig
) -> Draws:
    """Every image the chosen metrics read, drawn from one stream per metric."""
    spawned = np.random.SeedSequence(seed).spawn(len(METRICS) + 1)
    streams = dict(zip(("codes", *METRICS), spawned, strict=True))
    rng = {name: np.random.default_rng(s) for name, s in streams.items()}
    draws: Draws = {}
    if any(m in CODE_METRICS for m in metrics):
        train = source.sample_factors(cfg.num_train, rng["codes"])
        draws["codes"] = SharedDraw(train, source.sample_factors(cfg.num_test, rng["codes"]))
    if "beta_vae" in metrics:
        r, b = rng["beta_vae"], cfg.batch_size
        draws["beta_vae"] = (
            draw_beta_vae_points(source, cfg.num_train, r, b),
            draw_beta_vae_points(source, cfg.num_test, r, b),
        )
    if "factor_vae" in metrics:
        draws["factor_vae"] = draw_factor_vae(
            source, rng["factor_vae"], cfg.batch_size, cfg.num_train, cfg.num_test,
            cfg.num_variance_estimate,
        )  # fmt: skip
    if "downstream" in metrics:
        draws["downstream"] = draw_downstream(
            source, rng["downstream"], cfg.downstream_sizes, cfg.num_test
        )
    if "fairness" in metrics:
        draws["fairness"] = draw_fairness(
            source, rng["fairness"], cfg.num_train, cfg.fairness_per_class
        )
    return draws


def needed_indices(source: GroundTruthSource, draws: Draws) -> np.ndarray:
    """All image indices the draws read (with repeats), ``[N]``."""
    parts = []
    for draw in draws.values():
        if isinstance(draw, SharedDraw):
            parts += [source.index_of(draw.train), source.index_of(draw.test)]
        elif isinstance(draw, FactorVAEDraw):
            parts += [draw.variance, draw.train.indices, draw.evaluation.indices]
        elif isinstance(draw, DownstreamDraw | FairnessDraw):
            parts += draw.indices(source)
        else:
            parts += [d.indices for d in draw]
    return np.concatenate([p.reshape(-1) for p in parts]) if parts else np.zeros(0, np.int64)
