"""vaelab's Hydra plugin: a resumable Optuna sweeper (``conf/sweep/optuna.yaml``).

Hydra finds sweepers only in the ``hydra_plugins`` namespace package; ``resumable_sweeper``
is what its plugin scan imports, and the search itself (``_resumable``, which imports optuna)
loads only when a sweep starts.
"""
