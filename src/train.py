"""Train one model (or a sweep with -m): ``python src/train.py model=beta_vae beta=4``.

Exit status 2 means bad input (a config that cannot run, an unknown group option, missing
data), reported in one paragraph before any work starts.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from vaelab.config import EXIT_BAD_INPUT, ConfigError, normalize_overrides, plugin_hint, validate
from vaelab.errors import NonFiniteLossError

started = False  # set once Hydra has composed the config and called the task


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    global started
    started = True
    try:
        validate(cfg)
        from vaelab.train import run  # torch and Lightning load only for a valid config

        return run(cfg)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except NonFiniteLossError as error:  # said plainly; metrics.json marks the run failed
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    sys.argv[1:] = normalize_overrides(sys.argv[1:])
    try:
        main()
    except SystemExit as exit_:
        if exit_.code == 1 and not started:  # Hydra could not compose the config
            hint = plugin_hint(sys.argv[1:])
            if hint:
                print(hint, file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        raise
