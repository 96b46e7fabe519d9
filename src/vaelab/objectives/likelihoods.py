"""Decoder likelihoods p(x|z): negative log-likelihood in nats, summed over pixels.

The decoder always outputs unconstrained ``logits`` of the image's shape; each likelihood
says how to read them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Bernoulli:
    """p(x|z) = prod_i Bernoulli(x_i; sigmoid(logit_i)); x in [0, 1] (binary or grey).

    nll = sum_i BCE(logit_i, x_i), the tutorial's ``binary_cross_entropy(..., reduction='sum')``.
    """

    name = "bernoulli"

    def nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Per-example NLL ``[B]``."""
        bce = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none")
        return bce.flatten(1).sum(1)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """E[x|z] = sigmoid(logits)."""
        return torch.sigmoid(logits)


class Gaussian:
    """p(x|z) = prod_i N(x_i; sigmoid(logit_i), sigma^2) with a fixed sigma.

    nll = sum_i (x_i - mean_i)^2 / (2 sigma^2) + 0.5 * log(2 pi sigma^2).
    """

    name = "gaussian"

    def __init__(self, sigma: float = 1.0) -> None:
        if sigma <= 0:
            raise ValueError(f"Gaussian likelihood needs sigma > 0, got {sigma}")
        self.sigma = sigma

    def nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Per-example NLL ``[B]``."""
        sq = (x.float() - torch.sigmoid(logits.float())).pow(2).flatten(1)
        const = 0.5 * math.log(2 * math.pi * self.sigma**2)
        return (sq / (2 * self.sigma**2) + const).sum(1)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """E[x|z] = sigmoid(logits)."""
        return torch.sigmoid(logits)


LIKELIHOODS = {"bernoulli": Bernoulli, "gaussian": Gaussian}


def make_likelihood(name: str) -> Bernoulli | Gaussian:
    """The likelihood called ``name`` (one of ``LIKELIHOODS``)."""
    try:
        return LIKELIHOODS[name]()
    except KeyError:
        raise ValueError(
            f"unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}"
        ) from None
