"""QLAE against its paper and the official code (kylehkhsu/latent_quantization), formula by
formula on small fixed tensors, and one tiny run through the CLI that trains and resumes."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from vaelab.config import validate
from vaelab.errors import ConfigError
from vaelab.module import weight_decay_groups
from vaelab.objectives import QLAE, VAEOutput
from vaelab.objectives.qlae import commitment_loss, quantization_loss
from vaelab.objectives.quantize import FixedGridQuantizer, LearnedScalarCodebook, sample_codes
from vaelab.training import build_module
from vaelab.viz.traversal import traversal_values

from ..conftest import CONF, read_metrics


def codebook_of(values: list[list[float]]) -> LearnedScalarCodebook:
    quantizer = LearnedScalarCodebook(len(values), len(values[0]))
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor(values))
    return quantizer


def config(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("train", overrides=["model=qlae", "arch=mlp", "size=small", *overrides])


def test_codebooks_start_evenly_in_minus_half_to_half_as_the_reference():
    quantizer = LearnedScalarCodebook(3, 10)
    expected = torch.tensor([-0.5 + k / 9 for k in range(10)])
    assert quantizer.codebook.shape == (3, 10)
    torch.testing.assert_close(quantizer.codebook[2], expected)


def test_each_latent_goes_to_its_own_nearest_value():
    quantizer = codebook_of([[-1.0, 0.0, 1.0], [0.0, 0.5, 2.0]])
    z_c = torch.tensor([[0.4, 1.2], [-0.6, -5.0], [0.9, 1.3]])
    # |0.4-0|=.4; |1.2-.5|=.7 < |1.2-2|=.8; |-0.6+1|=.4 < .6; -5 -> 0; 0.9 -> 1; 1.3 -> 2 (.7 < .8)
    expected = torch.tensor([[0.0, 0.5], [-1.0, 0.0], [1.0, 2.0]])
    torch.testing.assert_close(quantizer.nearest(z_c), expected)


def test_straight_through_gives_q_forward_and_the_identity_gradient_to_z_c():
    quantizer = codebook_of([[-1.0, 0.0, 1.0], [0.0, 0.5, 2.0]])
    z_c = torch.tensor([[0.4, 1.2], [-0.6, -5.0]], requires_grad=True)
    continuous, z = quantizer(z_c)
    torch.testing.assert_close(z, torch.tensor([[0.0, 0.5], [-1.0, 0.0]]))
    weights = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    (z * weights).sum().backward()
    torch.testing.assert_close(z_c.grad, weights)
    assert quantizer.codebook.grad is None or not quantizer.codebook.grad.any()
    assert continuous is z_c


def test_quantization_loss_moves_only_the_codebook_and_commitment_only_the_encoder():
    quantizer = codebook_of([[-1.0, 0.0, 1.0], [0.0, 0.5, 2.0]])
    z_c = torch.tensor([[0.4, 1.2], [-0.6, -5.0]], requires_grad=True)
    q = quantizer.nearest(z_c)
    # q = [[0, .5], [-1, 0]]; squared errors .16, .49, .16, 25 -> mean 6.4525
    quantization = quantization_loss(z_c, q)
    torch.testing.assert_close(quantization, torch.tensor(6.4525))
    quantization.backward()
    assert z_c.grad is None
    # d/dv of mean (z - v)^2 over the 4 entries: 2 (v - z) / 4 for each entry that chose v
    expected = torch.zeros(2, 3)
    expected[0, 1] = 2 * (0.0 - 0.4) / 4
    expected[0, 0] = 2 * (-1.0 + 0.6) / 4
    expected[1, 1] = 2 * (0.5 - 1.2) / 4
    expected[1, 0] = 2 * (0.0 + 5.0) / 4
    torch.testing.assert_close(quantizer.codebook.grad, expected)

    quantizer.codebook.grad = None
    q = quantizer.nearest(z_c)
    commitment = commitment_loss(z_c, q)
    torch.testing.assert_close(commitment, torch.tensor(6.4525))
    commitment.backward()
    assert quantizer.codebook.grad is None
    torch.testing.assert_close(z_c.grad, 2 * (z_c - q).detach() / 4)


def test_the_loss_is_recon_plus_pixels_times_the_weighted_latent_losses_float64():
    objective = QLAE(latent_dim=2, num_values=3, quantization_weight=0.01, commitment_weight=0.02)
    with torch.no_grad():
        objective.quantizer.codebook.copy_(torch.tensor([[-1.0, 0.0, 1.0], [0.0, 0.5, 2.0]]))
    objective.double()
    x = torch.tensor([[[[1.0, 0.0], [0.5, 1.0]]]], dtype=torch.float64).repeat(2, 1, 1, 1)
    logits = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]]], dtype=torch.float64).repeat(2, 1, 1, 1)
    z_c = torch.tensor([[0.4, 1.2], [-0.6, -5.0]], dtype=torch.float64)
    out = VAEOutput(mu=z_c, logvar=None, z=z_c, logits=logits)
    with pytest.raises(ValueError, match="model=qlae needs a forward pass that quantizes"):
        objective(x, out, beta=0.0)  # codes that did not come through a quantizing forward
    out.decode = lambda z: z  # as VAEModule.forward sets it
    parts = objective(x, out, beta=0.0)
    bce = -(x * torch.log(torch.sigmoid(logits)) + (1 - x) * torch.log(1 - torch.sigmoid(logits)))
    recon = bce.sum((1, 2, 3)).mean()
    expected = recon + 4 * (0.01 * 6.4525 + 0.02 * 6.4525)  # P = 1 x 2 x 2 pixels
    # the likelihood computes in float32
    torch.testing.assert_close(parts["recon"].double(), recon, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(parts["loss"].double(), expected, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(parts["quantization"], torch.tensor(6.4525, dtype=torch.float64))
    # the parts the module logs: no KL (a deterministic latent), no per-dimension KL
    assert set(parts) == {"loss", "recon", "kl", "kl_per_dim", "quantization", "commitment"}
    assert parts["kl"] == 0 and parts["kl_per_dim"].shape == (0,)


@pytest.mark.parametrize("build", [LearnedScalarCodebook, FixedGridQuantizer])
def test_two_values_make_a_quantizer_and_one_is_refused(build):
    assert build(3, num_values=2).values().shape == (3, 2)
    with pytest.raises(ValueError, match="needs at least 2 values, got 1"):
        build(3, num_values=1)


def test_zero_weights_are_allowed_and_negative_ones_refused():
    assert QLAE(latent_dim=2, quantization_weight=0.0, commitment_weight=0.0).commitment_weight == 0
    for bad in ({"quantization_weight": -0.01}, {"commitment_weight": -0.01}):
        with pytest.raises(ValueError, match="qlae's quantization and commitment weights must"):
            QLAE(latent_dim=2, **bad)


def test_samples_follow_their_generator_and_leave_the_global_stream_alone():
    values = torch.linspace(-1, 1, 5).repeat(3, 1)
    state = torch.random.get_rng_state()
    a = sample_codes(values, 50, torch.Generator().manual_seed(7))
    b = sample_codes(values, 50, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and torch.equal(torch.random.get_rng_state(), state)
    assert not torch.equal(a, sample_codes(values, 50, torch.Generator().manual_seed(8)))


def test_adamw_decays_weights_but_not_biases_or_codebooks():
    layer, codebook = nn.Linear(2, 2), nn.Parameter(torch.ones(2, 3))
    groups = weight_decay_groups(layer.named_parameters(), [codebook])
    assert groups[0]["params"] == [layer.weight]
    assert groups[1]["params"] == [codebook, layer.bias] and groups[1]["weight_decay"] == 0.0
    before = [p.detach().clone() for p in (layer.weight, layer.bias, codebook)]
    optimizer = torch.optim.AdamW(groups, lr=0.1, weight_decay=0.5)
    for p in (layer.weight, layer.bias, codebook):
        p.grad = torch.zeros_like(p)  # a zero gradient: only the decoupled decay moves p
    optimizer.step()
    torch.testing.assert_close(layer.weight.detach(), before[0] * (1 - 0.1 * 0.5))
    torch.testing.assert_close(layer.bias.detach(), before[1])
    torch.testing.assert_close(codebook.detach(), before[2])


def test_the_model_config_gives_adamw_groups_and_clips_weight_gradients_by_value():
    module = build_module(config())
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    weights, rest = optimizer.param_groups
    assert weights["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    named = dict(module.named_parameters())
    assert {id(p) for p in weights["params"]} == {
        id(p) for n, p in named.items() if n.endswith("weight")
    }
    assert any(p is module.objective.quantizer.codebook for p in rest["params"])
    assert len(weights["params"]) + len(rest["params"]) == len(named)
    # the clip is 1.0 in the paper's per-pixel units: C H W = 4096 times that in vaelab's
    assert module.clip_value == 4096.0
    for p in module.parameters():
        p.grad = torch.full_like(p, 5000.0)
    module.configure_gradient_clipping(optimizer)
    assert all((p.grad == 4096.0).all() for p in weights["params"])
    assert all((p.grad == 5000.0).all() for p in rest["params"])  # as optax: only weights


def test_the_latent_count_is_twice_the_data_factors():
    assert config().model.latent_dim == 10  # dSprites: 5 factors
    assert config("data=shapes3d").model.latent_dim == 12
    assert config("data=mpi3d").model.latent_dim == 14
    assert config("model.latent_dim=7").model.latent_dim == 7
    module = build_module(config("model.latent_dim=7"))
    assert module.encoder(torch.zeros(1, 1, 64, 64))[0].shape == (1, 7)
    assert module.objective.quantizer.codebook.shape == (7, 10)


def test_encode_gives_codebook_values_and_samples_draw_uniformly_from_the_codebooks():
    module = build_module(config("model.latent_dim=3", "model.num_values=4"))
    with torch.no_grad():
        module.objective.quantizer.codebook.copy_(
            torch.tensor([[1.0, 2, 3, 4], [10, 20, 30, 40], [-1, -2, -3, -4]])
        )
    codes, logvar = module.encode(torch.rand(5, 1, 64, 64))
    assert logvar is None
    for j in range(3):
        assert set(codes[:, j].tolist()) <= set(module.objective.quantizer.codebook[j].tolist())
    values = module.codebook()
    torch.testing.assert_close(values[2], torch.tensor([-4.0, -3, -2, -1]))
    drawn = sample_codes(values, 4000, torch.Generator().manual_seed(0))
    for j in range(3):
        counts = torch.stack([(drawn[:, j] == v).sum() for v in values[j]])
        assert counts.sum() == 4000 and ((counts - 1000).abs() < 120).all()
    assert module.sample(2, torch.Generator().manual_seed(0)).shape == (2, 1, 64, 64)
    steps = traversal_values(codes, 9, "fixed", codebook=values)
    torch.testing.assert_close(steps, values)  # one step per codebook value


def test_a_tiny_run_trains_writes_metrics_and_figures_and_resumes(cli):
    overrides = ["model=qlae", "figures.include=[samples,traversal]",
                 "evaluation.disentanglement=[mig,infomec]", "trainer.max_steps=3"]  # fmt: skip
    first, result = cli(*overrides, name="first")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(first)
    assert metrics["status"] == "completed" and metrics["model"] == "qlae"
    assert "disent/infomec[range]/m" in metrics["metrics"]  # its quantized codes read as classes:
    assert "InfoMEC read each latent's values as classes (quantized latents)" in metrics["notes"]
    assert "val/recon" in metrics["metrics"] and "val/elbo" not in metrics["metrics"]
    assert {"figures/traversal.png", "figures/samples.png"} <= set(metrics["figures"])
    logged = (next(first.rglob("metrics.csv"))).read_text().splitlines()[0]
    assert "train/quantization" in logged and "train/commitment" in logged
    ckpt = first / "checkpoints" / "last.ckpt"
    second, result = cli(*overrides[:-1], f"ckpt_path={ckpt}", "trainer.max_steps=6", name="2nd")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = read_metrics(second)
    assert resumed["start_step"] == 3 and resumed["step"] == 6


def test_bad_settings_are_refused_before_training():
    validate(config())
    for override, message in [
        ("beta=2", "model=qlae has no KL term"),
        ("model.num_values=1", "`model.num_values` must be >= 2"),
        ("model.commitment_weight=-1", "`model.commitment_weight` must be >= 0"),
        ("model.latent_dim=0", "`model.latent_dim` must be >= 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            validate(config(override))
