"""Tripod against its paper and the official code (kylehkhsu/tripod), formula by formula on
small fixed tensors, and one tiny run through the CLI that trains and resumes."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hydra import compose, initialize_config_dir

from vaelab.objectives import Tripod, VAEOutput
from vaelab.objectives.quantize import FixedGridQuantizer
from vaelab.objectives.tripod import (
    kde_multi_information,
    normalized_hessian_penalty,
    silverman_factor,
)
from vaelab.training import build_module

from ..conftest import CONF, read_metrics


def config(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("train", overrides=["model=tripod", *overrides])


def test_tanh_then_rounding_to_twelve_levels_in_minus_one_to_one():
    quantizer = FixedGridQuantizer(latent_dim=4, num_values=12)
    z_c = torch.tensor([[0.0, 0.95, -1.0, 0.3]])
    # (z + 1) 11 / 2 = 5.5 -> 6 (half to even, as jnp.round), 10.725 -> 11, 0, 7.15 -> 7
    expected = torch.tensor([[1 / 11, 1.0, -1.0, 3 / 11]])
    torch.testing.assert_close(quantizer.nearest(z_c), expected)
    torch.testing.assert_close(quantizer.values()[0], torch.linspace(-1, 1, 12))
    pre_z = torch.tensor([[0.2, -1.5, 3.0, 0.7]], requires_grad=True)
    continuous, z = quantizer(pre_z)
    torch.testing.assert_close(continuous, torch.tanh(pre_z))
    torch.testing.assert_close(quantizer.codes(pre_z), quantizer.nearest(torch.tanh(pre_z)))
    z.sum().backward()  # straight through: the identity to z_c, times tanh'
    torch.testing.assert_close(pre_z.grad, 1 - torch.tanh(pre_z.detach()) ** 2)


def test_silvermans_factor():
    assert math.isclose(silverman_factor(16, 2), 16 ** (-1 / 6))
    assert math.isclose(silverman_factor(64, 10), (4 / 12) ** (1 / 14) * 64 ** (-1 / 14))


def test_kde_multi_information_matches_a_slow_float64_loop():
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    std = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    b, d = z.shape
    s = (4 / (d + 2)) ** (1 / (d + 4)) * b ** (-1 / (d + 4))

    def normal(x: float, mean: float, scale: float) -> float:
        return math.exp(-0.5 * ((x - mean) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))

    expected = []
    for i in range(b):
        joint = sum(
            math.prod(normal(z[i, k], z[j, k], s * std[k]) for k in range(d)) for j in range(b)
        )
        marginals = [sum(normal(z[i, k], z[j, k], std[k]) for j in range(b)) / b for k in range(d)]
        expected.append(math.log(joint / b) - sum(math.log(m) for m in marginals))
    got = kde_multi_information(z, std)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


def quadratic(hessian: torch.Tensor):
    """f(z) = ½ zᵀ H z for each of the rows of ``hessian [O, D, D]``: outputs ``[N, O]``."""
    return lambda z: 0.5 * torch.einsum("nd,ode,ne->no", z, hessian, z)


def two_codes_probed(f):
    """Two codes of two latents, σ, the penalty of ``f`` there with 3 probes of each kind
    (seed 4) and those probes' u: ``(z, std, penalty, (rademacher u, gaussian u))``."""
    z = torch.tensor([[0.3, -0.2], [1.0, 2.0]], dtype=torch.float64)
    std = torch.tensor([0.5, 2.0], dtype=torch.float64)
    got = normalized_hessian_penalty(f, z, f(z), std, 0.1, 3, torch.Generator().manual_seed(4))
    generator = torch.Generator().manual_seed(4)
    signs = (torch.randint(0, 2, (3, 2, 2), generator=generator) * 2 - 1).double()
    return z, std, got, (signs, torch.randn(3, 2, 2, generator=generator).double())


def test_the_hessian_penalty_is_the_ratio_of_the_finite_difference_variances():
    hessian = torch.tensor([[[0.0, 1.0], [1.0, 2.0]], [[1.0, -3.0], [-3.0, 0.5]]])
    f = quadratic(hessian.double())
    _, std, got, (signs, normals) = two_codes_probed(f)
    # the same draws, and for a quadratic the second difference is exact: (u σ)ᵀ H (u σ)

    def variance(u: torch.Tensor) -> torch.Tensor:
        w = u * std  # [k, B, D]
        second = torch.einsum("kbd,ode,kbe->kbo", w, hessian.double(), w)
        return second.var(0, unbiased=False).mean(-1)

    torch.testing.assert_close(got, variance(signs) / (variance(normals) + 1e-10))


