"""End-of-run measurements on the test split and, where the data has ground-truth factors,
the disentanglement suite. ``Evaluator`` returns an ``Evaluation``: a flat dict of values
for metrics.json and the loggers, and the suite's matrices for the heat-map figures.

- ``test/nll_iw``: −log p(x) estimated with the IWAE bound, log (1/k) Σ_i p(x, z_i)/q(z_i|x),
  k samples per image, on ``iwae_images`` test images (nats per image; variational models);
- ``test/active_units``: latents with Cov_x(E_q[z]) > 0.01 (Burda et al. 2016);
- ``test/psnr``, ``test/ssim``: reconstruction quality (vaelab.metrics.image_quality);
- ``test/fid``, ``test/kid``, ``test/kid_std``: prior samples against test images in one
  feature network's features (vaelab.metrics.sample_quality);
- ``disent/<metric>``: MIG, DCI, SAP, modularity/explicitness, BetaVAE and FactorVAE scores
  with disentanglement_lib's definitions (vaelab.metrics), every distinct image encoded
  once, and ``disent/time/<metric>`` in seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import OmegaConf

from vaelab.data import ImageDataModule
from vaelab.metrics import active_units, log_likelihood_iw
from vaelab.metrics.image_quality import reconstruction_quality
from vaelab.metrics.sample_quality import SampleQuality
from vaelab.metrics.settings import make_config, scored_settings
from vaelab.metrics.suite import SuiteResult, run_suite, source_notes
from vaelab.module import VAEModule
from vaelab.sweep import launcher_jobs

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """``values`` for metrics.json; ``suite`` (None without factors or metrics) for figures."""

    values: dict[str, float] = field(default_factory=dict)
    suite: SuiteResult | None = None
    notes: list[str] = field(default_factory=list)  # what the values do not say themselves


class Evaluator:
    """Runs the measurements chosen by ``conf/evaluation/<name>.yaml`` on a trained module."""

    def __init__(
        self,
        iwae_k: int = 1000,
        iwae_images: int = 100,
        disentanglement: Sequence[str] = ("mig", "dci", "sap", "modularity"),
        suite: dict[str, Any] | None = None,
        seed: int = 0,
        quality_images: int | None = 0,
        fid: SampleQuality | None = None,
    ) -> None:
        self.iwae_k, self.iwae_images = iwae_k, iwae_images
        self.quality_images = quality_images  # PSNR / SSIM of reconstructions (None: all)
        self.fid = fid  # FID / KID of prior samples (None: not measured)
        if OmegaConf.is_config(suite):  # plain values, for metrics.json (lists included)
            suite = OmegaConf.to_container(suite, resolve=True)
        self.metrics, self.suite, self.seed = tuple(disentanglement), dict(suite or {}), seed
        make_config(**self.suite)  # unknown names and bad values now, not after the model ran

    def settings(self) -> dict[str, Any]:
        """What this evaluation computes, as plain values (recorded with its results)."""
        return {
            "iwae_k": self.iwae_k, "iwae_images": self.iwae_images,
            "disentanglement": list(self.metrics), "suite": scored_settings(self.suite),
            "seed": self.seed,
            "quality_images": self.quality_images,
            "fid": None if self.fid is None else self.fid.settings(),
        }  # fmt: skip

    def check_available(self) -> None:
        """``ConfigError`` now for what would fail only at the end: FID's feature network."""
        if self.fid is not None:
            self.fid.check_available()

    def __call__(self, module: VAEModule, datamodule: ImageDataModule) -> Evaluation:
        self.check_available()
        module.eval()
        out = Evaluation()
        if module.objective.variational and self.iwae_k > 0 and self.iwae_images > 0:
            start = time.perf_counter()
            test = datamodule.split_images("test")
            out.values["test/nll_iw"] = -log_likelihood_iw(
                module, test, k=self.iwae_k, max_images=self.iwae_images, seed=self.seed
            )
            out.values["test/active_units"] = float(active_units(module, test))
            log.info(
                "%-12s %6.1f s  nll_iw %.2f nats (k=%d, %d images), active units %d", "iwae",
                time.perf_counter() - start, out.values["test/nll_iw"], self.iwae_k,
                min(self.iwae_images, len(test)), out.values["test/active_units"],
            )  # fmt: skip
        if self.quality_images is None or self.quality_images > 0:
            start = time.perf_counter()
            test = datamodule.split_images("test", self.quality_images)
            quality = reconstruction_quality(module.reconstruct, test, device=module.device)
            out.values.update({f"test/{k}": v for k, v in quality.items()})
            seconds = time.perf_counter() - start
            log.info(
                "%-12s %6.1f s  psnr %.2f dB, ssim %.4f (%d test images)", "quality", seconds,
                quality["psnr"], quality["ssim"], len(test),
            )  # fmt: skip
        if self.fid is not None:
            start = time.perf_counter()
            test = datamodule.split_images("test", self.fid.num_samples)
            fid = self.fid(module.sample, test, seed=self.seed, device=module.device)
            out.values.update({f"test/{k}": v for k, v in fid.items()})
            log.info(
                "%-12s %6.1f s  fid %.4g, kid %.4g ± %.2g (%d samples, %d test images)", "fid",
                time.perf_counter() - start, fid["fid"], fid["kid"], fid["kid_std"],
                self.fid.num_samples, len(test),
            )  # fmt: skip
            subset = self.fid.kid_subset(len(test), self.fid.num_samples)
            if subset < self.fid.kid_subset_size:  # settings() records the size asked for
                out.notes.append(
                    f"KID's subsets held {subset} images (fewer test images or samples), not "
                    f"evaluation.fid.kid_subset_size={self.fid.kid_subset_size}"
                )
                log.info("fid: %s", out.notes[-1])
        if not self.metrics:
            return out
        if not datamodule.source.has_factors:
            log.info("%s has no ground-truth factors: disentanglement metrics skipped",
                     datamodule.source.name)  # fmt: skip
            return out
        source = datamodule.source
        notes, metrics = source_notes(source, self.metrics)
        out.notes += notes
        suite = dict(self.suite)
        if suite.get("infomec_discrete_latents") is None:  # null or unset: by the model
            quantized = getattr(module, "codebook", lambda: None)() is not None
            suite["infomec_discrete_latents"] = quantized
        if suite["infomec_discrete_latents"] and "infomec" in metrics:
            out.notes.append("InfoMEC read each latent's values as classes (quantized latents)")
        for note in out.notes:
            log.info("%s: %s", source.name, note)
        out.suite = run_suite(
            source, self._encoder(module), self.seed, metrics,
            images=datamodule.source_images, device=module.device, beside=launcher_jobs(),
            **suite,
        )  # fmt: skip
        out.values.update(out.suite.values)
        return out

    @staticmethod
    def _encoder(module: VAEModule):
        def encode(x: torch.Tensor) -> torch.Tensor:
            return module.encode(x)[0]

        return encode
