"""Disentanglement metrics (disentanglement_lib's definitions) and likelihood estimates."""

from vaelab.metrics.beta_vae import beta_vae_score
from vaelab.metrics.dci import dci_from_codes, dci_score
from vaelab.metrics.dci_es import dci_es_from_codes
from vaelab.metrics.factor_vae import factor_vae_score
from vaelab.metrics.infomec import infomec_from_codes
from vaelab.metrics.likelihood import (
    active_units,
    active_units_from_means,
    elbo,
    iwae_per_image,
    log_likelihood_iw,
)
from vaelab.metrics.mig import mig_from_codes, mig_score
from vaelab.metrics.modularity import (
    explicitness_from_codes,
    modularity_explicitness_score,
    modularity_from_codes,
)
from vaelab.metrics.represent import evaluate
from vaelab.metrics.sap import sap_from_codes, sap_score
from vaelab.metrics.suite import METRICS, SuiteConfig, evaluate_disentanglement

__all__ = [
    "METRICS",
    "SuiteConfig",
    "active_units",
    "active_units_from_means",
    "beta_vae_score",
    "dci_es_from_codes",
    "dci_from_codes",
    "dci_score",
    "elbo",
    "evaluate",
    "evaluate_disentanglement",
    "explicitness_from_codes",
    "factor_vae_score",
    "infomec_from_codes",
    "iwae_per_image",
    "log_likelihood_iw",
    "mig_from_codes",
    "mig_score",
    "modularity_explicitness_score",
    "modularity_from_codes",
    "sap_from_codes",
    "sap_score",
]
