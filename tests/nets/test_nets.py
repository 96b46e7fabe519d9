"""Network shapes and sizes: the tutorial's MLP and the literature's conv net."""

from __future__ import annotations

import pytest
import torch

from vaelab.nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder


def n_params(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def test_mlp_has_the_tutorials_652824_parameters():
    shape = (1, 28, 28)
    assert n_params(MLPEncoder(shape), MLPDecoder(shape)) == 652_824


def test_mlp_round_trip_shapes():
    enc, dec = MLPEncoder((1, 28, 28)), MLPDecoder((1, 28, 28))
    mu, logvar = enc(torch.rand(3, 1, 28, 28))
    assert mu.shape == logvar.shape == (3, 20)
    assert dec(mu).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("side", [16, 32, 64, 128])
def test_conv_round_trip_shapes(side: int):
    enc, dec = ConvEncoder((3, side, side)), ConvDecoder((3, side, side))
    mu, logvar = enc(torch.rand(2, 3, side, side))
    assert mu.shape == logvar.shape == (2, 10)
    assert dec(mu).shape == (2, 3, side, side)


def test_conv_matches_the_literature_layout():
    enc = ConvEncoder((1, 64, 64))
    convs = [m for m in enc.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    dense = [m for m in enc.features if isinstance(m, torch.nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(64 * 4 * 4, 256)]


def test_deterministic_encoders_have_no_logvar_head():
    for enc in (
        MLPEncoder((1, 8, 8), variational=False),
        ConvEncoder((1, 64, 64), variational=False),
    ):
        side = 8 if isinstance(enc, MLPEncoder) else 64
        mu, logvar = enc(torch.rand(2, 1, side, side))
        assert logvar is None and mu.shape[0] == 2
        assert not any("logvar" in name for name, _ in enc.named_parameters())


def test_conv_rejects_sides_that_are_not_multiples_of_16():
    with pytest.raises(ValueError, match="multiple of 16"):
        ConvEncoder((1, 50, 50))


@pytest.mark.parametrize("channels", [1, 3])
def test_conv_nets_in_nhwc_compute_what_nchw_nets_compute(channels: int):
    """channels_last changes how the weights are stored, not the function nor the state dict;
    the decoder still returns NCHW-contiguous logits (views of them must work)."""
    shape = (channels, 32, 32)
    torch.manual_seed(0)
    plain = {"channels_last": False}
    nets = {"nchw": (ConvEncoder(shape, **plain), ConvDecoder(shape, **plain)),
            "nhwc": (ConvEncoder(shape), ConvDecoder(shape))}  # fmt: skip
    for plain, nhwc in zip(nets["nchw"], nets["nhwc"], strict=True):
        nhwc.load_state_dict(plain.state_dict())
    conv_weight = nets["nhwc"][0].features[2].weight  # the second conv: 32 in-channels
    assert conv_weight.is_contiguous(memory_format=torch.channels_last)
    assert not nets["nchw"][0].features[2].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(4, *shape)
    out = {}
    for layout, (enc, dec) in nets.items():
        mu, logvar = enc(x)
        logits = dec(mu)
        assert logits.is_contiguous() and logits.view(4, -1).shape == (4, channels * 32 * 32)
        (logits.square().mean() + logvar.sum()).backward()
        grads = [p.grad for p in (*enc.parameters(), *dec.parameters())]
        out[layout] = (mu, logvar, logits, *grads)
    for a, b in zip(out["nchw"], out["nhwc"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # and back: an NHWC net's state dict loads into an NCHW net
    back = ConvEncoder(shape, channels_last=False)
    back.load_state_dict(nets["nhwc"][0].state_dict())
    torch.testing.assert_close(back(x)[0], nets["nhwc"][0](x)[0], rtol=1e-4, atol=1e-5)
