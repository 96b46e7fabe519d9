"""vaelab: train, sweep and evaluate variational autoencoders."""

__version__ = "0.1.0"
