"""Encoders ``x -> (mu, logvar)`` and decoders ``z -> logits``."""

from vaelab.nets.conv import ConvDecoder, ConvEncoder
from vaelab.nets.mlp import MLPDecoder, MLPEncoder

__all__ = ["ConvDecoder", "ConvEncoder", "MLPDecoder", "MLPEncoder"]
