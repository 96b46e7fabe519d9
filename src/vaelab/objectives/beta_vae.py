"""β-VAE (Higgins et al. 2017): loss = recon + β · KL(q(z|x) || N(0, I)); β = 1 is the VAE."""

from __future__ import annotations

from vaelab.objectives.base import Objective


class BetaVAE(Objective):
    """recon + β · KL; β comes from the β schedule at every step."""

    batchable = True
