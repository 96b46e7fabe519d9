"""The LightningModule: encoder -> z = mu + exp(0.5 logvar) * eps -> decoder, trained on an
objective whose β follows a schedule. Batches arrive as uint8 and become x = images / 255.

An objective with a quantizer (QLAE, Tripod) replaces the sampling step: the encoder output
becomes (z_c, straight-through quantized z), ``encode`` gives the quantized code, ``sample``
draws each latent uniformly from its codebook, and the codebooks are trained with the networks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from torch import nn

from vaelab.checkpoint import lay_out_as_parameters
from vaelab.errors import NonFiniteLossError
from vaelab.objectives import Objective, VAEOutput
from vaelab.objectives.quantize import sample_codes

Parts = dict[str, torch.Tensor]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


NAN_POLICIES = ("stop", "skip")
MAX_SKIPS_IN_A_ROW = 100  # with nan_policy=skip, a run whose every batch is non-finite stops


def reparameterize(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    generator: torch.Generator | None = None,
    shard: tuple[int, int] = (0, 1),
) -> torch.Tensor:
    """z = mu + sigma * eps with sigma = exp(0.5 * logvar) and eps ~ N(0, I).

    With ``shard = (rank, world_size)`` (DDP, each rank holding an equal slice of the global
    batch) eps is this rank's slice of one draw for the whole batch: the same eps, and the
    same random state afterwards, as one process training on that batch."""
    rank, world_size = shard
    n = len(mu)
    shape = (n * world_size, *mu.shape[1:])
    eps = torch.randn(shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps[rank * n : (rank + 1) * n]


def weight_decay_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]], undecayed: Iterable[nn.Parameter] = ()
) -> list[dict]:
    """Two parameter groups: ``weights`` (every parameter not named ``*bias``, decayed with
    the optimizer's weight_decay) and ``rest`` (biases and ``undecayed``, e.g. codebooks, with
    weight_decay 0), as QLAE's reference labels its parameters for AdamW."""
    weights, rest = [], list(undecayed)
    for name, parameter in named_parameters:
        (rest if name.endswith("bias") else weights).append(parameter)
    return [
        {"params": weights, "name": "weights"},
        {"params": rest, "weight_decay": 0.0, "name": "rest"},
    ]


def networks_optimizer(
    module: L.LightningModule, own: Iterable[nn.Parameter], decay_only_weights: bool
) -> torch.optim.Optimizer:
    """``module.optimizer_factory`` over its encoder's and decoder's parameters and ``own``
    (codebooks), in ``weight_decay_groups`` with ``decay_only_weights``."""
    networks = [
        *module.encoder.named_parameters(prefix="encoder"),
        *module.decoder.named_parameters(prefix="decoder"),
    ]
    if decay_only_weights:
        return module.optimizer_factory(weight_decay_groups(networks, own))
    return module.optimizer_factory([*(p for _, p in networks), *own])


def clip_values(optimizer: torch.optim.Optimizer, clip_value: float, only_weights: bool) -> None:
    """Each gradient element clipped to [−clip_value, clip_value] (``optax.clip``), in every
    parameter group or, with ``only_weights``, in the ``weights`` group of
    ``weight_decay_groups``. Elementwise, so the same for each member of a stack."""
    for group in optimizer.param_groups:
        if not only_weights or group.get("name") == "weights":
            nn.utils.clip_grad_value_(group["params"], clip_value)