def test_the_penalty_is_each_codes_own_where_the_curvature_differs():
    # f = z0² z1: H(z) = [[2 z1, 2 z0], [2 z0, 0]], and a cubic's central second difference
    # is exactly vᵀ H(z) v, so each code b has its own curvature and its own ratio
    def f(z: torch.Tensor) -> torch.Tensor:
        return (z[:, 0] ** 2 * z[:, 1])[:, None]

    z, std, got, (signs, normals) = two_codes_probed(f)
    hessians = torch.stack(
        [torch.stack([2 * z[:, 1], 2 * z[:, 0]], -1), torch.stack([2 * z[:, 0], 0 * z[:, 0]], -1)],
        1,
    )  # [B, 2, 2]

    def variance(u: torch.Tensor) -> torch.Tensor:
        w = u * std
        return torch.einsum("kbd,bde,kbe->kb", w, hessians, w).var(0, unbiased=False)

    expected = variance(signs) / (variance(normals) + 1e-10)
    torch.testing.assert_close(got, expected)
    assert not torch.isclose(expected[0], expected[1])  # the codes' ratios do differ


def test_bfloat16_decoder_outputs_are_differenced_in_float32():
    """Under bf16 autocast the decoder gives bf16 logits; f(z+v) − 2f(z) + f(z−v) cancels
    most of their bits, so the differences are taken in float32 (the same bf16 values)."""
    f = quadratic(torch.tensor([[[0.0, 1.0], [1.0, 2.0]], [[1.0, -3.0], [-3.0, 0.5]]]))
    z = torch.tensor([[0.3, -0.2], [1.0, 2.0], [-0.7, 0.4]])
    std = torch.tensor([0.5, 2.0])

    def in_bf16(z: torch.Tensor) -> torch.Tensor:
        return f(z).bfloat16()

    def widened(z: torch.Tensor) -> torch.Tensor:
        return in_bf16(z).float()

    got = normalized_hessian_penalty(
        in_bf16, z, in_bf16(z), std, 0.1, 2, torch.Generator().manual_seed(1)
    )
    wide = normalized_hessian_penalty(
        widened, z, widened(z), std, 0.1, 2, torch.Generator().manual_seed(1)
    )
    assert got.dtype == torch.float32 and torch.equal(got, wide)


def test_the_hessian_penalty_estimates_off_diagonal_over_all_squared_entries():
    # f = z0 z1 + z1²: H = [[0, 1], [1, 2]]; Var over Rademacher u of uᵀHu = 2 Σ_{i≠j} H_ij² = 4,
    # over Gaussian u 2 Σ_ij H_ij² = 12: the penalty tends to 1/3 with many perturbations.
    f = quadratic(torch.tensor([[[0.0, 1.0], [1.0, 2.0]]], dtype=torch.float64))
    z = torch.zeros(1, 2, dtype=torch.float64)
    one = torch.ones(2, dtype=torch.float64)
    got = normalized_hessian_penalty(f, z, f(z), one, 0.1, 20000, torch.Generator().manual_seed(0))
    assert abs(got.item() - 1 / 3) < 0.03
    additive = quadratic(torch.tensor([[[1.0, 0.0], [0.0, -2.0]]], dtype=torch.float64))
    zero = normalized_hessian_penalty(additive, z, additive(z), one, 0.1, 2)
    assert zero.abs().max() < 1e-9  # no interaction between latents: no penalty


def quadratic_case(objective: Tripod) -> tuple[torch.Tensor, torch.Tensor, VAEOutput]:
    """Three codes of two latents, a decoder of four quadratic 'pixels': pre_z, x and the
    output ``objective``'s quantizer makes of them."""
    f = quadratic(torch.tensor([[[0.0, 1.0], [1.0, 2.0]]]).repeat(4, 1, 1))

    def decode(z: torch.Tensor) -> torch.Tensor:
        return f(z).view(-1, 1, 2, 2)

    pre_z = torch.tensor([[0.3, -0.2], [1.0, 2.0], [-0.5, 0.1]], requires_grad=True)
    z_c, z = objective.quantizer(pre_z)
    x = torch.full((3, 1, 2, 2), 0.5)
    return pre_z, x, VAEOutput(mu=z_c, logvar=None, z=z, logits=decode(z), decode=decode)


def test_the_loss_is_recon_plus_pixels_times_the_weighted_penalties():
    objective = Tripod(latent_dim=2, lambda_mi=0.1, lambda_hessian=0.2, num_perturbations=2)
    pre_z, x, out = quadratic_case(objective)
    objective.eval()
    state = torch.random.get_rng_state()
    parts = objective(x, out, beta=0.0)
    assert torch.equal(torch.random.get_rng_state(), state)  # evaluation draws its own
    assert torch.equal(objective(x, out, beta=0.0)["loss"], parts["loss"])
    std = out.mu.detach().std(0, unbiased=False) + 1e-6
    mi = kde_multi_information(out.z.detach(), std).mean()
    generator = torch.Generator().manual_seed(0)
    hp = normalized_hessian_penalty(
        out.decode, out.z.detach(), out.logits.detach(), std, 0.1, 2, generator
    )
    torch.testing.assert_close(parts["multi_information"], mi)
    torch.testing.assert_close(parts["hessian_penalty"], hp.mean())
    torch.testing.assert_close(parts["loss"], parts["recon"] + 4 * (0.1 * mi + 0.2 * hp.mean()))
    parts["loss"].backward()  # the penalties reach the encoder (through z and σ), as the reference
    assert pre_z.grad is not None and pre_z.grad.abs().sum() > 0
    # each weight scales its own term (here the Hessian term is ~1e6 times the other)
    for lambda_mi, lambda_hessian, term in ((0.1, 0.0, 0.1 * mi), (0.0, 0.2, 0.2 * hp.mean())):
        alone = Tripod(latent_dim=2, lambda_mi=lambda_mi, lambda_hessian=lambda_hessian).eval()
        loss = alone(x, out, beta=0.0)["loss"]
        torch.testing.assert_close(loss, parts["recon"] + 4 * term)


