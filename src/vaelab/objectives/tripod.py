"""Tripod (Hsu et al., ICML 2024, "Tripod: Three Complementary Inductive Biases for
Disentangled Representation Learning"; official JAX code kylehkhsu/tripod, Autoencoder):

    loss = recon + P · (λ_MI · mean_b MI_b + λ_H · mean_b HP_b)

with three inductive biases:

1. a fixed-grid quantized latent: z_c = tanh(encoder output), z = z_c rounded to K = 12
   values evenly in [−1, 1], straight-through (``FixedGridQuantizer``);
2. the kernel-density estimate of the latent multi-information (``kde_multi_information``):
   MI_b = log q(z_b) − Σ_k log q_k(z_bk) on the batch's quantized codes z, with
   q(z_b) = 1/B Σ_j Π_k N(z_bk; z_jk, (s σ_k)²) and q_k(z_bk) = 1/B Σ_j N(z_bk; z_jk, σ_k²),
   σ_k = std_b(z_c,bk) + 1e-6 and Silverman's factor s = (4/(D+2))^{1/(D+4)} B^{−1/(D+4)}.
   As the reference, the marginals use σ_k itself (its Silverman marginal is commented
   out), and the sums over j include j = b;
3. the normalized Hessian penalty of the decoder (``normalized_hessian_penalty``).

λ per data set as the paper's (the official configs/train_autoencoder.yaml): Shapes3D
λ_MI = 1e-4, λ_H = 1e-2; MPI3D 1e-8, 1e-4 (Falcor3D 1e-10, 1e-2 and Isaac3D 1e-4, 1e-8 are not
data sets of vaelab); other data take Shapes3D's (conf/model/tripod.yaml).

Units: the reference averages the binary cross-entropy over pixels; vaelab's recon is summed
over the P = C·H·W pixels, so both penalties are multiplied by P (the paper's relative
weights). Deviation: the reference penalises the Hessian of its decoder's intermediate
activations (the conditioning MLP and the first three up-blocks); vaelab's decoders are
interchangeable, so the penalty is taken on the decoder's output logits.
The evaluation scores the quantized code, as the reference (``z_q`` in its metrics).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from vaelab.objectives.base import VAEOutput
from vaelab.objectives.quantize import FixedGridQuantizer, QuantizedObjective

STD_FLOOR = 1e-6  # added to the batch std of z_c, as the reference
RATIO_FLOOR = 1e-10  # added to the denominator of the normalized Hessian penalty


def silverman_factor(batch: int, dims: int) -> float:
    """Silverman's rule for a D-dimensional Gaussian kernel: (4/(D+2))^{1/(D+4)} B^{−1/(D+4)};
    the bandwidth of dimension k is this times its standard deviation."""
    return (4 / (dims + 2)) ** (1 / (dims + 4)) * batch ** (-1 / (dims + 4))


def _log_normal(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x / scale).square() - scale.log() - 0.5 * math.log(2 * math.pi)


def kde_multi_information(z: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``[B]``: MI_b = log q(z_b) − Σ_k log q_k(z_bk), with Gaussian kernel densities over the
    batch ``z [B, D]``: the joint's bandwidths ``std`` × Silverman's factor, the marginals'
    ``std``."""
    b, d = z.shape
    diff = z[:, None, :] - z[None, :, :]  # [I, J, D]
    log_b = math.log(b)
    log_marginals = torch.logsumexp(_log_normal(diff, std), dim=1) - log_b  # [I, D]
    joint_std = std * silverman_factor(b, d)
    log_joint = torch.logsumexp(_log_normal(diff, joint_std).sum(-1), dim=1) - log_b  # [I]
    return log_joint - log_marginals.sum(-1)


def normalized_hessian_penalty(
    decode: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    f_z: torch.Tensor,
    std: torch.Tensor,
    epsilon: float = 0.1,
    num_perturbations: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``[B]``: mean_o Var_v[Δ_v f_o] over Rademacher v / mean_o Var_v[Δ_v f_o] over Gaussian v,
    with the central second difference Δ_v f = (f(z + v) − 2 f(z) + f(z − v)) / ε² and
    v = ε · u ⊙ std, ``num_perturbations`` draws of u of each kind, Var over them (ddof 0),
    mean over the outputs o of ``f_z = decode(z)``. Var over Rademacher u of vᵀHv estimates
    2 Σ_{i≠j} H_ij² (the off-diagonal Hessian), over Gaussian u 2 Σ_ij H_ij² (all of it)."""
    k, (b, d) = num_perturbations, z.shape
    signs = torch.randint(0, 2, (k, b, d), generator=generator).mul_(2).sub_(1)
    normals = torch.randn(k, b, d, generator=generator)
    u = torch.cat([signs.to(normals.dtype), normals]).to(device=z.device, dtype=z.dtype)
    v = epsilon * u * std  # [2k, B, D]
    shifted = decode(torch.cat([z + v, z - v]).flatten(0, 1)).reshape(2, 2 * k, b, -1)
    wide = torch.promote_types(shifted.dtype, torch.float32)  # the differences cancel: >= fp32
    centre = f_z.reshape(1, b, -1).to(wide)
    differences = (shifted[0].to(wide) - 2 * centre + shifted[1].to(wide)) / epsilon**2
    rademacher = differences[:k].var(0, unbiased=False).mean(-1)
    gaussian = differences[k:].var(0, unbiased=False).mean(-1)
    return rademacher / (gaussian + RATIO_FLOOR)


class Tripod(QuantizedObjective):
    """recon + P (λ_MI MI + λ_H HP) on a fixed-grid quantized latent."""

    name = "tripod"
    uses_batch_statistics = True  # the KDE and σ are statistics of the (global) batch
    draws_in_training = True  # the Hessian probes' directions

    def __init__(
        self,
        latent_dim: int,
        likelihood: str = "bernoulli",
        num_values: int = 12,
        lambda_mi: float = 1e-4,
        lambda_hessian: float = 1e-2,
        epsilon: float = 0.1,
        num_perturbations: int = 2,
    ) -> None:
        super().__init__(likelihood)
        if min(lambda_mi, lambda_hessian) < 0 or epsilon <= 0 or num_perturbations < 2:
            raise ValueError(
                "tripod needs lambda_mi, lambda_hessian >= 0, epsilon > 0 and "
                "num_perturbations >= 2 (a variance over the perturbations)"
            )
        self.quantizer = FixedGridQuantizer(latent_dim, num_values)
        self.lambda_mi, self.lambda_hessian = lambda_mi, lambda_hessian
        self.epsilon, self.num_perturbations = epsilon, num_perturbations

    def penalty(
        self, out: VAEOutput, whole_batch: VAEOutput | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """λ_MI MI + λ_H HP. In evaluation mode the perturbations are drawn from a generator
        seeded with 0, so validation neither depends on nor moves the training random state.
        With λ_H = 0 the Hessian penalty is not computed (its 4 × num_perturbations decoder
        passes were most of a step) nor logged."""
        codes = whole_batch or out
        std = codes.mu.std(0, unbiased=False) + STD_FLOOR
        mi = kde_multi_information(codes.z.float(), std.float()).mean()
        weighted, parts = self.lambda_mi * mi, {"multi_information": mi}
        if self.lambda_hessian:
            generator = None if self.training else torch.Generator().manual_seed(0)
            hessian = normalized_hessian_penalty(
                out.decode, out.z, out.logits, std[None].to(out.z.dtype),
                self.epsilon, self.num_perturbations, generator,
            ).mean()  # fmt: skip
            weighted = weighted + self.lambda_hessian * hessian
            parts["hessian_penalty"] = hessian
        return weighted, parts
