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

from vaelab.module import VAEModule, logs_written_this_step, reparameterize
from vaelab.objectives.ada_gvae import AdaGVAE
from vaelab.objectives.base import Parts, VAEOutput


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
        if x.ndim < 3 or x.shape[1] != 2:
            raise ValueError(f"AdaGVAEModule trains on pairs [B, 2, C, H, W], got {list(x.shape)}")
        n = len(x)
        mu, logvar = self.encode(torch.cat([x[:, 0], x[:, 1]]))
        first, second, shared = self.objective.aggregate(mu[:n], logvar[:n], mu[n:], logvar[n:])
        z1 = reparameterize(*first, generator, shard)
        z2 = reparameterize(*second, generator, shard)
        logits = self.decode(torch.cat([z1, z2]))
        out1 = VAEOutput(mu=first[0], logvar=first[1], z=z1, logits=logits[:n])
        out2 = VAEOutput(mu=second[0], logvar=second[1], z=z2, logits=logits[n:])
        return out1, out2, shared

    def training_step(self, x: torch.Tensor, batch_idx: int) -> torch.Tensor | None:
        beta = self.beta_schedule(self.global_step)
        shard = (self.trainer.global_rank, self.trainer.world_size)
        out1, out2, shared = self.pair_forward(x, shard=shard)
        parts: Parts = self.objective.pair_loss(
            x[:, 0], out1, x[:, 1], out2, beta, self.global_step
        )
        parts["shared_dims"] = shared.float().sum(1).mean()
        loss = parts.pop("loss")
        shown = self._mean_over_ranks({"loss": loss, **parts}, shard[1])
        if not torch.isfinite(shown["loss"]):
            return self._non_finite(loss, parts)
        self._skips_in_a_row = 0
        if logs_written_this_step(self.trainer):
            self.log("train/loss", shown.pop("loss"), prog_bar=True, batch_size=len(x))
            kl_dims = {f"train/kl_dim/{i}": v for i, v in enumerate(shown.pop("kl_per_dim"))}
            logs = {f"train/{k}": v for k, v in shown.items()}
            self.log_dict({**logs, **kl_dims, "train/beta": beta}, batch_size=len(x))
        return loss
