"""Sample quality through torchmetrics: FID and KID of prior samples against test images.

Samples x = E[x | z], z ~ N(0, I) (``VAEModule.sample``), rounded to uint8, and as many test
images enter one feature network φ as uint8 RGB ``[N, 3, H, W]`` (grey images repeated to
three channels); each set's features are computed once and given to both metrics:

- FID (Heusel et al. 2017) = ‖μ_r − μ_s‖² + Tr(Σ_r + Σ_s − 2 (Σ_r Σ_s)^½), the Fréchet
  distance between Gaussians fitted to the real and the sample features;
- KID (Bińkowski et al. 2018) = the unbiased MMD² under the kernel k(a, b) = (aᵀb / d + 1)³,
  its mean and standard deviation over ``kid_subsets`` random subsets of ``kid_subset_size``
  features of each set.

φ is torchmetrics' Inception v3 (the TensorFlow FID weights as torch-fidelity ports them;
images resized to 299 × 299) at its 2048-d pool layer, the standard, or at layer 64, 192 or
768; or any ``nn.Module`` from uint8 ``[N, 3, H, W]`` to ``[N, d]``, such as the weight-free
``PixelFeatures``. Values are comparable only between evaluations with the same feature
network and the same numbers of images (FID is biased upward for few of them).
"""

from __future__ import annotations

import io
import logging
import pickle
import re
import warnings
from collections.abc import Callable
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from vaelab.errors import ConfigError

log = logging.getLogger(__name__)

INCEPTION_LAYERS = (64, 192, 768, 2048)
PIXEL_FEATURES = "{_target_:vaelab.metrics.sample_quality.PixelFeatures}"


class PixelFeatures(nn.Module):
    """φ(x) = x average-pooled to ``size`` × ``size``, in [0, 1], flattened: 3·size² features
    and no weights. For quick checks and tests; its FID is not comparable with Inception's."""

    def __init__(self, size: int = 8) -> None:
        super().__init__()
        self.size, self.num_features = size, 3 * size * size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.float() / 255.0, self.size).flatten(1)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class _Given(nn.Module):
    """The features as computed before: both metrics read one feature pass."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, 3, H, W]`` from uint8 or [0, 1] float images with 1 or 3 channels."""
    if images.dtype != torch.uint8:
        images = (images * 255).round().clamp(0, 255).to(torch.uint8)
    if images.shape[1] not in (1, 3):
        raise ValueError(f"FID and KID take grey or RGB images, got {images.shape[1]} channels")
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


