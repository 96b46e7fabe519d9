"""Training objectives: each is the shared ELBO step plus, at most, a few terms of its own."""

from vaelab.objectives.annealed_vae import AnnealedVAE
from vaelab.objectives.autoencoder import Autoencoder
from vaelab.objectives.base import Objective, VAEOutput
from vaelab.objectives.beta_tcvae import BetaTCVAE
from vaelab.objectives.beta_vae import BetaVAE
from vaelab.objectives.dip_vae import DIPVAE
from vaelab.objectives.factor_vae import FactorVAE
from vaelab.objectives.kl import kl_normal
from vaelab.objectives.likelihoods import Bernoulli, Gaussian, make_likelihood
from vaelab.objectives.qlae import QLAE
from vaelab.objectives.tripod import Tripod

__all__ = [
    "DIPVAE",
    "QLAE",
    "AnnealedVAE",
    "Autoencoder",
    "Bernoulli",
    "BetaTCVAE",
    "BetaVAE",
    "FactorVAE",
    "Gaussian",
    "Objective",
    "Tripod",
    "VAEOutput",
    "kl_normal",
    "make_likelihood",
]
