"""The weakly supervised module: ``VAEModule`` trained on pairs ``[B, 2, C, H, W]``.

Each training step (disentanglement_lib's ``GroupVAEBase.model_fn`` / ``MLVae.model_fn``):
encode both images, average the posteriors of the dimensions the objective finds shared
(``vaelab.objectives.ada_gvae``), draw z_i = mu'_i + sigma'_i * eps_i for each image, decode
both, and take the mean of the two images' β-VAE losses. Both images go through the networks
as one batch of 2B (the nets have no batch statistics, so this equals two passes).
Evaluation, figures and the metric suite see single images through the unchanged
``forward`` / ``encode``; the data gives pairs only for training (``data.pairs``).
"""

from __future__ import annotations

import torch

from vaelab.module import VAEModule, reparameterize
from vaelab.objectives.ada_gvae import AdaGVAE
from vaelab.objectives.base import Parts, VAEOutput

Posterior = tuple[torch.Tensor, torch.Tensor]  # (mu, logvar)


def check_pairs(x: torch.Tensor) -> None:
    if x.ndim < 3 or x.shape[1] != 2:
        raise ValueError(f"AdaGVAEModule trains on pairs [B, 2, C, H, W], got {list(x.shape)}")


def both_images(x: torch.Tensor) -> torch.Tensor:
    """Pairs ``[B, 2, ...]`` as one batch ``[2B, ...]``: every first image, then every second."""
    return torch.cat([x[:, 0], x[:, 1]])


def pair_samples(
    objective: AdaGVAE,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    generator: torch.Generator | None = None,
    shard: tuple[int, int] = (0, 1),
) -> tuple[Posterior, Posterior, torch.Tensor, torch.Tensor]:
    """From the encodings ``[2B, D]`` of ``both_images``: each image's averaged posterior,
    the shared mask ``[B, D]`` and the samples ``[2B, D]`` (z_1 drawn first, then z_2)."""
    n = len(mu) // 2
    first, second, shared = objective.aggregate(mu[:n], logvar[:n], mu[n:], logvar[n:])
    z1 = reparameterize(*first, generator, shard)
    z2 = reparameterize(*second, generator, shard)
    return first, second, shared, torch.cat([z1, z2])


def pair_outputs(
    first: Posterior, second: Posterior, z: torch.Tensor, logits: torch.Tensor
) -> tuple[VAEOutput, VAEOutput]:
    """Each image's output (averaged posterior, sample, logits) from ``pair_samples``' results
    and the decoder's logits ``[2B, ...]`` of z."""
    n = len(z) // 2
    out1 = VAEOutput(mu=first[0], logvar=first[1], z=z[:n], logits=logits[:n])
    out2 = VAEOutput(mu=second[0], logvar=second[1], z=z[n:], logits=logits[n:])
    return out1, out2


def pair_parts(
    objective: AdaGVAE,
    x: torch.Tensor,
    out1: VAEOutput,
    out2: VAEOutput,
    shared: torch.Tensor,
    beta: float,
    step: int,
) -> Parts:
    """The pair loss and its parts (the mean of the two images' β-VAE parts) and
    ``shared_dims``, the mean number of averaged dimensions."""
    parts = objective.pair_loss(x[:, 0], out1, x[:, 1], out2, beta, step)
    parts["shared_dims"] = shared.float().sum(1).mean()
    return parts


class AdaGVAEModule(VAEModule):
    """``VAEModule`` whose training batches are pairs; the objective must be ``AdaGVAE``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if not isinstance(self.objective, AdaGVAE):
            raise ValueError(
                f"AdaGVAEModule trains with the AdaGVAE objective, got "
                f"{type(self.objective).__name__}"
            )

    def pair_forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> tuple[VAEOutput, VAEOutput, torch.Tensor]:
        """Both images' outputs (averaged posteriors, samples, logits) and the shared mask
        ``[B, D]`` for pairs ``x`` of ``[B, 2, C, H, W]``."""
        check_pairs(x)
        mu, logvar = self.encode(both_images(x))
        first, second, shared, z = pair_samples(self.objective, mu, logvar, generator, shard)
        return *pair_outputs(first, second, z, self.decode(z)), shared

    def training_parts(
        self, x: torch.Tensor, beta: float, shard: tuple[int, int]
    ) -> tuple[Parts, VAEOutput]:
        """The pair loss and its parts (``pair_parts``) on pairs ``x``; VAEModule's
        ``training_step`` logs them (``train/shared_dims`` among them)."""
        out1, out2, shared = self.pair_forward(x, shard=shard)
        return pair_parts(self.objective, x, out1, out2, shared, beta, self.global_step), out1
