"""Train one model (or a sweep with -m): ``python src/train.py model=beta_vae beta=4``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from vaelab.config import EXIT_BAD_INPUT, ConfigError, normalize_overrides
from vaelab.train import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        return run(cfg)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    sys.argv[1:] = normalize_overrides(sys.argv[1:])
    main()
