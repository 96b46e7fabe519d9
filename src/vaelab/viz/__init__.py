"""Figures: image grids of reconstructions and samples (traversals and more come later)."""

from vaelab.viz.grids import save_reconstructions_and_samples

__all__ = ["save_reconstructions_and_samples"]
