"""Time the disentanglement suite on procedural dSprites with a random encoder.

    .venv/bin/python benchmarks/metrics_timing.py [--scale 0.02] [--encoder conv|cheap]
        [--cache-dir data] [--dci-points 2000]

MIG, DCI, SAP and modularity run at disentanglement_lib's full counts (10,000 / 5,000 codes,
shared). BetaVAE and FactorVAE run at ``scale`` x the full counts (batches of 64) and are
extrapolated linearly (their cost is rendering and encoding, linear in the counts). The
encoder's codes are rescaled to unit spread so FactorVAE prunes no latent. Then DCI's
``hist`` and ``sklearn`` estimators run on the same ``--dci-points`` codes. Prints figures;
never fails on time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from vaelab.data.dsprites import ProceduralDSprites
from vaelab.metrics import METRICS, evaluate_disentanglement
from vaelab.metrics.dci import dci_from_codes
from vaelab.metrics.suite import CODE_METRICS
from vaelab.metrics.utils import sample_codes
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
        out = net(x)
        self.register_buffer("std", (out[0] if isinstance(out, tuple) else out).std(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return (out[0] if isinstance(out, tuple) else out) / self.std


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.02)
    parser.add_argument("--encoder", choices=("conv", "cheap"), default="conv")
    parser.add_argument("--cache-dir", default=None, help="dSprites cache folder, if any")
    parser.add_argument("--dci-points", type=int, default=2000)
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()

    source = ProceduralDSprites(args.cache_dir)
    counts = {
        "num_train": max(10, round(10_000 * args.scale)),
        "num_test": max(10, round(5_000 * args.scale)),
        "num_variance_estimate": max(10, round(10_000 * args.scale)),
    }
    start = time.perf_counter()
    with torch.no_grad():
        x = source.images_of(source.sample_factors(2048, np.random.default_rng(0)))
        net = Rescaled(make_encoder(args.encoder), x.float() / 255)
    per_image = (time.perf_counter() - start) / 2048
    print(f"encoder={args.encoder}  torch threads={torch.get_num_threads()}  scale={args.scale}")
    print(f"gather+encode: {1 / per_image:,.0f} images/s\n")

    scores = evaluate_disentanglement(source, net, seed=0, metrics=CODE_METRICS)
    scaled = ("beta_vae", "factor_vae")
    scores.update(evaluate_disentanglement(source, net, seed=0, metrics=scaled, **counts))
    images = {  # images each metric encodes at full counts
        "codes": 15_000,
        "mig": 0,
        "dci": 0,
        "sap": 0,
        "modularity": 0,
        "beta_vae": 2 * 64 * 15_000,
        "factor_vae": 10_000 + 64 * 15_000,
    }
    print(f"{'metric':<12}{'images (full)':>15}{'measured s':>12}{'at scale':>10}{'full s':>10}")
    total = 0.0
    for name in ("codes", *METRICS):
        sec = scores[f"disent/time/{name}"]
        full = sec / args.scale if name in scaled else sec
        total += full
        at = f"{args.scale:g}" if name in scaled else "1"
        print(f"{name:<12}{images[name]:>15,}{sec:>12.2f}{at:>10}{full:>10.1f}")
    print(f"{'total':<12}{'':>15}{'':>12}{'':>10}{total:>10.1f}\n")
    print({k: round(v, 3) for k, v in scores.items() if "/time/" not in k}, "\n")

    rng = np.random.default_rng(1)
    train = sample_codes(source, net, args.dci_points, rng)
    test = sample_codes(source, net, args.dci_points // 2, rng)
    estimators = ("hist",) if args.skip_sklearn else ("hist", "sklearn")
    results = {}
    for est in estimators:
        start = time.perf_counter()
        results[est] = dci_from_codes(*train, *test, estimator=est)
        results[est]["seconds"] = time.perf_counter() - start
    print(f"DCI on {args.dci_points:,} train / {args.dci_points // 2:,} test codes")
    for est, r in results.items():
        print(
            f"  {est:<8} D={r['disentanglement']:.3f} C={r['completeness']:.3f} "
            f"I_test={r['informativeness_test']:.3f}  {r['seconds']:.1f} s"
        )
    if len(results) == 2:
        h, s = results["hist"], results["sklearn"]
        print(
            f"  |dD|={abs(h['disentanglement'] - s['disentanglement']):.3f} "
            f"|dC|={abs(h['completeness'] - s['completeness']):.3f} "
            f"speed-up {s['seconds'] / h['seconds']:.1f}x"
        )


if __name__ == "__main__":
    main()
