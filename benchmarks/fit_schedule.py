"""How long the suite's classifier fits take on W workers, from each work item's time alone.

    .venv/bin/python benchmarks/fit_schedule.py [--scale 1] [--workers 2,4,8,16] [--json FILE]

Runs the full suite once in this process (``jobs=1``, the cheap encoder on procedural
dSprites, disentanglement_lib's counts times ``--scale``), timing every work item the workers
would get on its own: each fit of DCI, the downstream tasks and fairness, and each piece of
``FOREST_PIECE`` trees of the random forests of Tripod's DCI and DCI-ES. Then it hands those
times to W workers as the suite does (each metric's items largest first, the metrics in the
order their threads start: ``vaelab.metrics.settings.POOLED``, or the metrics' own order) and
prints when the last item ends: the fits' part of a full evaluation on W cores, if each core
runs an item as fast as this one did alone. A model of the schedule, not a measurement on W
cores. Prints figures; never fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from metrics_timing import Rescaled, make_encoder

import vaelab.metrics.classifiers as classifiers
import vaelab.metrics.dci_es as dci_es
import vaelab.metrics.suite as suite
from vaelab.data.dsprites import ProceduralDSprites
from vaelab.metrics.settings import METRICS, POOLED, SIZES


def timed_fits(scale: float) -> dict[str, list[float]]:
    """Seconds of each work item, per metric, the suite run once in this process."""
    fits: dict[str, list[float]] = defaultdict(list)
    current = {"metric": ""}
    score, fit_piece, piece_probas = suite._score, classifiers.fit_piece, dci_es.piece_probas

    def scoring(name, *args, **kwargs):
        current["metric"] = name
        return score(name, *args, **kwargs)

    def timing(function):
        def run(*args, **kwargs):
            start = time.perf_counter()
            out = function(*args, **kwargs)
            fits[current["metric"]].append(time.perf_counter() - start)
            return out

        return run

    suite._score = scoring
    classifiers.fit_piece = timing(fit_piece)
    dci_es.piece_probas = timing(piece_probas)
    try:
        source = ProceduralDSprites("data")
        net = Rescaled(make_encoder("cheap"), source.images(np.arange(2048)).float() / 255)
        counts = {"num_train": max(10, round(10_000 * scale)),
                  "num_test": max(10, round(5_000 * scale)),
                  "num_variance_estimate": max(10, round(10_000 * scale)),
                  "downstream_sizes": sorted({max(10, round(n * scale)) for n in SIZES}),
                  "fairness_per_class": max(1, round(100 * scale))}  # fmt: skip
        suite.run_suite(source, net, 0, METRICS, images=source.images, device="cpu", **counts)
    finally:
        suite._score, classifiers.fit_piece, dci_es.piece_probas = score, fit_piece, piece_probas
    return dict(fits)


def makespan(fits: dict[str, list[float]], order: tuple[str, ...], workers: int) -> float:
    """When the last fit ends: the metrics' fits (each metric's largest first) queued in
    ``order`` and each started on the first worker free, as joblib's executor does."""
    free = [0.0] * workers
    for metric in order:
        for seconds in sorted(fits.get(metric, []), reverse=True):
            i = int(np.argmin(free))
            free[i] += seconds
    return max(free)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="x disentanglement_lib's counts")
    parser.add_argument("--workers", default="2,4,8,16")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    fits = timed_fits(args.scale)
    before = tuple(m for m in METRICS if m in POOLED)  # the metrics' own order
    total = sum(map(sum, fits.values()))
    print(
        f"{sum(map(len, fits.values()))} work items, {total:.1f} s one after another; "
        + ", ".join(f"{m} {len(t)}, longest {max(t):.2f} s" for m, t in fits.items())
    )
    print(f"{'workers':>7} {'suite order':>12} {'POOLED order':>14} {'lower bound':>12}")
    rows = []
    for w in (int(x) for x in args.workers.split(",")):
        row = {"workers": w, "suite_order_s": round(makespan(fits, before, w), 2),
               "longest_first_s": round(makespan(fits, POOLED, w), 2),
               "bound_s": round(max(total / w, max(map(max, fits.values()))), 2)}  # fmt: skip
        rows.append(row)
        print(f"{w:>7} {row['suite_order_s']:>12.1f} {row['longest_first_s']:>14.1f} "
              f"{row['bound_s']:>12.1f}")  # fmt: skip
    if args.json:
        fit_seconds = {m: [round(t, 3) for t in ts] for m, ts in fits.items()}
        record = {"machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
                  "date": time.strftime("%Y-%m-%d"), "scale": args.scale, "fits_s": fit_seconds,
                  "order_before": before, "order": POOLED, "schedule": rows}  # fmt: skip
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
