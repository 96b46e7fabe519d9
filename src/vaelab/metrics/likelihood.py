"""Likelihood-side evaluation of a VAE: ELBO, importance-weighted log-likelihood, active units.

``model`` is anything with ``encode(x) -> (mu, logvar)``, ``decode(z) -> params`` and
``objective.likelihood.nll(x, params) -> [B]`` nats (a ``VAEModule``); images are uint8
``[N, C, H, W]`` and the model sees ``x = images / 255``. Everything is in nats per image.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from vaelab.objectives.kl import kl_normal

LOG_2PI = math.log(2 * math.pi)
# Latent rows decoded per pass of the IWAE when none is given. A GPU wants large batches. On
# a CPU under glibc's defaults the conv decoder's activations of 128 or more rows (16 MB a
# layer and up) are given back to the system after each pass and faulted in again: 64 rows
# decode 3,750 images/s on 2 cores, 256 rows 1,930 (6.6 s of the 8.5 s are system time).
# The programs keep freed memory (vaelab.allocator), where both run alike; 64 rows serve the
# library called without it, and take less memory.
SAMPLE_ROWS = {"cuda": 4096, "cpu": 64}


@contextmanager
def _eval_mode(model: Any) -> Iterator[torch.device]:
    """No gradients, ``model.eval()`` (restored afterwards); yields the model's device."""
    was_training = getattr(model, "training", False)
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    device = params[0].device if params else torch.device("cpu")
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.no_grad():
            yield device
    finally:
        if was_training and hasattr(model, "train"):
            model.train()


def _posterior(model: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu, logvar = model.encode(x)
    if logvar is None:
        raise ValueError("likelihood bounds need a variational encoder (logvar is None)")
    return mu.float(), logvar.float()


def _float_batches(
    images: torch.Tensor, batch_size: int, device: torch.device
) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size].to(device).float().div_(255.0)


def elbo_per_image(
    model: Any, images: torch.Tensor, batch_size: int = 512, seed: int = 0, num_samples: int = 1
) -> torch.Tensor:
    """ELBO(x) = E_q[-nll(x, decode(z))] - KL(q(z|x) || N(0, I)), the expectation estimated
    with ``num_samples`` draws z ~ q(z|x) and the KL in closed form; ``[N]``."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with _eval_mode(model) as device:
        for x in _float_batches(images, batch_size, device):
            mu, logvar = _posterior(model, x)
            nll = torch.zeros(len(x), device=device)
            for _ in range(num_samples):
                eps = torch.randn(mu.shape, generator=gen).to(device)
                z = mu + torch.exp(0.5 * logvar) * eps
                nll += model.objective.likelihood.nll(x, model.decode(z)) / num_samples
            out.append(-(nll + kl_normal(mu, logvar).sum(1)).cpu())
    return torch.cat(out)


def elbo(
    model: Any, images: torch.Tensor, batch_size: int = 512, seed: int = 0, num_samples: int = 1
) -> float:
    """Mean ELBO over the images, nats."""
    return float(elbo_per_image(model, images, batch_size, seed, num_samples).double().mean())


def iwae_log_weights(
    model: Any,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator,
    sample_batch: int | None = None,
) -> torch.Tensor:
    """log w_i = log p(x|z_i) + log N(z_i; 0, I) - log q(z_i|x), z_i ~ q(z|x): ``[k, B]``.

    Decodes at most ``max(B, sample_batch)`` latent rows per pass, so memory is bounded;
    ``sample_batch`` defaults to ``SAMPLE_ROWS`` of the device (4,096 on a GPU, 64 else)."""
    mu, logvar = _posterior(model, x)
    std = torch.exp(0.5 * logvar)
    if sample_batch is None:
        sample_batch = SAMPLE_ROWS.get(x.device.type, SAMPLE_ROWS["cpu"])
    per_pass = max(1, sample_batch // len(x))
    out = []
    for start in range(0, k, per_pass):
        s = min(per_pass, k - start)
        eps = torch.randn((s, *mu.shape), generator=generator).to(mu.device)
        z = mu + std * eps  # [s, B, D]
        log_prior = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
        log_q = -0.5 * (eps.pow(2) + LOG_2PI + logvar).sum(-1)
        logits = model.decode(z.flatten(0, 1))
        x_rep = x.expand(s, *x.shape).flatten(0, 1)
        log_px = -model.objective.likelihood.nll(x_rep, logits).view(s, len(x))
        out.append((log_px + log_prior - log_q).double().cpu())
    return torch.cat(out)


def iwae_per_image(
    model: Any,
    images: torch.Tensor,
    k: int = 1000,
    batch_size: int = 64,
    sample_batch: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """IWAE bound log (1/k) sum_i w_i (logsumexp of the log-weights minus log k), ``[N]``;
    a lower bound on log p(x) that tightens as k grows (k = 1 is a one-sample ELBO)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with _eval_mode(model) as device:
        for x in _float_batches(images, batch_size, device):
            log_w = iwae_log_weights(model, x, k, gen, sample_batch)
            out.append(torch.logsumexp(log_w, dim=0) - math.log(k))
    return torch.cat(out)


def log_likelihood_iw(
    model: Any,
    images: torch.Tensor,
    k: int = 1000,
    max_images: int | None = 1000,
    batch_size: int = 64,
    sample_batch: int | None = None,
    seed: int = 0,
) -> float:
    """Mean importance-weighted estimate of log p(x), nats, on at most ``max_images``
    images (a random subset drawn with ``seed``)."""
    if max_images is not None and len(images) > max_images:
        idx = np.random.default_rng(seed).choice(len(images), max_images, replace=False)
        images = images[torch.from_numpy(np.sort(idx))]
    return float(iwae_per_image(model, images, k, batch_size, sample_batch, seed).mean())


def active_units_from_means(means: torch.Tensor | np.ndarray, threshold: float = 0.01) -> int:
    """Number of latents with Var_x(E_q[z_d | x]) > threshold (Burda et al. 2016)."""
    means = np.asarray(means, dtype=np.float64)
    return int(np.sum(means.var(axis=0) > threshold))


def active_units(
    model: Any, images: torch.Tensor, threshold: float = 0.01, batch_size: int = 1024
) -> int:
    """Active units of ``model`` on ``images``: the posterior means' variance over x."""
    with _eval_mode(model) as device:
        means = [
            model.encode(x)[0].float().cpu() for x in _float_batches(images, batch_size, device)
        ]
    return active_units_from_means(torch.cat(means).numpy(), threshold)
