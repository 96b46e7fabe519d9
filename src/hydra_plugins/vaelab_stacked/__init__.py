"""vaelab's Hydra plugin: the stacked launcher (``hydra/launcher=stacked``).

Hydra imports this package at every start (its plugin scan): it imports nothing heavy;
the launching itself is ``vaelab.stacked.launch``.
"""
