"""Objectives whose penalty is a statistic of the batch, under DDP: two gloo processes, each
holding half of a batch, give the loss and (after DDP's mean over ranks) the gradient of one
process holding all of it."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vaelab.module import gather_codes
from vaelab.objectives import DIPVAE, BetaTCVAE, Tripod, VAEOutput

WORLD = 2
OBJECTIVES = {
    "beta_tcvae_mws": lambda: BetaTCVAE(dataset_size=1000, estimator="mws"),
    "beta_tcvae_mss": lambda: BetaTCVAE(dataset_size=1000, estimator="mss"),
    "dip_vae_ii": lambda: DIPVAE(variant="ii", lambda_od=10.0),
    # the KDE multi-information and σ (its Hessian probes are drawn per rank: weight 0 here)
    "tripod_mi": lambda: Tripod(latent_dim=5, lambda_mi=1.0, lambda_hessian=0.0),
}


def linear_decoder(z: torch.Tensor) -> torch.Tensor:
    return (z[:, :1] * torch.ones(1, 8)).view(-1, 1, 2, 4)


def batch(n: int = 16, d: int = 5):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n, 1, 2, 4, generator=g) > 0.5).float()
    mu = torch.randn(n, d, generator=g)
    logvar = 0.5 * torch.randn(n, d, generator=g)
    eps = torch.randn(n, d, generator=g)
    logits = torch.randn(n, 1, 2, 4, generator=g)
    return x, mu, logvar, eps, logits


def loss_and_grads(name: str, rows: slice, whole: bool):
    """The loss of ``rows`` of the batch and d loss / d (mu, logvar) of those rows."""
    x, mu, logvar, eps, logits = (t[rows] for t in batch())
    mu, logvar = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    objective = OBJECTIVES[name]()
    if objective.quantizer is None:
        out = VAEOutput(mu=mu, logvar=logvar, z=mu + torch.exp(0.5 * logvar) * eps, logits=logits)
    else:  # Tripod: mu is the encoder output, z_c = tanh(mu) and z its grid code
        z_c, z = objective.quantizer(mu)
        out = VAEOutput(mu=z_c, logvar=None, z=z, logits=logits, decode=linear_decoder)
    parts = objective(x, out, beta=6.0, whole_batch=gather_codes(out) if whole else None)
    parts["loss"].backward()
    return parts["loss"].detach(), mu.grad, logvar.grad


def _rank(rank: int, name: str, store: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        half = 16 // WORLD
        loss, g_mu, g_logvar = loss_and_grads(name, slice(rank * half, (rank + 1) * half), True)
        results[rank] = (
            loss,
            g_mu / WORLD,
            None if g_logvar is None else g_logvar / WORLD,
        )  # DDP averages over the ranks
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_two_ranks_give_one_process_loss_and_gradient(name: str):
    one_loss, one_mu, one_logvar = loss_and_grads(name, slice(None), whole=False)
    with tempfile.TemporaryDirectory() as folder, mp.Manager() as manager:
        results = manager.dict()
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        mp.spawn(_rank, args=(name, f"{folder}/store", results), nprocs=WORLD)
        ranks = [results[r] for r in range(WORLD)]
    # each rank's loss: its half's reconstruction and KL, the whole batch's penalty
    mean_loss = sum(r[0] for r in ranks) / WORLD
    assert mean_loss.item() == pytest.approx(one_loss.item(), rel=1e-5)
    assert torch.allclose(torch.cat([r[1] for r in ranks]), one_mu, rtol=1e-4, atol=1e-6)
    if one_logvar is not None:  # Tripod's latent is deterministic
        assert torch.allclose(torch.cat([r[2] for r in ranks]), one_logvar, rtol=1e-4, atol=1e-6)


def test_without_the_gather_the_gradient_would_differ():
    # the check above can fail: each half's own statistics are not the whole batch's
    _, one_mu, _ = loss_and_grads("beta_tcvae_mws", slice(None), whole=False)
    halves = [loss_and_grads("beta_tcvae_mws", slice(i, i + 8), False)[1] / 2 for i in (0, 8)]
    assert not torch.allclose(torch.cat(halves), one_mu, rtol=1e-2, atol=1e-3)
