"""End-of-run measurements on the test split and, where the data has ground-truth factors,
the disentanglement suite. Returns a flat dict that goes into metrics.json and the loggers:

- ``test/nll_iw``: −log p(x) estimated with the IWAE bound, log (1/k) Σ_i p(x, z_i)/q(z_i|x),
  k samples per image, on ``iwae_images`` test images (nats per image; variational models);
- ``test/active_units``: latents with Cov_x(E_q[z]) > 0.01 (Burda et al. 2016);
- ``disent/<metric>``: MIG, DCI, SAP, modularity/explicitness, BetaVAE and FactorVAE scores
  with disentanglement_lib's definitions (vaelab.metrics), and ``disent/time/<metric>``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from vaelab.data import ImageDataModule
from vaelab.metrics import active_units, evaluate_disentanglement, log_likelihood_iw
from vaelab.module import VAEModule

log = logging.getLogger(__name__)


class Evaluator:
    """Runs the measurements chosen by ``conf/evaluation/<name>.yaml`` on a trained module."""

    def __init__(
        self,
        iwae_k: int = 1000,
        iwae_images: int = 100,
        disentanglement: Sequence[str] = ("mig", "dci", "sap", "modularity"),
        suite: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.iwae_k, self.iwae_images = iwae_k, iwae_images
        self.metrics, self.suite, self.seed = tuple(disentanglement), dict(suite or {}), seed

    def __call__(self, module: VAEModule, datamodule: ImageDataModule) -> dict[str, float]:
        module.eval()
        out: dict[str, float] = {}
        test = datamodule.split_images("test")
        if module.objective.variational and self.iwae_k > 0 and self.iwae_images > 0:
            nll = -log_likelihood_iw(
                module, test, k=self.iwae_k, max_images=self.iwae_images, seed=self.seed
            )
            out["test/nll_iw"] = nll
            out["test/active_units"] = float(active_units(module, test))
        if self.metrics:
            if datamodule.source.has_factors:
                out.update(evaluate_disentanglement(
                    datamodule.source, self._encoder(module), self.seed, self.metrics, **self.suite
                ))  # fmt: skip
            else:
                log.info("%s has no ground-truth factors: disentanglement metrics skipped",
                         datamodule.source.name)  # fmt: skip
        return out

    @staticmethod
    def _encoder(module: VAEModule):
        @torch.no_grad()
        def encode(x: torch.Tensor) -> torch.Tensor:
            return module.encode(x.to(module.device))[0]

        return encode
