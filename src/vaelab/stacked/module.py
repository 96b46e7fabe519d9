"""The LightningModule of a stack: K VAEs trained as one batched computation.

The members' encoders and decoders become ``StackedNet``s; each member keeps its objective
(FactorVAE's discriminator included), β schedule and random stream. Per step, for a batch
``x [K, B, C, H, W]``:

    (mu, logvar) = encoders(x);  z_k = mu_k + exp(0.5 logvar_k) * eps_k;  logits = decoders(z)
    loss = Σ_k objective_k(x_k, out_k, β_k(t), t)

with eps_k drawn from member k's own random state (the global state its single run would
have), so member k sees the batches, ε and permutations of the same config trained alone.
A quantized latent (QLAE, Tripod) replaces the sampling by member k's quantizer, and
Tripod's decoder probes run through member k's decoder; pairs (Ada-GVAE, ``x [K, B, 2, ...]``)
are encoded as one batch of 2B per member, averaged and sampled per member
(``vaelab.weak``). Weight decay and elementwise clipping (QLAE's AdamW) are elementwise, so
one optimizer over the stacked weights is still K.
The losses are summed, not averaged: each member's gradient is its own loss's, and one Adam
over the stacked parameters is K independent Adams. A member whose loss becomes non-finite
is marked failed and leaves the sum; the others train on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import nn

from vaelab.checkpoint import lay_out_as_parameters
from vaelab.errors import NonFiniteLossError
from vaelab.module import VAEModule, clip_values, logs_written_this_step, networks_optimizer
from vaelab.objectives import VAEOutput
from vaelab.objectives.base import Parts
from vaelab.stacked.nets import StackedNet
from vaelab.weak import AdaGVAEModule, pair_outputs, pair_parts, pair_samples

log = logging.getLogger(__name__)
Stacked = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]


def objective_settings(value: Any) -> Any:
    """What an objective computes with: its class and, recursively, its public attributes
    (numbers, strings, and the settings of objects such as its likelihood and schedules;
    tensors by value). Members whose objectives' settings are equal can share one vmapped
    loss."""
    if isinstance(value, int | float | str | bool | type(None)):
        return value
    if isinstance(value, list | tuple):
        return tuple(objective_settings(v) for v in value)
    if isinstance(value, torch.Tensor):
        return ("tensor", value.detach().cpu().tolist())
    public = {k: v for k, v in getattr(value, "__dict__", {}).items() if not k.startswith("_")}
    return (type(value), {k: objective_settings(v) for k, v in public.items()})


class MemberParts(Sequence[Parts]):
    """The K members' parts stacked, ``{name: [K, ...]}``; ``parts[k]`` is member k's, indexed
    when read."""

    def __init__(self, stacked: dict[str, torch.Tensor]) -> None:
        self.stacked = stacked

    @property
    def losses(self) -> torch.Tensor:
        return self.stacked["loss"]

    def __len__(self) -> int:
        return len(self.losses)

    def __getitem__(self, k: int) -> Parts:  # type: ignore[override]
        return {n: v[k] for n, v in self.stacked.items()}


class StackedVAEModule(L.LightningModule):
    """``members``: the K VAEModules, built as their single runs build them."""

    def __init__(
        self, members: list[VAEModule], seeds: list[int], vectorize: bool | str = "auto"
    ) -> None:
        super().__init__()
        self.vectorize = vectorize
        first = members[0]
        self._members = members  # a plain list: their weights live in the stacked nets
        self.encoder = StackedNet([m.encoder for m in members])
        self.decoder = StackedNet([m.decoder for m in members])
        self.objectives = nn.ModuleList([m.objective for m in members])
        self.variational = first.objective.variational
        self.quantized = first.quantizer is not None
        self.pairs = isinstance(first, AdaGVAEModule)  # training batches are pairs
        self.decay_only_weights = first.decay_only_weights
        self.clip_value, self.clip_only_weights = first.clip_value, first.clip_only_weights
        self.has_auxiliary = first.has_auxiliary
        self.automatic_optimization = not self.has_auxiliary
        self.optimizer_factory = first.optimizer_factory
        self.seeds = list(seeds)
        self.rng_states: list[dict[str, torch.Tensor]] | None = None  # set as fit starts
        self.failed: dict[int, str] = {}  # member -> why it stopped
        self.member_logs: list[dict[str, float]] = [{} for _ in members]  # latest values
        self.member_loggers: list[list[Any]] = [[] for _ in members]  # each job's own loggers
        # val / test: per member, name -> (Σ value · batch size, Σ batch size), as tensors
        self._sums: list[dict[str, tuple[torch.Tensor, int]]] = [{} for _ in members]
        self.batched_loss = False  # set in setup: the K losses in one vmapped call

    @property
    def size(self) -> int:
        return len(self._members)

    @staticmethod
    def images_in(batch: torch.Tensor) -> int:
        """Images of one member's batch (``batch`` is ``[K, B, ...]``): what a member's
        images/s counts (``callbacks.TrainingSpeed``)."""
        return batch.shape[1]

    # ---- random streams ------------------------------------------------------------------
    def _seeded_state(self, seed: int) -> dict[str, torch.Tensor]:
        """The torch random state right after ``seed_everything(seed)``: where a single run's
        training stream starts."""
        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.manual_seed(seed)
            return self._current_state()

    def _cuda_devices(self) -> list[torch.device]:
        return [self.device] if self.device.type == "cuda" else []

    def _current_state(self) -> dict[str, torch.Tensor]:
        state = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    @contextmanager
    def member_random(self, k: int) -> Iterator[None]:
        """Draws inside come from member k's random stream, which then moves on."""
        assert self.rng_states is not None
        with torch.random.fork_rng(devices=self._cuda_devices()):
            state = self.rng_states[k]
            torch.set_rng_state(state["cpu"])
            if "cuda" in state:
                torch.cuda.set_rng_state(state["cuda"], self.device)
            yield
            self.rng_states[k] = self._current_state()

    def on_fit_start(self) -> None:
        if self.rng_states is None:  # not restored from a checkpoint
            self.rng_states = [self._seeded_state(s) for s in self.seeds]

    def on_train_start(self) -> None:
        lay_out_as_parameters(self.trainer.optimizers)  # once restored from a checkpoint

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["stack"] = {
            "rng_states": self.rng_states,
            "failed": {str(k): v for k, v in self.failed.items()},
            "member_logs": self.member_logs,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        stack = checkpoint["stack"]
        self.rng_states = stack["rng_states"]
        self.failed = {int(k): v for k, v in stack["failed"].items()}
        self.member_logs = stack["member_logs"]

    # ---- the model -------------------------------------------------------------------------
    def stacked_outputs(self, x: torch.Tensor, eps: torch.Tensor | None) -> Stacked:
        """Every member's forward pass on its ``x[k]`` with noise ``eps[k]`` (``[K, B, D]``;
        None for a deterministic autoencoder, whose z is mu, and a quantized one, whose z is
        its quantizer's straight-through code of z_c = mu): ``(mu, logvar, z, logits)``, each
        ``[K, B, ...]`` (logvar None without a posterior variance)."""
        mu, logvar = self.encoder(x)
        if self.quantized:
            coded = [o.quantizer(mu[k]) for k, o in enumerate(self.objectives)]
            mu, z = torch.stack([c[0] for c in coded]), torch.stack([c[1] for c in coded])
        else:
            z = mu if logvar is None or eps is None else mu + torch.exp(0.5 * logvar) * eps
        return mu, logvar, z, self.decoder(z)

    def outputs(self, x: torch.Tensor, eps: torch.Tensor | None) -> list[VAEOutput]:
        """``stacked_outputs`` as each member's ``VAEOutput``."""
        mu, logvar, z, logits = self.stacked_outputs(x, eps)
        return [
            VAEOutput(mu[k], None if logvar is None else logvar[k], z[k], logits[k],
                      decode=partial(self.decoder.member_forward, k))
            for k in range(self.size)
        ]  # fmt: skip

    def _noise(self, x: torch.Tensor) -> torch.Tensor | None:
        """eps_k ~ N(0, I) ``[B, D]`` from each member's stream, as ``reparameterize`` draws it;
        ``[K, B, D]``."""
        if not self.variational:
            return None
        shape = (x.shape[1], self._members[0].latent_dim)
        eps = []
        for k in range(self.size):
            with self.member_random(k):
                eps.append(torch.randn(shape, device=x.device, dtype=x.dtype))
        return torch.stack(eps)

    def member(self, k: int) -> VAEModule:
        """Member k as a VAEModule holding its trained weights (for evaluation and figures)."""
        module = self._members[k]
        module.encoder.load_state_dict(self.encoder.member_state(k))
        module.decoder.load_state_dict(self.decoder.member_state(k))
        return module.to(self.device)

    # ---- training --------------------------------------------------------------------------
    def on_after_batch_transfer(self, batch: torch.Tensor, dataloader_idx: int) -> torch.Tensor:
        return batch.float().div_(255.0)

    def setup(self, stage: str) -> None:
        """Vectorize the nets (``vmap``: batched matrix products, grouped convolutions) when
        asked, or with ``auto`` on a GPU and for nets without convolutions: measured on 2 CPU
        cores, a grouped convolution is ~1.5× slower than the K plain ones of the loop. A
        stack of one runs its net plainly (vmapped, the conv net's step took 673 tensor
        operations instead of 441, and 0.36 of the plain model's speed on an H100)."""
        for net in (self.encoder, self.decoder):
            convolutional = any(isinstance(m, nn.modules.conv._ConvNd)
                                for m in net._template[0].modules())  # fmt: skip
            auto = self.device.type == "cuda" or not convolutional
            wanted = auto if self.vectorize == "auto" else bool(self.vectorize)
            net.vectorized = wanted and self.size > 1
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        for objective, data in zip(self.objectives, getattr(datamodule, "members", []),
                                   strict=False):  # fmt: skip
            if data.split_indices:
                objective.setup(dataset_size=len(data.split_indices["train"]))
        settings = [objective_settings(o) for o in self.objectives]
        self.batched_loss = (self.size > 1 and self.vectorize is not False
                             and self.objectives[0].batchable and not self.has_auxiliary
                             and all(s == settings[0] for s in settings))  # fmt: skip
        if stage == "fit":
            how = "in one vmapped call" if self.batched_loss else "member by member"
            if self.size > 1:
                log.info("the %d members' losses %s", self.size, how)

    def _member_parts(self, k: int, x: torch.Tensor, out: VAEOutput, step: int) -> Parts:
        """Member k's loss and parts at its β; an objective that draws random numbers
        (Tripod's perturbations) draws them from member k's stream."""
        beta = self._members[k].beta_schedule(step)
        objective = self.objectives[k]
        if objective.draws_in_training:
            with self.member_random(k):
                parts = objective(x, out, beta, step)
        else:
            parts = objective(x, out, beta, step)
        return {**parts, "beta": torch.tensor(beta)}

    def _batched_parts(self, x: torch.Tensor, eps: torch.Tensor | None, step: int) -> MemberParts:
        """Every member's loss and parts from one call of the (shared) objective vmapped over
        the members, with member k's β: the K losses of ``_member_parts`` in one batched
        computation instead of K, for members whose objectives have equal settings; kept
        stacked (member k's parts are read only on the steps that log)."""
        mu, logvar, z, logits = self.stacked_outputs(x, eps)
        objective = self.objectives[0]

        def member_loss(x, mu, logvar, z, logits, beta) -> Parts:  # one member's tensors
            return objective(x, VAEOutput(mu, logvar, z, logits), beta, step)

        betas = torch.tensor([m.beta_schedule(step) for m in self._members])
        dims = (0, 0, None if logvar is None else 0, 0, 0, 0)
        parts = torch.func.vmap(member_loss, in_dims=dims, randomness="error")(
            x, mu, logvar, z, logits, betas.to(x.device)
        )
        return MemberParts({**parts, "beta": betas})

    def _pair_parts(self, x: torch.Tensor, step: int) -> list[Parts]:
        """Every member's pair loss (``AdaGVAEModule``'s step) for pairs ``x [K, B, 2, ...]``:
        both images encoded as one batch of 2B, averaged and sampled from member k's stream,
        decoded together."""
        mu, logvar = self.encoder(torch.cat([x[:, :, 0], x[:, :, 1]], 1))  # [K, 2B, D]
        drawn = []
        for k, objective in enumerate(self.objectives):
            with self.member_random(k):
                drawn.append(pair_samples(objective, mu[k], logvar[k]))
        logits = self.decoder(torch.stack([z for *_, z in drawn]))
        parts = []
        for k, (first, second, shared, z) in enumerate(drawn):
            beta = self._members[k].beta_schedule(step)
            out1, out2 = pair_outputs(first, second, z, logits[k])
            p = pair_parts(self.objectives[k], x[k], out1, out2, shared, beta, step)
            parts.append({**p, "beta": torch.tensor(beta)})
        return parts

    def training_step(self, x: torch.Tensor, batch_idx: int) -> torch.Tensor | None:
        step = self.global_step
        out: list[VAEOutput] = []
        parts: list[Parts] | MemberParts
        if self.pairs:
            parts = self._pair_parts(x, step)
        elif self.batched_loss:
            parts = self._batched_parts(x, self._noise(x), step)
        else:
            out = self.outputs(x, self._noise(x))
            parts = [self._member_parts(k, x[k], out[k], step) for k in range(self.size)]
        if isinstance(parts, MemberParts):
            losses = parts.losses  # [K]
        else:
            losses = torch.stack([p["loss"] for p in parts])
        finite = torch.isfinite(losses).tolist()  # one synchronisation a step
        for k, ok in enumerate(finite):
            if not ok and k not in self.failed:
                bad = [n for n, v in parts[k].items() if not torch.isfinite(v).all()]
                self.failed[k] = (
                    f"NonFiniteLossError: the training loss became {losses[k].item()} at step "
                    f"{step}; non-finite parts: {', '.join(bad)}. The other members of its "
                    f"stack trained on. Try a lower learning rate (optimizer.lr)."
                )
        active = [k for k in range(self.size) if k not in self.failed]
        if not active:
            raise NonFiniteLossError(next(iter(self.failed.values())))
        if isinstance(parts, MemberParts):  # one graph: a failed member's gradient is 0
            total = losses[active].sum() if self.failed else losses.sum()
        else:  # a failed member's loss stays out of the graph
            total = torch.stack([parts[k]["loss"] for k in active]).sum()
        if self.has_auxiliary:
            for k, logs in self._manual_steps(total, out, active).items():
                parts[k].update(logs)
        if logs_written_this_step(self.trainer):  # the steps a single run logs (each log costs)
            self._keep_train_logs(parts, active)
            self.log("train/loss", total.detach() / len(active), prog_bar=True,
                     batch_size=x.shape[1])  # fmt: skip
        return total

    def _manual_steps(
        self, total: torch.Tensor, out: list[VAEOutput], active: list[int]
    ) -> dict[int, dict[str, torch.Tensor]]:
        """The VAE step on the summed loss, then each member's discriminator step on its own
        detached codes (its permutation drawn from its own stream)."""
        vae_opt, aux_opt = self.optimizers()
        vae_opt.zero_grad()
        self.manual_backward(total)
        vae_opt.step()
        aux_losses, logs = [], {}
        for k in active:
            with self.member_random(k):
                loss, logs[k] = self.objectives[k].auxiliary_loss(out[k])
            aux_losses.append(loss)
        aux_opt.optimizer.zero_grad()
        torch.stack(aux_losses).sum().backward()
        aux_opt.optimizer.step()
        return logs

    def _keep_train_logs(self, parts: list[Parts] | MemberParts, active: list[int]) -> None:
        if isinstance(parts, MemberParts):  # one copy to the CPU a part, not one a member
            parts = MemberParts({n: v.detach().float().cpu() for n, v in parts.stacked.items()})
        for k in active:
            values = {n: v.detach().float().cpu() for n, v in parts[k].items()}
            kl_dims = values.pop("kl_per_dim")
            logs = {f"train/{n}": float(v) for n, v in values.items()}
            logs.update({f"train/kl_dim/{i}": float(v) for i, v in enumerate(kl_dims)})
            self._record(k, logs)

    def _record(self, k: int, logs: dict[str, float]) -> None:
        """Member k's values: kept (its metrics.json) and written to its own loggers."""
        self.member_logs[k].update(logs)
        for logger in self.member_loggers[k]:
            logger.log_metrics({**logs, "epoch": float(self.current_epoch)}, step=self.global_step)

    # ---- validation and test -----------------------------------------------------------------
    def _evaluate(self, x: torch.Tensor, split: str, batch_idx: int) -> None:
        """Each member's loss at its current β and its ELBO, as ``VAEModule._evaluate``: z
        drawn with a generator seeded by the batch index (the same ε for every member)."""
        generator = torch.Generator(device=x.device).manual_seed(batch_idx)
        shape = (x.shape[1], self._members[0].latent_dim)
        eps = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
        out = self.outputs(x, eps.expand(self.size, *shape))
        step = self.global_step
        for k, (member, objective) in enumerate(zip(self._members, self.objectives, strict=True)):
            parts = objective(x[k], out[k], member.beta_schedule(step), step)
            logs = {f"{split}/loss": parts["loss"], f"{split}/recon": parts["recon"]}
            if objective.variational:
                logs[f"{split}/kl"] = parts["kl"]
                logs[f"{split}/elbo"] = -(parts["recon"] + parts["kl"])
            sums = self._sums[k]
            for name, value in logs.items():  # the epoch value: the mean weighted by batch size
                total, count = sums.get(name, (0.0, 0))
                sums[name] = (total + value.detach() * x.shape[1], count + x.shape[1])

    def _epoch_end(self) -> None:
        for k, sums in enumerate(self._sums):
            if k not in self.failed:
                self._record(k, {n: float(t) / c for n, (t, c) in sums.items()})
            sums.clear()

    def validation_step(self, x: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(x, "val", batch_idx)

    def test_step(self, x: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(x, "test", batch_idx)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._epoch_end()
        else:
            for sums in self._sums:
                sums.clear()

    def on_test_epoch_end(self) -> None:
        self._epoch_end()

    def configure_optimizers(self) -> torch.optim.Optimizer | list[torch.optim.Optimizer]:
        """The members' optimizer over the stacked weights and each member's codebook, in
        ``weight_decay_groups`` if the members use them (+ one over the discriminators)."""
        own = [p for o in self.objectives for p in o.model_parameters()]
        # the stacked weights' names end in "bias" as the nets' own: the same groups
        vae = networks_optimizer(self, own, self.decay_only_weights)
        if not self.has_auxiliary:
            return vae
        first = self.objectives[0]
        auxiliary = torch.optim.Adam(
            [p for o in self.objectives for p in o.discriminator.parameters()],
            lr=first.lr, betas=first.betas,
        )  # fmt: skip
        return [vae, auxiliary]

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """The members' elementwise clipping (a norm would couple them: refused before)."""
        if self.clip_value is not None:
            clip_values(optimizer, self.clip_value, self.clip_only_weights)
