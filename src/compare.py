"""An AE and a VAE side by side: ``python src/compare.py experiment=ae_vs_vae``.

The clone's entry point of ``vaelab-compare``; the program is ``vaelab.cli.compare``.
"""

from vaelab.cli.compare import main

if __name__ == "__main__":
    main()
