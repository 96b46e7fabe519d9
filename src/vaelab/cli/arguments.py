"""The command line around ``@hydra.main``: overrides normalized before Hydra parses them,
the output folder checked before any work, and Hydra's own exit when it cannot compose the
config turned into the bad-input status (2) with a hint for a missing plugin."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from vaelab.errors import EXIT_BAD_INPUT

# Hydra reads a bare `precision=32` as the integer 32, which cannot name a config file.
PRECISION_ALIASES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}


# Hydra plugins that are separate packages: group prefix -> pip package
PLUGINS = {
    "hydra/launcher=joblib": "hydra-joblib-launcher",
    "hydra/launcher=submitit": "hydra-submitit-launcher",
    "hydra/launcher=ray": "hydra-ray-launcher",
    "hydra/launcher=rq": "hydra-rq-launcher",
    "hydra/sweeper=optuna": "hydra-optuna-sweeper",
    "hydra/sweeper=ax": "hydra-ax-sweeper",
    "hydra/sweeper=nevergrad": "hydra-nevergrad-sweeper",
}


def plugin_hint(args: list[str]) -> str | None:
    """A line saying which pip package provides a Hydra launcher or sweeper that was asked for."""
    for arg in args:
        for prefix, package in PLUGINS.items():
            if arg.lstrip("+").startswith(prefix):
                return f"hint: `{arg}` needs the Hydra plugin {package}: pip install {package}"
    return None


def call_hydra_main(main: Callable[[], object], started: Callable[[], bool]) -> None:
    """Call a ``@hydra.main`` function. Hydra exits with status 1 when it cannot compose the
    config (an unknown option, a launcher that is not installed): before the task has
    ``started`` that is bad input, so exit 2 instead, with the pip hint for a plugin."""
    try:
        main()
    except SystemExit as exit_:
        if exit_.code == 1 and not started():
            hint = plugin_hint(sys.argv[1:])
            if hint:
                print(hint, file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        raise


OUTPUT_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "paths.log_dir")


def output_location_problem(args: list[str], default: str = "outputs") -> str | None:
    """A sentence when the folder runs would be written to cannot be created or written."""
    chosen = [a.split("=", 1)[1] for a in args if a.split("=", 1)[0] in OUTPUT_KEYS]
    for folder in chosen or [default]:
        if "${" in folder:
            continue
        existing = Path(folder).absolute()
        while not existing.exists():
            existing = existing.parent
        try:
            probe = tempfile.mkdtemp(prefix=".vaelab-probe-", dir=existing)
            os.rmdir(probe)
        except OSError as error:
            return (
                f"error: the output folder {folder} cannot be written ({error.strerror} in "
                f"{existing}); choose another with hydra.run.dir=... or paths.log_dir=..."
            )
    return None


def normalize_overrides(args: list[str]) -> list[str]:
    """Map ``precision=32`` (and ``16``, ``bf16``, also in comma sweeps) to the option names."""
    out = []
    for arg in args:
        if arg.startswith("precision="):
            values = arg.removeprefix("precision=").split(",")
            arg = "precision=" + ",".join(PRECISION_ALIASES.get(v, v) for v in values)
        out.append(arg)
    return out