class SampleQuality:
    """FID and KID of ``num_samples`` prior samples against up to as many test images
    (``conf/evaluation/full.yaml``'s ``fid`` node; module docstring)."""

    def __init__(
        self,
        num_samples: int = 10_000,
        features: str | int | nn.Module = "inception",
        weights: str | None = None,
        kid_subset_size: int = 1000,
        kid_subsets: int = 100,
        batch_size: int = 100,
    ) -> None:
        self.num_samples, self.features, self.weights = num_samples, features, weights
        self.kid_subset_size, self.kid_subsets = kid_subset_size, kid_subsets
        self.batch_size = batch_size
        self._network: nn.Module | None = None

    def describe_features(self) -> str:
        """``inception`` (2048-d pool), ``inception-<layer>``, or ``module.Class(settings)``."""
        if isinstance(self.features, nn.Module):
            kind = type(self.features)
            return f"{kind.__module__}.{kind.__qualname__}({self.features.extra_repr()})"
        return "inception" if self.features in ("inception", 2048) else f"inception-{self.features}"

    def settings(self) -> dict[str, Any]:
        """What these values depend on, as plain values."""
        inception = not isinstance(self.features, nn.Module)
        return {
            "num_samples": self.num_samples, "features": self.describe_features(),
            "weights": str(self.weights) if inception and self.weights is not None else None,
            "kid_subset_size": self.kid_subset_size, "kid_subsets": self.kid_subsets,
            "batch_size": self.batch_size,
        }  # fmt: skip

    def check_available(self) -> None:
        """Check the settings and load the feature network (Inception: its weights), so that
        a problem is a ``ConfigError`` before training rather than after it."""
        if self._network is None:
            self._check_settings()
            if isinstance(self.features, nn.Module):
                self._network = self.features.eval()
            else:
                layer = 2048 if self.features == "inception" else int(self.features)
                self._network = inception_network(layer, self.weights)

    @torch.no_grad()
    def __call__(
        self,
        sample: Callable[[int, torch.Generator], torch.Tensor],
        images: torch.Tensor,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> dict[str, float]:
        """``{"fid", "kid", "kid_std"}`` of ``num_samples`` images of ``sample(n, generator)``
        (in [0, 1]; one generator seeded with ``seed``) against the uint8 ``images``."""
        generator = torch.Generator().manual_seed(seed)
        parts = []
        for start in range(0, self.num_samples, self.batch_size):
            n = min(self.batch_size, self.num_samples - start)
            parts.append(self.features_of(sample(n, generator), device))
        return self._distances(self.features_of(images, device), torch.cat(parts), seed)

    def compare(self, real: torch.Tensor, samples: torch.Tensor, seed: int = 0) -> dict[str, float]:
        """``{"fid", "kid", "kid_std"}`` between two sets of images (uint8, or floats in [0, 1])."""
        return self._distances(self.features_of(real), self.features_of(samples), seed)

    @torch.no_grad()
    def features_of(self, images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """φ(images) in float64 on the CPU, ``[N, d]``, computed ``batch_size`` at a time."""
        self.check_available()
        network = self._network.to(device)
        return torch.cat([
            network(to_uint8_rgb(images[i : i + self.batch_size]).to(device)).double().cpu()
            for i in range(0, len(images), self.batch_size)
        ])  # fmt: skip

    def kid_subset(self, real: int, samples: int) -> int:
        """Images in each of KID's subsets: ``kid_subset_size``, or fewer when fewer ``real``
        images or ``samples`` are there."""
        return min(self.kid_subset_size, real, samples)

    def _distances(self, real: torch.Tensor, samples: torch.Tensor, seed: int) -> dict[str, float]:
        """torchmetrics' FID and KID of features ``[N, d]``; KID's subsets drawn with ``seed``."""
        subset = self.kid_subset(len(real), len(samples))
        fid = FrechetInceptionDistance(feature=_Given(real.shape[1]))
        with warnings.catch_warnings():  # that it keeps every feature: 160 MB for 10,000
            warnings.simplefilter("ignore", UserWarning)
            kid = KernelInceptionDistance(
                feature=_Given(real.shape[1]), subsets=self.kid_subsets, subset_size=subset
            )
        for metric in (fid, kid):
            metric.update(real, real=True)
            metric.update(samples, real=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            kid_mean, kid_std = kid.compute()
        return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}

    def _check_settings(self) -> None:
        counts = {
            "num_samples": (self.num_samples, 2), "kid_subset_size": (self.kid_subset_size, 2),
            "kid_subsets": (self.kid_subsets, 1), "batch_size": (self.batch_size, 1),
        }  # fmt: skip
        for key, (value, low) in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"`evaluation.fid.{key}` must be a whole number >= {low}, got {value!r}."
                )
        known = isinstance(self.features, nn.Module) or self.features == "inception"
        if not known and (isinstance(self.features, bool) or self.features not in INCEPTION_LAYERS):
            raise ConfigError(
                f"`evaluation.fid.features` must be inception (its 2048-d pool layer), one of "
                f"Inception's layers 64, 192, 768, 2048, or a feature network such as "
                f"evaluation.fid.features={PIXEL_FEATURES}; got {self.features!r}."
            )


ALTERNATIVES = (
    f"measure with a small network instead, evaluation.fid.features={PIXEL_FEATURES} (values "
    f"not comparable with Inception FID), or skip FID and KID with evaluation.fid=null."
)


def inception_network(layer: int, weights: str | Path | None = None) -> nn.Module:
    """torchmetrics' Inception v3 giving ``layer``-d features, its weights read from
    ``weights`` or from torch hub's cache (downloaded there the first time)."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as error:
        raise ConfigError(
            f"FID and KID with evaluation.fid.features=inception need torch-fidelity, which "
            f"provides torchmetrics' Inception network, and it cannot be imported ({error}); "
            f"install it with pip install 'torch-fidelity>=0.3,<0.5', or {ALTERNATIVES}"
        ) from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(URL_INCEPTION_V3).name
    path = Path(weights) if weights is not None else cached
    if weights is not None and not path.is_file():
        raise ConfigError(_missing(URL_INCEPTION_V3, cached, f"evaluation.fid.weights={weights} "
                                   f"is not a file"))  # fmt: skip
    if path.is_file():
        _check_weights_file(path, URL_INCEPTION_V3)
    else:
        log.info("downloading the Inception weights for FID (91 MB) to %s", path)
    try:
        with redirect_stderr(io.StringIO()):  # torch.hub's own "Downloading: ..." line
            return NoTrainInceptionV3(
                name="inception-v3-compat", features_list=[str(layer)],
                feature_extractor_weights_path=None if weights is None else str(path),
            )  # fmt: skip
    except OSError as error:  # offline: urllib's URLError
        if path.is_file():
            raise _unusable(path, f"it cannot be read ({error})", URL_INCEPTION_V3) from None
        why = f"downloading them failed ({error})"
        raise ConfigError(_missing(URL_INCEPTION_V3, cached, why)) from None
    except RuntimeError:  # load_state_dict: the tensors of another network
        problem = (
            "its tensors are not those of torch-fidelity's Inception v3 (other names or shapes)"
        )
        raise _unusable(path, problem, URL_INCEPTION_V3) from None


def _missing(url: str, cached: Path, why: str) -> str:
    return (
        f"FID and KID (evaluation.fid) need the Inception v3 weights that torchmetrics uses, "
        f"{cached.name}, and they are not on this machine: {why}. On a machine with internet, "
        f"download {url} (91 MB) and put it at {cached} (torch hub's cache; TORCH_HOME moves "
        f"it), or anywhere with evaluation.fid.weights=<file>. Or {ALTERNATIVES}"
    )


def _check_weights_file(path: Path, url: str) -> None:
    """``ConfigError`` unless the file holds tensors only: torch-fidelity reads it with the
    full unpickler, which runs any code stored in it."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if re.search(r"GLOBAL [\w.]+", str(error)):  # a pickle that names a class or function
            problem = "it holds Python objects besides tensors, which could run code if loaded"
            raise _unusable(path, problem, url) from None
        raise _unusable(path, "it is not a file of tensors torch can read", url) from None
    except Exception as error:  # arbitrary bytes fail deep in the unpickler in many ways
        raise _unusable(path, f"it cannot be read ({type(error).__name__})", url) from None


def _unusable(path: Path, problem: str, url: str) -> ConfigError:
    return ConfigError(
        f"The Inception weights file {path} cannot be used: {problem}. Download {url} "
        f"(91 MB) on a machine with internet and put it there, or {ALTERNATIVES}"
    )
