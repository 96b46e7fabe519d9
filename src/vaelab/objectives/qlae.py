"""QLAE, the quantized-latent autoencoder (Hsu et al., NeurIPS 2023, "Disentanglement via
Latent Quantization"; official JAX code kylehkhsu/latent_quantization, QuantizedAE):

    loss = recon + P · (w_q · L_quant + w_c · L_commit),
    L_quant  = mean_{b,j} (sg(z_c) − q(z_c))²     (moves the codebook values),
    L_commit = mean_{b,j} (z_c − sg(q(z_c)))²     (moves the encoder),

with z_c the encoder output, q its nearest value in each latent's learnable codebook of K
scalars (initialised evenly in [−0.5, 0.5]), and the decoder fed the straight-through code
z_c + sg(q − z_c). Defaults as the paper: K = 10, w_q = w_c = 0.01.

Units: the reference averages the binary cross-entropy over pixels and both latent losses
over latents (then the total over the batch); vaelab's recon is summed over the P = C·H·W
pixels, so the whole reference loss is multiplied by P, which keeps the paper's relative
weights (and, with Adam, the same updates; the value clip scales with it, see VAEModule).
The representation the evaluation scores is the quantized code q(z_c), as the paper's
(``z_hat`` in the reference's metrics).
"""

from __future__ import annotations

import torch

from vaelab.objectives.base import VAEOutput
from vaelab.objectives.quantize import LearnedScalarCodebook, QuantizedObjective


def quantization_loss(z_c: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """mean (sg(z_c) − q)²: its gradient reaches the codebook values only."""
    return (z_c.detach() - q).square().mean()


def commitment_loss(z_c: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """mean (z_c − sg(q))²: its gradient reaches the encoder only."""
    return (z_c - q.detach()).square().mean()


class QLAE(QuantizedObjective):
    """recon + P (w_q L_quant + w_c L_commit); a deterministic, quantized latent."""

    name = "qlae"

    def __init__(
        self,
        latent_dim: int,
        likelihood: str = "bernoulli",
        num_values: int = 10,
        quantization_weight: float = 0.01,
        commitment_weight: float = 0.01,
    ) -> None:
        super().__init__(likelihood)
        if min(quantization_weight, commitment_weight) < 0:
            raise ValueError("qlae's quantization and commitment weights must be >= 0")
        self.quantizer = LearnedScalarCodebook(latent_dim, num_values)
        self.quantization_weight, self.commitment_weight = quantization_weight, commitment_weight

    def penalty(
        self, out: VAEOutput, whole_batch: VAEOutput | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """w_q L_quant + w_c L_commit; ``quantization`` and ``commitment`` logged in the paper's
        units (means over latents)."""
        q = self.quantizer.nearest(out.mu)
        quantization, commitment = quantization_loss(out.mu, q), commitment_loss(out.mu, q)
        weighted = self.quantization_weight * quantization + self.commitment_weight * commitment
        return weighted, {"quantization": quantization, "commitment": commitment}