def gather_codes(out: VAEOutput) -> VAEOutput:
    """mu, logvar and z of every DDP rank's slice, in rank order: the global batch's codes,
    as one process has them. The gather keeps gradients (``torch.distributed.nn``): each rank
    computes the same batch statistics, its own slice gets the gradient of every rank's copy
    (W times the statistic's), and DDP's mean over the W ranks leaves one process's gradient."""
    from torch.distributed.nn.functional import all_gather

    def whole(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else torch.cat(all_gather(t.contiguous()), 0)

    return VAEOutput(mu=whole(out.mu), logvar=whole(out.logvar), z=whole(out.z), logits=out.logits)


def logs_written_this_step(trainer: L.Trainer) -> bool:
    """Whether Lightning writes step logs after this batch (every ``log_every_n_steps``)."""
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True))


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
        decay_only_weights: bool = False,
        clip_value: float | None = None,
        clip_only_weights: bool = False,
    ) -> None:
        """``decay_only_weights``: the optimizer gets ``weight_decay_groups`` (weight decay on
        weights, not on biases or the objective's codebooks). ``clip_value``: each gradient
        element clipped to [−clip_value, clip_value] before the step (of the ``weights`` group
        only with ``clip_only_weights``), besides any ``trainer.gradient_clip_val``."""
        super().__init__()
        if nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
        self.encoder, self.decoder = encoder, decoder
        self.objective, self.beta_schedule = objective, beta_schedule
        self.optimizer_factory, self.latent_dim = optimizer, latent_dim
        self.nan_policy, self.skipped_batches, self._skips_in_a_row = nan_policy, 0, 0
        self.logged_before: dict[str, float] = {}  # what a checkpoint resumed from had logged
        if clip_value is not None and clip_value <= 0:
            raise ValueError(f"clip_value must be > 0, got {clip_value}")
        if clip_only_weights and not decay_only_weights:
            raise ValueError("clip_only_weights needs decay_only_weights (the weights group)")
        self.decay_only_weights = decay_only_weights
        self.clip_value, self.clip_only_weights = clip_value, clip_only_weights
        # An objective with a network of its own (FactorVAE) takes a second optimizer step.
        self.has_auxiliary = objective.has_auxiliary_network
        self.automatic_optimization = not self.has_auxiliary

    # ---- the model -------------------------------------------------------------------
    @property
    def quantizer(self) -> nn.Module | None:
        """The objective's quantizer (QLAE, Tripod), or None."""
        return self.objective.quantizer

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """q(z|x) parameters ``(mu, logvar)``; logvar is None for the deterministic AE. For a
        quantized latent: ``(quantized code, None)``, the representation its paper scores."""
        if self.quantizer is None:
            return self.encoder(x)
        pre_z, _ = self.encoder(x)
        return self.quantizer.codes(pre_z), None

    def codebook(self) -> torch.Tensor | None:
        """The values ``[D, K]`` each quantized latent takes (sorted); None when continuous."""
        return None if self.quantizer is None else self.quantizer.values()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits of p(x|z)."""
        return self.decoder(z)

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> VAEOutput:
        mu, logvar = self.encoder(x)
        if self.quantizer is not None:
            mu, z = self.quantizer(mu)  # continuous z_c, straight-through quantized z
        else:
            z = mu if logvar is None else reparameterize(mu, logvar, generator, shard)
        return VAEOutput(mu=mu, logvar=logvar, z=z, logits=self.decode(z), decode=self.decode)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """E[x | z = mu(x)]: the mean reconstruction, in [0, 1]."""
        mu, _ = self.encode(x)
        return self.objective.likelihood.mean(self.decode(mu))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode n draws of z ~ N(0, I) to mean images in [0, 1]; for a quantized latent,
        of z_j drawn uniformly from latent j's codebook (as both papers sample)."""
        if self.quantizer is not None:
            z = sample_codes(self.quantizer.values().to(self.device), n, generator)
        else:
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

    def on_train_start(self) -> None:
        lay_out_as_parameters(self.trainer.optimizers)  # once restored from a checkpoint

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The values logged so far (``train/*``, the learning rate, the last validation) and
        the batches skipped, kept in the checkpoint: a run resumed at its last step (stopped
        during its evaluation) trains nothing more and still reports them."""
        logged = self.trainer.callback_metrics.items()
        metrics = {k: float(v) for k, v in logged if getattr(v, "numel", lambda: 1)() == 1}
        checkpoint["logged"] = {"metrics": metrics, "skipped_batches": self.skipped_batches}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        logged = checkpoint.get("logged") or {}  # none in checkpoints before 2026-12-06
        self.logged_before = dict(logged.get("metrics") or {})
        self.skipped_batches = int(logged.get("skipped_batches", 0))

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None and getattr(datamodule, "split_indices", None):
            self.objective.setup(dataset_size=len(datamodule.split_indices["train"]))

    def training_parts(
        self, x: torch.Tensor, beta: float, shard: tuple[int, int]
    ) -> tuple[Parts, VAEOutput]:
        """The objective's loss and parts on batch ``x`` (this rank's slice ``shard``), and the
        forward pass they came from."""
        out = self(x, shard=shard)
        whole = gather_codes(out) if shard[1] > 1 and self.objective.uses_batch_statistics else None
        return self.objective(x, out, beta, self.global_step, whole_batch=whole), out

    def training_step(self, x: torch.Tensor, batch_idx: int) -> torch.Tensor | None:
        beta = self.beta_schedule(self.global_step)
        shard = (self.trainer.global_rank, self.trainer.world_size)
        parts, out = self.training_parts(x, beta, shard)
        loss = parts.pop("loss")
        shown = self._mean_over_ranks({"loss": loss, **parts}, shard[1])
        if not torch.isfinite(shown["loss"]):  # under DDP: on any rank, so all ranks agree
            return self._non_finite(loss, parts)
        self._skips_in_a_row = 0
        if self.has_auxiliary:
            shown.update(self._manual_steps(loss, out))  # FactorVAE's own logs: rank zero's
        # Only on the steps Lightning writes logs (every trainer.log_every_n_steps), which is
        # also when the progress bar's loss changes: each self.log costs ~0.3 ms, a few
        # percent of a small model's step on a CPU.
        if logs_written_this_step(self.trainer):
            self.log("train/loss", shown.pop("loss"), prog_bar=True, batch_size=len(x))
            kl_dims = {f"train/kl_dim/{i}": v for i, v in enumerate(shown.pop("kl_per_dim"))}
            logs = {f"train/{k}": v for k, v in shown.items()}
            self.log_dict({**logs, **kl_dims, "train/beta": beta}, batch_size=len(x))
        return loss

    def _mean_over_ranks(self, values: Parts, world_size: int) -> Parts:
        """``values`` averaged over DDP ranks with one all-reduce (detached): with equal slices
        of the global batch, what one process logs for that batch. As given on one process."""
        if world_size == 1:
            return values
        flat = torch.cat([v.detach().float().reshape(-1) for v in values.values()])
        flat = self.trainer.strategy.reduce(flat, reduce_op="mean")
        pieces = flat.split([v.numel() for v in values.values()])
        return {k: p.reshape(v.shape) for (k, v), p in zip(values.items(), pieces, strict=True)}

    def _non_finite(self, loss: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
        """Stop with a report (``nan_policy=stop``) or skip the batch and count it (``skip``)."""
        if self.nan_policy == "skip" and self._skips_in_a_row < MAX_SKIPS_IN_A_ROW:
            self.skipped_batches += 1
            self._skips_in_a_row += 1
            self.log("train/skipped_batches", float(self.skipped_batches), prog_bar=True)
            return None
        bad = [k for k, v in parts.items() if not torch.isfinite(v).all()] or ["loss"]
        precision = str(self._trainer.precision) if self._trainer else "32-true"
        reduced = precision.startswith(("16", "bf16"))  # float32 is the first thing to try
        raise NonFiniteLossError(
            f"the training loss became {loss.item()} at step {self.global_step} "
            f"({self._skips_in_a_row} batches skipped in a row before it); non-finite "
            f"parts: {', '.join(bad)}. Nothing of this step was saved. Try a lower learning rate "
            f"(optimizer.lr), {'float32 (precision=32), ' if reduced else ''}or "
            f"trainer.nan_policy=skip to skip such batches."
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
        # Every DDP rank evaluates the same images; sync_dist keeps the epoch value exact if
        # evaluation is ever sharded (Lightning sums value x batch size and batch sizes).
        self.log_dict(logs, batch_size=len(x), prog_bar=split == "val", sync_dist=True)

    def validation_step(self, x: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(x, "val", batch_idx)

    def test_step(self, x: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(x, "test", batch_idx)

    def configure_optimizers(self) -> torch.optim.Optimizer | list[torch.optim.Optimizer]:
        """The configured optimizer over encoder, decoder and the objective's model parameters
        (codebooks), in ``weight_decay_groups`` if asked (+ the objective's own, if any)."""
        own = self.objective.model_parameters()
        vae = networks_optimizer(self, own, self.decay_only_weights)
        auxiliary = self.objective.auxiliary_optimizer()
        return vae if auxiliary is None else [vae, auxiliary]

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Elementwise clipping at ``clip_value`` (the model's, optax.clip's), then Lightning's
        own if ``trainer.gradient_clip_val`` is set. Grads are unscaled here under AMP."""
        if self.clip_value is not None:
            clip_values(optimizer, self.clip_value, self.clip_only_weights)
        if gradient_clip_val:
            super().configure_gradient_clipping(
                optimizer, gradient_clip_val, gradient_clip_algorithm
            )