def test_without_its_weight_the_hessian_penalty_is_not_computed():
    """model.lambda_hessian=0 ("Tripod without its Hessian penalty") still paid for the
    penalty's decoder passes (~7x QLAE's step time), then multiplied it by 0."""
    objective = Tripod(latent_dim=2, lambda_mi=0.1, lambda_hessian=0.0)
    _, x, out = quadratic_case(objective)
    calls = []
    counted = dataclasses.replace(out, decode=lambda z: calls.append(len(z)) or out.decode(z))
    parts = objective(x, counted, beta=0.0)
    assert calls == [] and "hessian_penalty" not in parts
    std = out.mu.detach().std(0, unbiased=False) + 1e-6
    mi = kde_multi_information(out.z.detach(), std).mean()
    torch.testing.assert_close(parts["loss"], parts["recon"] + 4 * 0.1 * mi)
    objective.lambda_hessian = 0.2
    assert "hessian_penalty" in objective(x, counted, beta=0.0)
    assert calls == [2 * (2 * 2) * 3]  # z ± v for 2 Rademacher and 2 Gaussian probes, 3 codes


def test_in_training_the_probes_come_from_the_global_random_stream():
    objective = Tripod(latent_dim=2, lambda_mi=0.0, lambda_hessian=1.0)
    _, x, out = quadratic_case(objective)
    torch.manual_seed(1)
    first = objective(x, out, beta=0.0)["hessian_penalty"]
    second = objective(x, out, beta=0.0)["hessian_penalty"]  # the stream moved on: new probes
    torch.manual_seed(1)
    again = objective(x, out, beta=0.0)["hessian_penalty"]
    assert torch.equal(first, again) and not torch.equal(first, second)


@pytest.mark.parametrize(
    "bad",
    [{"lambda_mi": -1e-4}, {"lambda_hessian": -0.01}, {"epsilon": 0.0}, {"num_perturbations": 1}],
)
def test_negative_weights_no_step_or_a_single_probe_are_refused(bad: dict):
    with pytest.raises(ValueError, match=r"tripod needs lambda_mi, lambda_hessian >= 0, epsilon "
                                         r"> 0 and num_perturbations >= 2"):  # fmt: skip
        Tripod(latent_dim=2, **bad)
    assert Tripod(latent_dim=2, lambda_mi=0.0, lambda_hessian=0.0).lambda_mi == 0.0  # allowed
    assert Tripod(latent_dim=2, num_values=5).quantizer.values().shape == (2, 5)  # passed on


def test_the_papers_lambdas_per_data_set_and_twice_the_factors():
    shapes = config("data=shapes3d").model
    assert (shapes.lambda_mi, shapes.lambda_hessian, shapes.latent_dim) == (1e-4, 1e-2, 12)
    mpi = config("data=mpi3d").model
    assert (mpi.lambda_mi, mpi.lambda_hessian, mpi.latent_dim) == (1e-8, 1e-4, 14)
    sprites = config().model
    assert (sprites.lambda_mi, sprites.lambda_hessian, sprites.latent_dim) == (1e-4, 1e-2, 10)
    assert config("model.lambda_mi=0.5").model.objective.lambda_mi == 0.5
    module = build_module(config("arch=mlp", "size=small"))
    optimizer = module.configure_optimizers()
    assert type(optimizer) is torch.optim.Adam and optimizer.defaults["lr"] == 2e-4
    assert module.clip_value == 4096.0 and not module.clip_only_weights


def test_a_tiny_run_trains_writes_metrics_and_figures_and_resumes(cli):
    overrides = ["model=tripod", "figures.include=[samples,traversal]", "trainer.max_steps=3"]
    first, result = cli(*overrides, name="first")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(first)
    assert metrics["status"] == "completed" and metrics["model"] == "tripod"
    assert {"figures/traversal.png", "figures/samples.png"} <= set(metrics["figures"])
    logged = (next(first.rglob("metrics.csv"))).read_text().splitlines()[0]
    assert "train/multi_information" in logged and "train/hessian_penalty" in logged
    ckpt = first / "checkpoints" / "last.ckpt"
    second, result = cli(*overrides[:-1], f"ckpt_path={ckpt}", "trainer.max_steps=6", name="2nd")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = read_metrics(second)
    assert resumed["start_step"] == 3 and resumed["step"] == 6
