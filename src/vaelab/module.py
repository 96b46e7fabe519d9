"""The LightningModule: encoder -> z = mu + exp(0.5 logvar) * eps -> decoder, trained on an
objective whose β follows a schedule. Batches arrive as uint8 and become x = images / 255."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import lightning as L
import torch
from torch import nn

from vaelab.errors import NonFiniteLossError
from vaelab.objectives import Objective, VAEOutput

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


NAN_POLICIES = ("stop", "skip")


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z = mu + sigma * eps with sigma = exp(0.5 * logvar) and eps ~ N(0, I)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


class VAEModule(L.LightningModule):
    """Wraps the networks, the objective, the β schedule and the optimizer."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        objective: Objective,
        beta_schedule: Callable[[int], float],
        optimizer: OptimizerFactory,
        latent_dim: int,
        nan_policy: str = "stop",
    ) -> None:
        super().__init__()
        if nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
        self.encoder, self.decoder = encoder, decoder
        self.objective, self.beta_schedule = objective, beta_schedule
        self.optimizer_factory, self.latent_dim = optimizer, latent_dim
        self.nan_policy, self.skipped_batches = nan_policy, 0
        # An objective with a network of its own (FactorVAE) takes a second optimizer step.
        self.has_auxiliary = objective.has_auxiliary_network
        self.automatic_optimization = not self.has_auxiliary

    # ---- the model -------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """q(z|x) parameters ``(mu, logvar)``; logvar is None for the deterministic AE."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits of p(x|z)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = mu if logvar is None else reparameterize(mu, logvar, generator)
        return VAEOutput(mu=mu, logvar=logvar, z=z, logits=self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x | z = mu(x)]: the mean reconstruction, in [0, 1]."""
        mu, _ = self.encode(x)
        return self.objective.likelihood.mean(self.decode(mu))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode n draws of z ~ N(0, I) to mean images in [0, 1]."""
        z = torch.randn(n, self.latent_dim, generator=generator).to(self.device)
        return self.objective.likelihood.mean(self.decode(z))

    @torch.no_grad()
    def interpolate(self, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8) -> torch.Tensor:
        """Mean images along z(t) = (1 - t) mu(x_a) + t mu(x_b), t in [0, 1];
        ``[steps, C, H, W]``."""
        mu_a, _ = self.encode(x_a[None])
        mu_b, _ = self.encode(x_b[None])
        t = torch.linspace(0, 1, steps, device=mu_a.device)[:, None]
        return self.objective.likelihood.mean(self.decode((1 - t) * mu_a + t * mu_b))

    # ---- training ----------------------------------------------------------------------
    def on_after_batch_transfer(self, batch: torch.Tensor, dataloader_idx: int) -> torch.Tensor:
        """uint8 images -> float in [0, 1], on the device."""
        return batch.float().div_(255.0)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None and getattr(datamodule, "split_indices", None):
            self.objective.setup(dataset_size=len(datamodule.split_indices["train"]))

    def training_step(self, x: torch.Tensor, batch_idx: int) -> torch.Tensor | None:
        beta = self.beta_schedule(self.global_step)
        out = self(x)
        parts = self.objective(x, out, beta, self.global_step)
        loss = parts.pop("loss")
        if not torch.isfinite(loss):
            return self._non_finite(loss, parts)
        if self.has_auxiliary:
            parts.update(self._manual_steps(loss, out))
        kl_dims = {f"train/kl_dim/{i}": v for i, v in enumerate(parts.pop("kl_per_dim"))}
        logs = {f"train/{k}": v for k, v in parts.items()}
        self.log_dict({**logs, **kl_dims, "train/beta": beta}, batch_size=len(x))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(x))
        return loss

    def _non_finite(self, loss: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
        """Stop with a report (``nan_policy=stop``) or skip the batch and count it (``skip``)."""
        if self.nan_policy == "skip":
            self.skipped_batches += 1
            self.log("train/skipped_batches", float(self.skipped_batches), prog_bar=True)
            return None
        bad = [k for k, v in parts.items() if not torch.isfinite(v).all()] or ["loss"]
        raise NonFiniteLossError(
            f"the training loss became {loss.item()} at step {self.global_step}; non-finite "
            f"parts: {', '.join(bad)}. Nothing of this step was saved. Try a lower learning rate "
            f"(optimizer.lr), float32 (precision=32), or trainer.nan_policy=skip to skip such "
            f"batches."
        )

    def _manual_steps(self, loss: torch.Tensor, out: VAEOutput) -> dict[str, torch.Tensor]:
        """VAE step on ``loss``, then the objective's own network on detached codes.

        The auxiliary step uses the bare torch optimizer (no loss scaling, no step count), so
        ``global_step`` counts VAE steps only and ``max_steps`` means the same for every model.
        """
        vae_opt, aux_opt = self.optimizers()
        vae_opt.zero_grad()
        self.manual_backward(loss)
        vae_opt.step()
        aux_loss, logs = self.objective.auxiliary_loss(out)
        aux_opt.optimizer.zero_grad()  # drops what the VAE loss left in the auxiliary network
        aux_loss.backward()
        aux_opt.optimizer.step()
        return logs

    def _evaluate(self, x: torch.Tensor, split: str, batch_idx: int) -> None:
        """Log the loss at the current β and, for variational models, the ELBO (β = 1).

        z is drawn with a generator seeded by the batch index, so evaluation neither depends
        on nor moves the training random state, and repeated evaluations agree."""
        generator = torch.Generator(device=x.device).manual_seed(batch_idx)
        out = self(x, generator)
        parts = self.objective(x, out, self.beta_schedule(self.global_step), self.global_step)
        logs = {f"{split}/loss": parts["loss"], f"{split}/recon": parts["recon"]}
        if self.objective.variational:
            logs[f"{split}/kl"] = parts["kl"]
            logs[f"{split}/elbo"] = -(parts["recon"] + parts["kl"])
        self.log_dict(logs, batch_size=len(x), prog_bar=split == "val")

    def validation_step(self, x: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(x, "val", batch_idx)

    def test_step(self, x: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(x, "test", batch_idx)

    def configure_optimizers(self) -> torch.optim.Optimizer | list[torch.optim.Optimizer]:
        """The configured optimizer over encoder and decoder (+ the objective's own, if any)."""
        vae = self.optimizer_factory([*self.encoder.parameters(), *self.decoder.parameters()])
        auxiliary = self.objective.auxiliary_optimizer()
        return vae if auxiliary is None else [vae, auxiliary]
