"""The 64×64 convolutional network of the disentanglement literature.

Encoder (Higgins et al. 2017; Locatello et al. 2019): four 4×4 convolutions with stride 2
(widths 32-32-64-64, ReLU), a dense layer of 256, then dense heads for mu and logvar.
Decoder: dense 256, dense to the last feature map, then four 4×4 transposed convolutions
with stride 2 mirroring the encoder. Each stride-2 layer halves (or doubles) the side, so
the image side must be a multiple of 16.

``channels_last`` (the default) keeps the convolutions' weights, and so their activations, in
the NHWC layout; the tensors the nets take and return keep the usual ``[B, C, S, S]`` layout.
The numbers are the same up to float rounding (about 1e-8 in the codes). On 2 CPU cores
(oneDNN) training ran at 1.11x (batch 64) and 1.16x (batch 256) the images/s, and the metric
suite encoded dSprites in 0.84x the time (benchmarks/results/channels-last-*.json). NHWC is
also the layout cuDNN's Tensor Core kernels use (on a GPU: not yet measured).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

DOWNSAMPLING = 16  # four stride-2 layers


def in_nhwc(net: nn.Module, channels_last: bool) -> None:
    """Store the 4-d weights of ``net`` as NHWC (``torch.channels_last``) when asked."""
    if channels_last:
        net.to(memory_format=torch.channels_last)


def feature_side(image_size: int) -> int:
    """Side of the last feature map: image_size / 16."""
    if image_size % DOWNSAMPLING or image_size < DOWNSAMPLING:
        raise ValueError(
            f"the conv arch needs an image side that is a multiple of 16, got {image_size}"
        )
    return image_size // DOWNSAMPLING


class ConvEncoder(nn.Module):
    """``x [B, C, S, S] -> (mu, logvar)``; ``logvar`` is None when deterministic."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        widths: Sequence[int] = (32, 32, 64, 64),
        hidden: int = 256,
        latent_dim: int = 10,
        variational: bool = True,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        channels, side, _ = image_shape
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.ReLU()]
            channels = width
        flat = channels * feature_side(side) ** 2
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU())
        self.fc_mu = nn.Linear(hidden, latent_dim)
        self.fc_logvar = nn.Linear(hidden, latent_dim) if variational else None
        in_nhwc(self, channels_last)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.features(x)
        logvar = self.fc_logvar(h) if self.fc_logvar is not None else None
        return self.fc_mu(h), logvar


class ConvDecoder(nn.Module):
    """``z [B, D] -> logits [B, C, S, S]``, the encoder mirrored."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        widths: Sequence[int] = (32, 32, 64, 64),
        hidden: int = 256,
        latent_dim: int = 10,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        channels, side, _ = image_shape
        rev = list(widths)[::-1]
        self.start = (rev[0], feature_side(side), feature_side(side))
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, rev[0] * self.start[1] * self.start[2]),
            nn.ReLU(),
            nn.Unflatten(1, self.start),
        ]
        for width_in, width_out in zip(rev, [*rev[1:], channels], strict=True):
            layers += [nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])  # no activation on the logits
        in_nhwc(self, channels_last)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).contiguous()  # NCHW: a copy only when channels_last and C > 1
