"""Disentanglement metrics (disentanglement_lib's definitions) and likelihood estimates.

The names below load their module (and torch) on first use, not on ``import vaelab.metrics``,
so that the suite's classifier workers (``vaelab.metrics.classifiers``) start without torch.
"""

from importlib import import_module

_HOMES = {
    "METRICS": "settings",
    "SuiteConfig": "settings",
    "evaluate_disentanglement": "suite",
    "active_units": "likelihood",
    "active_units_from_means": "likelihood",
    "elbo": "likelihood",
    "iwae_per_image": "likelihood",
    "log_likelihood_iw": "likelihood",
    "beta_vae_score": "beta_vae",
    "dci_from_codes": "dci",
    "dci_score": "dci",
    "dci_es_from_codes": "dci_es",
    "evaluate": "represent",
    "explicitness_from_codes": "modularity",
    "modularity_explicitness_score": "modularity",
    "modularity_from_codes": "modularity",
    "factor_vae_score": "factor_vae",
    "infomec_from_codes": "infomec",
    "mig_from_codes": "mig",
    "mig_score": "mig",
    "sap_from_codes": "sap",
    "sap_score": "sap",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    """``vaelab.metrics.<name>``: the name from its module (``_HOMES``), imported now."""
    if name in _HOMES:
        return getattr(import_module(f"vaelab.metrics.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'vaelab.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
