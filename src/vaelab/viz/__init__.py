"""Figures: reconstructions, samples, latent traversals (PNG and GIF), interpolations, latent
scatters, DCI / MIG heat maps, the AE-vs-VAE comparison, and a callback that makes them
during training. ``save_run_figures`` is the one call at the end of a run."""

from vaelab.viz.callback import FigureCallback
from vaelab.viz.compare import ae_vs_vae_figure
from vaelab.viz.figures import make_figures, save_run_figures
from vaelab.viz.grids import save_reconstructions, save_reconstructions_and_samples, save_samples
from vaelab.viz.settings import FigureSettings

__all__ = [
    "FigureCallback",
    "FigureSettings",
    "ae_vs_vae_figure",
    "make_figures",
    "save_reconstructions",
    "save_reconstructions_and_samples",
    "save_run_figures",
    "save_samples",
]
