"""Time the disentanglement suite on procedural dSprites against its floor, one encoder pass.

    .venv/bin/python benchmarks/metrics_timing.py [--cache-dir data] [--scale 1]
        [--encoder conv|cheap] [--device cpu|cuda] [--dci-points 2000] [--json FILE]
        [--skip-floor] [--jobs 1]

1. the floor: one encoder pass over all 737,280 images (in memory, as a run's data module
   holds them), through the same code table the suite uses;
2. the full suite (BetaVAE, FactorVAE, MIG, SAP, DCI, modularity/explicitness) at
   disentanglement_lib's sample counts (``--scale`` < 1 shrinks them for a quick look): it
   draws every image its metrics read (about 2.9 million), encodes each distinct one once,
   then scores; the ratio suite / floor is the figure of merit;
3. DCI's ``hist`` and ``sklearn`` estimators on the same ``--dci-points`` codes (0: skip).

``--jobs`` processes fit the classifiers of DCI (both), DCI-ES, the downstream tasks and
fairness, those five metrics side by side (``evaluation.suite.jobs``; -1: one per core).

The encoder is the paper's conv net with random weights, its codes rescaled to unit spread
so FactorVAE prunes no latent. Prints figures; never fails on time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time

import numpy as np
import torch
from joblib import effective_n_jobs
from torch import nn

from vaelab.data.dsprites import ProceduralDSprites
from vaelab.metrics.codes import encode_table, sample_codes
from vaelab.metrics.dci import dci_from_codes
from vaelab.metrics.settings import SIZES
from vaelab.metrics.suite import METRICS, draw_suite, make_config, needed_indices, run_suite
from vaelab.nets.conv import ConvEncoder


def make_encoder(kind: str) -> nn.Module:
    """The paper's conv encoder (10 latents), or a cheap pooled linear map."""
    torch.manual_seed(0)
    if kind == "conv":
        return ConvEncoder((1, 64, 64), latent_dim=10).eval()
    return nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(256, 10)).eval()


class Rescaled(nn.Module):
    """mu / std(mu) with the std measured once on a batch; logvar dropped."""

    def __init__(self, net: nn.Module, x: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        with torch.no_grad():
            out = net(x)
        self.register_buffer("std", (out[0] if isinstance(out, tuple) else out).std(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return (out[0] if isinstance(out, tuple) else out) / self.std


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="x disentanglement_lib's counts")
    parser.add_argument("--encoder", choices=("conv", "cheap"), default="conv")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cache-dir", default="data", help="dSprites cache folder")
    parser.add_argument("--dci-points", type=int, default=2000)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument(
        "--skip-floor",
        action="store_true",
        help="no whole pass (a quick look on a CPU): images rendered as the draws read them",
    )
    parser.add_argument("--jobs", type=int, default=1, help="processes fitting classifiers")
    args = parser.parse_args()
    # the suite's line per metric as it ends: a run cut short still shows what it reached
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    logging.getLogger("vaelab").setLevel(logging.INFO)

    source = ProceduralDSprites(args.cache_dir)
    start = time.perf_counter()
    if args.skip_floor:
        image_rows = source.images
    else:
        images = source.images(None).to(args.device)  # all, as a run's data module holds them

        def image_rows(indices: np.ndarray) -> torch.Tensor:
            return images[torch.from_numpy(np.asarray(indices)).to(images.device)]

    load_s = time.perf_counter() - start
    first = image_rows(np.arange(2048)).float().cpu() / 255
    net = Rescaled(make_encoder(args.encoder), first).to(args.device)

    n = len(source)
    threads, workers = torch.get_num_threads(), effective_n_jobs(args.jobs)
    print(f"encoder={args.encoder}  device={args.device}  torch threads={threads}  "
          f"scale={args.scale:g}  jobs={args.jobs} ({workers} workers)  "
          f"images loaded in {load_s:.1f} s")  # fmt: skip
    floor = None
    if not args.skip_floor:
        start = time.perf_counter()
        encode_table(n, np.arange(n), net, image_rows, device=args.device)
        floor = time.perf_counter() - start
        print(f"floor: one encoder pass over all {n:,} images: {floor:.1f} s "
              f"({n / floor:,.0f}/s)\n")  # fmt: skip

    counts = {
        key: max(10, round(full * args.scale))
        for key, full in (("num_train", 10_000), ("num_test", 5_000),
                          ("num_variance_estimate", 10_000))
    }  # fmt: skip
    # the downstream tasks' training sizes 10, 100, 1,000, 10,000, scaled (at least 10 each)
    counts["downstream_sizes"] = sorted({max(10, round(n * args.scale)) for n in SIZES})
    counts["fairness_per_class"] = max(1, round(100 * args.scale))
    counts["jobs"] = args.jobs
    drawn = len(needed_indices(source, draw_suite(source, 0, METRICS, make_config(**counts))))
    start = time.perf_counter()
    result = run_suite(source, net, 0, METRICS, images=image_rows, device=args.device, **counts)
    total = time.perf_counter() - start
    values = result.values
    print(f"suite: {drawn:,} images read by the draws, {values['disent/encoded_images']:,.0f} "
          f"distinct ones encoded once")  # fmt: skip
    print(f"{'step':<12}{'seconds':>9}")
    for name in ("encode", *METRICS):
        print(f"{name:<12}{values[f'disent/time/{name}']:>9.1f}")
    ratio = total / floor if floor else None
    print(f"{'total':<12}{total:>9.1f}" + (f"   = {ratio:.2f} x the floor\n" if ratio else "\n"))
    scores = {k: round(v, 3) for k, v in values.items() if "/time/" not in k}
    print(scores, "\n")

    dci = {}
    if args.dci_points:
        rng = np.random.default_rng(1)
        train = sample_codes(source, net.cpu(), args.dci_points, rng)
        test = sample_codes(source, net, args.dci_points // 2, rng)
        for est in ("hist", "sklearn"):
            start = time.perf_counter()
            dci[est] = dci_from_codes(*train, *test, estimator=est)
            dci[est]["seconds"] = time.perf_counter() - start
        print(f"DCI on {args.dci_points:,} train / {args.dci_points // 2:,} test codes")
        for est, r in dci.items():
            print(f"  {est:<8} D={r['disentanglement']:.3f} C={r['completeness']:.3f} "
                  f"I_test={r['informativeness_test']:.3f}  {r['seconds']:.1f} s")  # fmt: skip
        h, s = dci["hist"], dci["sklearn"]
        print(f"  |dD|={abs(h['disentanglement'] - s['disentanglement']):.3f} "
              f"|dC|={abs(h['completeness'] - s['completeness']):.3f} "
              f"speed-up {s['seconds'] / h['seconds']:.1f}x")  # fmt: skip
    if args.json:
        gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "no GPU"
        record = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {threads} torch threads, "
                       f"{gpu}",
            "encoder": args.encoder, "device": args.device, "scale": args.scale, "jobs": args.jobs,
            "workers": workers,
            "floor_s": floor, "suite_s": total, "ratio": ratio, "images_read": drawn,
            "times": {k: v for k, v in values.items() if "/time/" in k}, "scores": scores,
            "dci_estimators": dci,
        }  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
