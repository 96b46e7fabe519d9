"""The whole suite on procedural dSprites with a tiny random encoder (rendered on the fly)."""

import numpy as np
import torch

from vaelab.data.dsprites import ProceduralDSprites
from vaelab.metrics import evaluate_disentanglement
from vaelab.metrics.suite import METRICS, draw_suite, make_config, needed_indices


def test_suite_runs_on_dsprites():
    grid = torch.arange(64.0) / 63
    calls = []

    def encode(x):
        """Centroid (x, y) and mass of the sprite: knows position and size, not the rest."""
        calls.append(len(x))
        img = x[:, 0]
        mass = img.sum((1, 2)).clamp_min(1.0)
        cx = (img.sum(1) * grid).sum(1) / mass
        cy = (img.sum(2) * grid).sum(1) / mass
        return torch.stack([cx, cy, mass / 1000], 1), torch.zeros(len(x), 3)

    scores = evaluate_disentanglement(
        ProceduralDSprites(), encode, seed=0, num_train=200, num_test=100,
        num_variance_estimate=200, batch_size=8, encode_batch=512, downstream_sizes=(10, 20),
        fairness_per_class=2,
    )  # fmt: skip
    values = {k: v for k, v in scores.items() if "/time/" not in k}
    assert all(np.isfinite(v) for v in values.values())
    for key in (
        "mig",
        "dci[gbt]/d",
        "dci[gbt]/c",
        "sap",
        "modularity",
        "beta_vae_eval",
        "factor_vae_eval",
    ):
        assert 0.0 <= values[f"disent/{key}"] <= 1.0, key
    assert values["disent/mig"] > 0.25  # positions are captured, each by one latent
    assert values["disent/factor_vae_eval"] > 0.35  # chance is 0.2
    assert max(calls) == 512  # images are encoded in large batches, not 8 at a time
    # The draws read 2 x 8 x 300 (BetaVAE) + 200 + 8 x 300 (FactorVAE) + 300 (shared) images
    # + (10 + 100) + (20 + 100) (downstream) + 200 + 2 x 4 x (3 + 6 + 40 + 32 + 32) (fairness);
    # each distinct one is encoded once.
    source = ProceduralDSprites()
    sizes = {"num_train": 200, "num_test": 100, "num_variance_estimate": 200, "batch_size": 8}
    cfg = make_config(**sizes, downstream_sizes=(10, 20), fairness_per_class=2)
    drawn = needed_indices(source, draw_suite(source, 0, METRICS, cfg))
    assert len(drawn) == 2 * 8 * 300 + 200 + 8 * 300 + 300 + 110 + 120 + 200 + 2 * 4 * 113
    assert sum(calls) == len(np.unique(drawn)) == scores["disent/encoded_images"]
