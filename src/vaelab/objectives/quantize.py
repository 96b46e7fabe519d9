"""Scalar quantizers of the latent: each dimension j takes one of K values v_j1 .. v_jK.

A quantizer maps the encoder's output to ``(z_c, z_hat)``: the continuous code z_c and the
straight-through quantized code

    z_hat = z_c + sg(q(z_c) - z_c),

equal to q(z_c) in the forward pass (up to float rounding), with the identity gradient to z_c
(sg = stop-gradient, ``detach``). ``codes`` gives q(z_c) exactly (what evaluation scores);
``values()`` are the codebooks ``[D, K]`` (sorted) that samples and traversals use.

- ``LearnedScalarCodebook`` (QLAE, Hsu et al. 2023): q(z_c)_j = argmin_{v ∈ V_j} |z_cj − v|,
  with learnable V_j initialised evenly in [−0.5, 0.5] (``jnp.linspace(-0.5, 0.5, K)`` in
  kylehkhsu/latent_quantization, disentangle/latents/quantized.py); z_c is the encoder output.
- ``FixedGridQuantizer`` (Tripod, Hsu et al. 2024): z_c = tanh(encoder output),
  q(z_c) = 2 round((z_c + 1)(K − 1) / 2) / (K − 1) − 1, the K values evenly in [−1, 1]
  (kylehkhsu/tripod, disentangle/nn/quantizer.py).
"""

from __future__ import annotations

import torch
from torch import nn

from vaelab.objectives.base import Objective, Parts, VAEOutput


def straight_through(z_c: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """z_c + sg(q − z_c): q's value, the identity's gradient with respect to z_c."""
    return z_c + (q - z_c).detach()


def require_quantizing_forward(out: VAEOutput, model: str) -> None:
    """Refuse codes that did not come through a quantizing forward (``VAEModule.forward`` or
    the stack's, which quantize the latent and set ``out.decode``)."""
    if out.decode is None:
        raise ValueError(
            f"model={model} needs a forward pass that quantizes the latent (VAEModule.forward); "
            f"these codes came without it"
        )


class QuantizedObjective(Objective):
    """A deterministic, quantized latent (QLAE, Tripod): loss = recon + P · penalty, P = C·H·W.

    The papers average the reconstruction over pixels where vaelab sums it, so their whole
    loss is multiplied by P; ``penalty`` returns the paper's weighted penalty (per pixel) and
    its parts in the paper's units for the logs. β has no effect."""

    variational = False
    name = "quantized"  # the model's name, for require_quantizing_forward's message

    def penalty(
        self, out: VAEOutput, whole_batch: VAEOutput | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def forward(
        self,
        x: torch.Tensor,
        out: VAEOutput,
        beta: float,
        step: int = 0,
        whole_batch: VAEOutput | None = None,
    ) -> Parts:
        require_quantizing_forward(out, self.name)
        recon = self.likelihood.nll(x, out.logits).mean()
        penalty, logs = self.penalty(out, whole_batch)
        return {
            "loss": recon + x[0].numel() * penalty,
            "recon": recon,
            "kl": recon.new_zeros(()),
            "kl_per_dim": out.mu.new_zeros(0),
            **{k: v.detach() for k, v in logs.items()},
        }


def sample_codes(values: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``[n, D]`` codes with z_j drawn uniformly from the K values of ``values [D, K]``
    (both papers' ``sample``: ``jax.random.choice`` over each latent's values)."""
    d, k = values.shape
    index = torch.randint(0, k, (n, d), generator=generator).to(values.device)
    return torch.gather(values.expand(n, d, k), 2, index[..., None])[..., 0]


class ScalarQuantizer(nn.Module):
    """z_c = ``continuous(encoder output)``, q = ``nearest(z_c)``; see the module docstring."""

    def continuous(self, pre_z: torch.Tensor) -> torch.Tensor:
        return pre_z

    def nearest(self, z_c: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def values(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pre_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_c, z_hat)``: the continuous code and its straight-through quantization."""
        z_c = self.continuous(pre_z)
        return z_c, straight_through(z_c, self.nearest(z_c))

    def codes(self, pre_z: torch.Tensor) -> torch.Tensor:
        """q(z_c), exactly the codebook values."""
        return self.nearest(self.continuous(pre_z))


class LearnedScalarCodebook(ScalarQuantizer):
    """QLAE's latent: per dimension a learnable codebook of K scalars (``codebook [D, K]``)."""

    def __init__(self, latent_dim: int, num_values: int = 10) -> None:
        super().__init__()
        if num_values < 2:
            raise ValueError(f"a codebook needs at least 2 values, got {num_values}")
        self.codebook = nn.Parameter(torch.linspace(-0.5, 0.5, num_values).repeat(latent_dim, 1))

    def nearest(self, z_c: torch.Tensor) -> torch.Tensor:
        """q(z_c) ``[B, D]``: each z_cj replaced by its nearest value in V_j; differentiable
        with respect to the codebook (not to z_c). Ties go to the first (lowest-index) value."""
        codebook = self.codebook.to(z_c.dtype)
        index = (z_c.detach()[..., None] - codebook.detach()).abs().argmin(-1)  # [B, D]
        return torch.gather(codebook.expand(len(z_c), *codebook.shape), 2, index[..., None])[..., 0]

    def values(self) -> torch.Tensor:
        return self.codebook.detach().sort(-1).values


class FixedGridQuantizer(ScalarQuantizer):
    """Tripod's latent: tanh, then rounding to K values evenly spaced in [−1, 1]."""

    def __init__(self, latent_dim: int, num_values: int = 12) -> None:
        super().__init__()
        if num_values < 2:
            raise ValueError(f"a grid needs at least 2 values, got {num_values}")
        self.latent_dim, self.num_values = latent_dim, num_values

    def nearest(self, z_c: torch.Tensor) -> torch.Tensor:
        """q(z_c) = 2 round((z_c + 1)(K − 1) / 2) / (K − 1) − 1 (round half to even, as jnp)."""
        steps = self.num_values - 1
        return 2 * torch.round((z_c + 1) * steps / 2) / steps - 1

    def continuous(self, pre_z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(pre_z)

    def values(self) -> torch.Tensor:
        return torch.linspace(-1, 1, self.num_values).repeat(self.latent_dim, 1)
