"""vaelab's configs. Installed as the package ``vaelab.conf`` (see setup.py), which is where
``vaelab-train`` reads them outside a clone; in a clone the programs read this folder."""
