"""Train one model, or a sweep with -m: ``python src/train.py model=beta_vae beta=4``.

The clone's entry point of ``vaelab-train``; the program is ``vaelab.cli.train``.
"""

from vaelab.cli.train import main

if __name__ == "__main__":
    main()
