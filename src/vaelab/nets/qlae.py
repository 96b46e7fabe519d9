"""QLAE's own networks (Hsu et al. 2023; kylehkhsu/latent_quantization), ported from JAX/Equinox.

Encoder (``encoders/image.py`` with ``configs/encoder_partial/image.yaml``): convolution blocks
``conv (no bias) -> instance norm (affine, eps 1e-6) -> leaky ReLU(0.2)``, widths
32-32-32-64-64-64-128-128-128-256-256-256, kernels 3-3-4, strides 1-1-2 (padding 1), then
dense 256-256 with ReLU and a linear head to the latents (plus a logvar head of the same shape
for variational objectives, as ``conv.py``; the reference's VAE splits one head of twice the size
into mu and softplus⁻¹ σ, vaelab's heads give mu and log σ²).

Decoder (``decoders/style_image.py``, ``blocks/style.py``, ``configs/decoder_partial/
style_image.yaml``): a mapping ``w = ReLU(W2 ReLU(W1 z + b1) + b2)`` (dense 256-256) and a
learned input map, 0.1 everywhere at the start, of 256 × S/16 × S/16 (the encoder's last
feature side). Twelve style blocks mirror the encoder (widths 256-256-256-128-...-32, kernels
3-3-4, strides 1-1-2, padding 1), each AdaIN-like after its activation, with no weight
modulation or demodulation::

    h = InstanceNorm(LeakyReLU_0.2(ConvTranspose(x)))     (no affine, eps 1e-6)
    (scale, shift) = split(ReLU(A w + a))                  (per block, 2 × width outputs)
    out = h · scale + shift                                (per channel, broadcast over pixels)

and a final 3×3 convolution without bias gives the logits.

``arch=qlae_small`` is the ``*_small.yaml`` pair: four 4×4 stride-2 blocks (64-128-256-512),
dense 512, a 512-channel input map.

Initialisation follows Equinox's defaults: U(±1/√fan_in) for linear and convolution weights and
biases, which PyTorch's defaults already are, except the transposed convolutions, for which
Equinox takes fan_in = in_channels·k² and PyTorch out_channels·k²; they are redrawn with
Equinox's bound. Instance-norm affines start at 1 and 0 in both. Only the random draws differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

EPS = 1e-6  # eqx.nn.GroupNorm(eps=1e-6) in blocks/utils.py and blocks/style.py
SLOPE = 0.2  # jax.nn.leaky_relu(negative_slope=0.2) in blocks/utils.py
PADDING = 1  # every layer of both variants
INPUT_MAP_VALUE = 0.1  # decoders/style_image.py: 0.1 * jnp.ones(input_shape)


def transition_side(image_size: int, strides: Sequence[int]) -> int:
    """Side of the encoder's last feature map (the decoder's input map): S / prod(strides).
    At least 2, since instance norm of a 1×1 map is 0 whatever the image."""
    down = math.prod(strides)
    if image_size % down or image_size < 2 * down:
        raise ValueError(
            f"the qlae arch needs an image side that is a multiple of {down} and at least "
            f"{2 * down}, got {image_size}"
        )
    return image_size // down


def conv_block(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Sequential:
    """``blocks/conv.py`` Conv2DBlock: conv (no bias) -> instance norm (affine) -> leaky ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, PADDING, bias=False),
        nn.GroupNorm(out_channels, out_channels, eps=EPS),  # one group per channel
        nn.LeakyReLU(SLOPE),
    )


def dense_blocks(in_features: int, widths: Sequence[int]) -> list[nn.Module]:
    """``blocks/dense.py`` DenseBlocks: linear (with bias) -> ReLU for each width."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(in_features, width), nn.ReLU()]
        in_features = width
    return layers


class StyleConvTransposeBlock(nn.Module):
    """``blocks/style.py`` StyleConvTranspose2DBlock: ``x, w -> IN(LReLU(convT(x))) · s + t``
    with ``(s, t) = split(ReLU(A w + a))``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, style_dim: int
    ) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(
            in_channels, out_channels, kernel, stride, PADDING, bias=False
        )
        bound = 1 / math.sqrt(in_channels * kernel * kernel)  # Equinox's ConvTranspose bound
        nn.init.uniform_(self.conv.weight, -bound, bound)
        self.norm = nn.GroupNorm(out_channels, out_channels, eps=EPS, affine=False)
        self.style = nn.Linear(style_dim, 2 * out_channels)  # the block's `conditioning`

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        scale, shift = F.relu(self.style(w)).chunk(2, dim=1)
        h = self.norm(F.leaky_relu(self.conv(x), SLOPE))
        return h * scale[:, :, None, None] + shift[:, :, None, None]


class QLAEEncoder(nn.Module):
    """``x [B, C, S, S] -> (mu, logvar)``; ``logvar`` is None when deterministic."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        widths: Sequence[int] = (32, 32, 32, 64, 64, 64, 128, 128, 128, 256, 256, 256),
        kernel_sizes: Sequence[int] = (3, 3, 4) * 4,
        strides: Sequence[int] = (1, 1, 2) * 4,
        hidden: Sequence[int] = (256, 256),
        latent_dim: int = 10,
        variational: bool = True,
    ) -> None:
        super().__init__()
        channels, side, _ = image_shape
        last_side = transition_side(side, strides)
        layers: list[nn.Module] = []
        for width, kernel, stride in zip(widths, kernel_sizes, strides, strict=True):
            layers.append(conv_block(channels, width, kernel, stride))
            channels = width
        flat = channels * last_side**2
        self.features = nn.Sequential(*layers, nn.Flatten(), *dense_blocks(flat, hidden))
        self.fc_mu = nn.Linear(hidden[-1], latent_dim)  # the reference's `head`
        self.fc_logvar = nn.Linear(hidden[-1], latent_dim) if variational else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.features(x)
        logvar = self.fc_logvar(h) if self.fc_logvar is not None else None
        return self.fc_mu(h), logvar


class QLAEDecoder(nn.Module):
    """``z [B, D] -> logits [B, C, S, S]``: style blocks on a learned input map, styled by z."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        widths: Sequence[int] = (256, 256, 256, 128, 128, 128, 64, 64, 64, 32, 32, 32),
        kernel_sizes: Sequence[int] = (3, 3, 4) * 4,
        strides: Sequence[int] = (1, 1, 2) * 4,
        hidden: Sequence[int] = (256, 256),
        input_channels: int = 256,
        latent_dim: int = 10,
    ) -> None:
        super().__init__()
        channels, side, _ = image_shape
        start = transition_side(side, strides)
        self.mapping = nn.Sequential(*dense_blocks(latent_dim, hidden))
        self.input_map = nn.Parameter(torch.full((input_channels, start, start), INPUT_MAP_VALUE))
        self.blocks = nn.ModuleList()
        width_in = input_channels
        for width, kernel, stride in zip(widths, kernel_sizes, strides, strict=True):
            self.blocks.append(StyleConvTransposeBlock(width_in, width, kernel, stride, hidden[-1]))
            width_in = width
        self.to_logits = nn.Conv2d(width_in, channels, 3, 1, 1, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = self.mapping(z)
        # a copy, not an expanded view: a view of a parameter made under no_grad has no
        # grad_fn, which torch's FLOP counter (vaelab's model summary) refuses
        x = self.input_map.repeat(z.shape[0], 1, 1, 1)
        for block in self.blocks:
            x = block(x, w)
        return self.to_logits(x)
