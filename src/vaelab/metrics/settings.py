"""The suite's settings: its metrics in their order, the sample counts and estimators
(``SuiteConfig``, disentanglement_lib's defaults), and which settings decide the scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Literal

from vaelab.errors import whole_number

if TYPE_CHECKING:
    from vaelab.metrics.infomec import Pruning

# This module imports no metric: the config check reads it before any work starts, and the
# metrics' modules load torch and scikit-learn (4.8 s on 2 cores). The defaults live here.
NUM_BINS = 20  # equal-width bins of a code (MIG, modularity, IRS's factors, the MI score)
SIZES = (10, 100, 1_000, 10_000)  # training points of the downstream tasks
NUM_PER_CLASS = 100  # fairness: rows per (target, sensitive) pair
DEPTHS: tuple[int, ...] = (1, 2, 3, 4, 8, 10, 12, 14, 16, 18, 20, 32)  # DCI-ES reference's grid
NUM_TREES = 100  # the DCI-ES reference's trees per forest
Estimator = Literal["hist", "sklearn"]  # boosted trees (DCI's, the downstream tasks', fairness')

# New metrics go at the end: each metric's stream is its place in this order.
METRICS = (
    "mig", "dci", "sap", "modularity", "beta_vae", "factor_vae", "irs", "unsupervised",
    "downstream", "fairness", "infomec", "dci_es", "dci_rf",
)  # fmt: skip
# The metrics whose classifiers ``jobs`` workers fit (vaelab.metrics.classifiers): their
# threads start, and hand their work items to the workers, in this order. Boosted trees first:
# their fits cannot be split, and the 40-class ones take 4-5 s each; the random forests after,
# in pieces of 25 trees (at most 2.4 s each) that fill the workers at the end. Modelled from the
# full suite's 90 work items timed one by one on the 2-core machine (benchmarks/fit_schedule.py,
# 107.4 s in all): the fits end after 7.1 s on 16 workers (lower bound 6.7 s), 13.7 on 8
# (13.4); the same times with each forest one item and the forests first: 9.5 s on 16 workers
# (the 40-class forest alone), 13.5 on 8.
POOLED = ("dci", "fairness", "downstream", "dci_rf", "dci_es")
PER_FACTOR = ("dci_rf", "dci_es", "dci", "fairness")  # of POOLED: one fit a factor, on num_train
CODE_METRICS = (
    "mig", "dci", "sap", "modularity", "irs", "unsupervised", "infomec", "dci_es", "dci_rf",
)  # fmt: skip


def check_estimator(estimator: str, what: str = "tree") -> Estimator:
    """``estimator`` if it names boosted trees (``hist`` or ``sklearn``); otherwise a
    ``ValueError`` in which ``what`` names the setting."""
    if estimator not in ("hist", "sklearn"):
        raise ValueError(f"unknown {what} estimator {estimator!r}; choose 'hist' or 'sklearn'")
    return estimator


def check_jobs(jobs: int | str) -> int | str:
    """``jobs`` if it is ``"auto"`` (``auto_jobs``) or a worker count joblib reads (>= 1, or
    -1, -2, ...: all cores but |jobs| - 1); otherwise a ``ValueError`` that says so."""
    if jobs != "auto" and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs == 0):
        raise ValueError(
            f"evaluation.suite.jobs={jobs!r} is not a number of worker processes: use 1 to fit "
            "the suite's classifiers in this process, n > 1 for n workers, -1 for one per CPU "
            "core, or auto for the cores this process may use, shared with the jobs a launcher "
            "runs beside it"
        )
    return jobs


# The least of each count the metrics can be computed from (below: an error, or NaN scores),
# and what it counts.
LEAST = {
    "num_train": (10, "codes to fit on"),
    "num_test": (10, "codes to score on"),
    "batch_size": (2, "a variance within each batch of the BetaVAE and FactorVAE scores"),
    "num_variance_estimate": (2, "the variances of the FactorVAE score"),
    "num_bins": (2, "one bin holds no information"),
    "fairness_per_class": (1, "rows for each pair of fairness classes"),
}


@dataclass(frozen=True)
class SuiteConfig:
    """Sample counts and settings; the defaults are disentanglement_lib's."""

    num_train: int = 10_000  # codes / points / votes to fit on
    num_test: int = 5_000  # to evaluate on
    batch_size: int = 64  # BetaVAE and FactorVAE batches
    num_variance_estimate: int = 10_000  # FactorVAE global variances
    prune_threshold: float = 0.05  # FactorVAE: minimum std of an active latent
    num_bins: int = NUM_BINS  # bins of MIG, modularity, IRS's factors, the MI score
    dci_estimator: Estimator = "hist"  # boosted trees of "dci" (keys dci[gbt]) and fairness
    encode_batch: int | None = None  # images per forward pass (None: by device, TABLE_BATCH)
    downstream_sizes: tuple[int, ...] = SIZES  # training points of the downstream tasks
    downstream_estimator: Estimator = "hist"  # their gradient-boosted trees
    fairness_per_class: int = NUM_PER_CLASS  # fairness: rows per (target, sensitive) pair
    infomec_pruning: Pruning = "range"  # inactive latents: range / 20 (QLAE) or iqr / 10 (Tripod)
    infomec_discrete_latents: bool = False  # quantized latents: values are classes (QLAE)
    dci_es_depths: tuple[int, ...] = DEPTHS  # DCI-ES probes' maximum depths (capacities)
    dci_es_trees: int = NUM_TREES  # trees per DCI-ES probe forest
    dci_es_refit: bool = False  # one forest per depth (the reference) instead of cut trees
    # processes fitting the classifiers of DCI, DCI-ES, downstream, fairness; "auto": by the
    # cores and the codes to fit on (``resolved``)
    jobs: int | Literal["auto"] = 1

    def __post_init__(self) -> None:
        check_estimator(self.dci_estimator, "evaluation.suite.dci_estimator")
        check_estimator(self.downstream_estimator, "evaluation.suite.downstream_estimator")
        check_jobs(self.jobs)
        for name, (least, why) in LEAST.items():
            value = getattr(self, name)
            if not whole_number(value, least):
                raise ValueError(f"evaluation.suite.{name}={value!r}: it must be a whole number "
                                 f">= {least} ({why})")  # fmt: skip
        if self.dci_es_trees < 1:
            raise ValueError(
                f"evaluation.suite.dci_es_trees={self.dci_es_trees}: a DCI-ES probe is a random "
                "forest of at least one tree (the reference's: 100)"
            )

    def training_codes(self, metrics: Sequence[str]) -> int:
        """The most training codes a classifier of ``metrics`` fits on."""
        sizes = [self.num_train] if set(metrics) & set(PER_FACTOR) else []
        if "downstream" in metrics:
            sizes += list(self.downstream_sizes)
        return max(sizes, default=0)

    def fits(self, metrics: Sequence[str], num_factors: int) -> int:
        """How many work items the fits of ``metrics`` give the workers: a classifier per
        factor (and per model and training size for the downstream tasks), the random
        forests of Tripod's DCI and DCI-ES in pieces of trees (``classifiers.tree_ranges``)."""
        from vaelab.metrics.classifiers import FOREST_TREES, tree_ranges

        per_factor = len(set(metrics) & {"dci", "fairness"})
        if "dci_rf" in metrics:
            per_factor += len(tree_ranges(FOREST_TREES))
        if "dci_es" in metrics:
            per_factor += len(tree_ranges(self.dci_es_trees))
        if "downstream" in metrics:
            per_factor += 2 * len(self.downstream_sizes)  # logistic regression, boosted trees
        return per_factor * num_factors

    def resolved(self, metrics: Sequence[str], num_factors: int, beside: int = 1) -> SuiteConfig:
        """This config with ``jobs="auto"`` replaced by its worker count for ``metrics`` on
        data of ``num_factors`` factors (``classifiers.auto_jobs``; ``beside``: the jobs
        running at once on these cores)."""
        if self.jobs != "auto":
            return self
        from vaelab.metrics.classifiers import auto_jobs

        codes, fits = self.training_codes(metrics), self.fits(metrics, num_factors)
        return replace(self, jobs=auto_jobs(codes, fits, beside))


EXECUTION = ("jobs",)  # settings of where the work runs, not of what it computes


def scored_settings(settings: dict[str, object]) -> dict[str, object]:
    """``settings`` without ``EXECUTION``'s: what decides the scores (recorded with them, and
    compared to tell whether an evaluation was done before)."""
    return {k: v for k, v in settings.items() if k not in EXECUTION}


def make_config(**overrides: object) -> SuiteConfig:
    """``SuiteConfig`` with ``overrides``; unknown names raise ``TypeError``."""
    known = {f.name for f in fields(SuiteConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown disentanglement settings {unknown}; known: {sorted(known)}")
    return replace(SuiteConfig(), **overrides)
