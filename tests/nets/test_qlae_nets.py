"""QLAE's own nets (arch=qlae, arch=qlae_small) against the reference's configs and formulas
(kylehkhsu/latent_quantization: blocks/conv.py, blocks/style.py, decoders/style_image.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

from vaelab.config import validate
from vaelab.errors import ConfigError
from vaelab.nets.qlae import QLAEDecoder, QLAEEncoder, StyleConvTransposeBlock, conv_block
from vaelab.training import build_module

from ..conftest import CONF, read_metrics

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def n_params(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def config(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("train", overrides=["arch=qlae", *overrides])


def conv_reference(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """out[o, i, j] = sum_{c,a,b} pad_1(x)[c, s i + a, s j + b] W[o, c, a, b], by loops."""
    k = weight.shape[-1]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    side = (x.shape[-1] + 2 - k) // stride + 1
    out = torch.zeros(weight.shape[0], side, side, dtype=x.dtype)
    for o in range(weight.shape[0]):
        for i in range(side):
            for j in range(side):
                patch = padded[:, stride * i : stride * i + k, stride * j : stride * j + k]
                out[o, i, j] = (patch * weight[o]).sum()
    return out


def conv_transpose_reference(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """The transpose of ``conv_reference`` (padding 1): each input pixel scatters
    x[c, i, j] W[c, o, a, b] to (s i + a - 1, s j + b - 1); what falls outside is cropped."""
    k, side = weight.shape[-1], x.shape[-1]
    full = torch.zeros(weight.shape[1], (side - 1) * stride + k, (side - 1) * stride + k,
                       dtype=x.dtype)  # fmt: skip
    for c in range(x.shape[0]):
        for i in range(side):
            for j in range(side):
                full[:, stride * i : stride * i + k, stride * j : stride * j + k] += (
                    x[c, i, j] * weight[c]
                )
    return full[:, 1:-1, 1:-1]


def instance_norm_reference(h: torch.Tensor) -> torch.Tensor:
    """eqx.nn.GroupNorm(groups=channels, eps=1e-6): per channel, (h - mean) / sqrt(var + eps),
    var the biased variance over the pixels."""
    mean = h.mean((1, 2), keepdim=True)
    var = ((h - mean) ** 2).mean((1, 2), keepdim=True)
    return (h - mean) / torch.sqrt(var + 1e-6)


def leaky_relu(h: torch.Tensor) -> torch.Tensor:
    return torch.where(h > 0, h, 0.2 * h)


@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (4, 2)])
def test_conv_block_is_conv_then_affine_instance_norm_then_leaky_relu_float64(kernel, stride):
    torch.manual_seed(0)
    block = conv_block(2, 3, kernel, stride).double()
    conv, norm, _ = block
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
        norm.bias.copy_(torch.tensor([0.1, 0.3, -0.2]))
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    for b in range(2):
        h = instance_norm_reference(conv_reference(x[b], conv.weight.detach(), stride))
        gamma, beta = norm.weight.detach()[:, None, None], norm.bias.detach()[:, None, None]
        expected = leaky_relu(gamma * h + beta)
        torch.testing.assert_close(block(x)[b].detach(), expected)
    assert conv.bias is None  # use_bias=False in Conv2DBlock


@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (4, 2)])
def test_style_block_normalizes_after_the_activation_then_scales_and_shifts_by_w(kernel, stride):
    torch.manual_seed(1)
    block = StyleConvTransposeBlock(2, 3, kernel, stride, style_dim=2).double()
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    w = torch.tensor([[1.0, -2.0], [0.5, 0.25]], dtype=torch.float64)
    pre = block.style(w).detach()
    assert (pre < 0).any() and (pre > 0).any()  # the ReLU on (scale, shift) is exercised
    out = block(x, w).detach()
    for b in range(2):
        styled = pre[b].clamp(min=0)
        scale, shift = styled[:3, None, None], styled[3:, None, None]
        h = conv_transpose_reference(x[b], block.conv.weight.detach(), stride)
        expected = instance_norm_reference(leaky_relu(h)) * scale + shift
        torch.testing.assert_close(out[b], expected)
    assert out.shape[-1] == 3 * stride


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("arch", ["qlae", "qlae_small"])
def test_64_pixel_grey_and_colour_round_trip_shapes(arch: str, channels: int):
    cfg = config(f"arch={arch}", "model=beta_vae")
    shape = (channels, 64, 64)
    encoder = instantiate(cfg.arch.encoder, image_shape=shape)
    decoder = instantiate(cfg.arch.decoder, image_shape=shape)
    mu, logvar = encoder(torch.rand(2, *shape))
    assert mu.shape == logvar.shape == (2, 10)
    assert decoder(mu).shape == (2, *shape)


def test_the_published_nets_have_the_hand_counted_parameters():
    # Encoder, grey 64x64, 10 latents, deterministic (QLAE). Convs have no bias (Conv2DBlock):
    convs = (1 * 32 * 9 + 32 * 32 * 9 + 32 * 32 * 16 + 32 * 64 * 9 + 64 * 64 * 9 + 64 * 64 * 16
             + 64 * 128 * 9 + 128 * 128 * 9 + 128 * 128 * 16 + 128 * 256 * 9 + 256 * 256 * 9
             + 256 * 256 * 16)  # fmt: skip
    norms = 2 * 3 * (32 + 64 + 128 + 256)  # instance-norm scale and shift per channel
    dense = (256 * 4 * 4 * 256 + 256) + (256 * 256 + 256)  # flatten 256x4x4 -> 256 -> 256
    head = 256 * 10 + 10
    encoder = QLAEEncoder((1, 64, 64), latent_dim=10, variational=False)
    assert n_params(encoder) == convs + norms + dense + head == 3_683_434
    # Decoder: mapping 10 -> 256 -> 256, input map 256x4x4, 12 style blocks, final 3x3 conv.
    mapping = (10 * 256 + 256) + (256 * 256 + 256)
    input_map = 256 * 4 * 4
    widths = [256, 256, 256, 128, 128, 128, 64, 64, 64, 32, 32, 32]
    kernels = [3, 3, 4] * 4
    inputs = [256, *widths[:-1]]
    transposed = sum(i * o * k * k for i, o, k in zip(inputs, widths, kernels, strict=True))
    styles = sum(256 * 2 * o + 2 * o for o in widths)  # A w + a, 2 x width outputs per block
    final = 32 * 1 * 9
    decoder = QLAEDecoder((1, 64, 64), latent_dim=10)
    assert n_params(decoder) == mapping + input_map + transposed + styles + final == 3_966_048
    # colour: 3 input channels (first conv) and 3 logit channels (final conv); + logvar head
    colour = QLAEEncoder((3, 64, 64), latent_dim=10), QLAEDecoder((3, 64, 64), latent_dim=10)
    assert n_params(*colour) == 3_683_434 + 3_966_048 + 2 * 32 * 9 + 32 * 2 * 9 + head


def test_flops_per_image_are_counted_under_no_grad_as_the_model_summary_does():
    encoder, decoder = QLAEEncoder((1, 64, 64), variational=False), QLAEDecoder((1, 64, 64))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        decoder(encoder(torch.zeros(1, 1, 64, 64))[0])
    widths = [32, 32, 32, 64, 64, 64, 128, 128, 128, 256, 256, 256]
    kernels = [3, 3, 4] * 4
    # a convolution: out_side^2 C_in C_out k^2 multiply-adds; a transposed one: in_side^2 ...
    out_sides = [64, 64, 32, 32, 32, 16, 16, 16, 8, 8, 8, 4]
    ins = [1, *widths[:-1]]
    layers = zip(out_sides, ins, widths, kernels, strict=True)
    convs = sum(s * s * i * o * k * k for s, i, o, k in layers)
    encoder_macs = convs + 4096 * 256 + 256 * 256 + 256 * 10
    up = widths[::-1]
    in_sides = [4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32]
    layers = zip(in_sides, [256, *up[:-1]], up, kernels, strict=True)
    transposed = sum(s * s * i * o * k * k for s, i, o, k in layers)
    styles = sum(256 * 2 * o for o in up)
    decoder_macs = 10 * 256 + 256 * 256 + styles + transposed + 64 * 64 * 32 * 1 * 9
    assert counter.get_total_flops() == 2 * (encoder_macs + decoder_macs) == 899_852_288


def test_the_small_nets_have_the_hand_counted_parameters():
    cfg = config("arch=qlae_small", "model=qlae")
    module = build_module(cfg)
    encoder = (1 * 64 * 16 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16
               + 2 * (64 + 128 + 256 + 512) + 512 * 4 * 4 * 512 + 512 + 512 * 10 + 10)  # fmt: skip
    decoder = (10 * 512 + 512 + 512 * 4 * 4 + 512 * 512 * 16 + 512 * 256 * 16 + 256 * 128 * 16
               + 128 * 64 * 16 + sum(512 * 2 * o + 2 * o for o in (512, 256, 128, 64))
               + 64 * 1 * 9)  # fmt: skip
    assert n_params(module.encoder) == encoder and n_params(module.decoder) == decoder


def test_instance_norm_makes_the_encoder_per_image_and_blind_to_the_image_scale():
    torch.manual_seed(2)
    encoder = QLAEEncoder((1, 64, 64), variational=False)
    x = torch.rand(3, 1, 64, 64)
    mu, _ = encoder(x)
    alone = torch.cat([encoder(x[i : i + 1])[0] for i in range(3)])
    torch.testing.assert_close(mu, alone, atol=1e-5, rtol=0)  # no batch statistics
    # conv without bias then instance norm: x -> c x (c > 0) leaves every feature unchanged
    # but for eps = 1e-6 against the first layer's variance (a change of ~4e-6 here)
    torch.testing.assert_close(encoder(5.0 * x)[0], mu, atol=2e-5, rtol=0)
    assert (encoder(x.flip(-1))[0] - mu).abs().max() > 1e-3  # yet it sees the image


def test_the_decoder_depends_on_z_only_through_the_styles():
    torch.manual_seed(3)
    decoder = QLAEDecoder((1, 64, 64), latent_dim=4).double()
    with torch.no_grad():  # a trained-like map (the 0.1 start is flat: eps would dominate)
        decoder.input_map.normal_()
    z = torch.randn(2, 4, dtype=torch.float64)
    logits = decoder(z).detach()
    assert (logits[0] - logits[1]).abs().max() > 1e-3  # another z, another image
    # every block normalizes after a bias-free convolution: scaling the learned input map by
    # c > 0 changes nothing
    with torch.no_grad():
        decoder.input_map.mul_(7.0)
    torch.testing.assert_close(decoder(z), logits, atol=1e-5, rtol=0)  # but for eps = 1e-6
    # a zero style at the last block leaves nothing for the bias-free output convolution
    with torch.no_grad():
        decoder.blocks[-1].style.weight.zero_()
        decoder.blocks[-1].style.bias.zero_()
    assert (decoder(z) == 0).all()


def test_transposed_convolutions_start_with_equinox_bound_over_in_channels():
    decoder = QLAEDecoder((1, 64, 64))
    first = decoder.blocks[0].conv.weight  # 256 in, 256 out, 3x3: bound 1/sqrt(256 * 9) = 1/48
    last = decoder.blocks[-1].conv.weight  # 32 in, 32 out, 4x4: bound 1/sqrt(32 * 16)
    assert first.abs().max() <= 1 / 48 and first.abs().max() > 0.9 / 48
    assert last.abs().max() <= 512**-0.5 and last.abs().max() > 0.9 * 512**-0.5
    torch.testing.assert_close(decoder.input_map, torch.full((256, 4, 4), 0.1))


@pytest.mark.parametrize("model", MODELS)
def test_every_objective_builds_and_steps_on_the_qlae_nets(model: str):
    latent = "model.latent_dim=4" if model in ("qlae", "tripod") else "arch.latent_dim=4"
    module = build_module(config(f"model={model}", latent))
    assert isinstance(module.encoder, QLAEEncoder) and isinstance(module.decoder, QLAEDecoder)
    assert (module.encoder.fc_logvar is not None) == module.objective.variational
    module.objective.setup(dataset_size=1000)  # as VAEModule.setup does (β-TCVAE's N)
    x = torch.rand(4, 1, 64, 64).round()
    out = module(x)
    parts = module.objective(x, out, 1.0, 0)
    assert out.logits.shape == x.shape and torch.isfinite(parts["loss"])


def test_images_that_are_not_64_pixels_are_refused_before_training():
    validate(config("model=qlae"))
    for side in (32, 96):
        with pytest.raises(ConfigError, match="arch=qlae: its side must be a multiple of 64"):
            validate(config("model=qlae", f"data.image_size={side}"))
    with pytest.raises(ValueError, match="multiple of 16 and at least 32"):
        QLAEEncoder((1, 16, 16))


@pytest.mark.programs
def test_a_tiny_qlae_run_on_its_own_nets_completes(cli):
    overrides = ["trainer.max_steps=2", "figures.include=[samples]"]
    summary = "trainer.enable_model_summary=true"  # its FLOP count runs the nets under no_grad
    run, result = cli("model=qlae", "arch=qlae", *overrides, summary)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(run)
    assert metrics["status"] == "completed" and metrics["step"] == 2
    assert (Path(run) / ".hydra" / "config.yaml").read_text().count("QLAEEncoder") == 1
    assert "forward FLOPs per image: 899 M (objective" in result.stdout + result.stderr
