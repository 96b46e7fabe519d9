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
