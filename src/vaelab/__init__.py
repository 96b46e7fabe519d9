"""vaelab: train, sweep and evaluate variational autoencoders.

From Python: ``vaelab.train([...overrides])`` and ``vaelab.load_run(folder)`` (vaelab.api);
bad input raises ``vaelab.ConfigError``.
"""

from vaelab.errors import ConfigError

__version__ = "0.1.0"
__all__ = ["ConfigError", "load_run", "train"]


def __getattr__(name: str):
    """``train`` and ``load_run`` load torch and Hydra on first use, not on ``import vaelab``."""
    if name in ("load_run", "train"):
        from vaelab import api

        return getattr(api, name)
    raise AttributeError(f"module 'vaelab' has no attribute {name!r}")
