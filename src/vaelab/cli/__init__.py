"""The command-line programs: ``vaelab-train``, ``vaelab-eval``, ``vaelab-report`` and
``vaelab-compare`` once installed, ``python src/<name>.py`` in a clone (same code).

Configs come from the clone's ``conf/`` when vaelab runs from a clone (edits there apply at
once) and from the copy installed with the package (``vaelab.conf``) otherwise. Folders of
the user's own configs are searched too: ``hydra.searchpath=[file://my_conf]`` on the command
line, or ``VAELAB_CONFIG_PATH=my_conf:other_conf`` in the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

CLONE_CONF = Path(__file__).resolve().parents[3] / "conf"  # <clone>/src/vaelab/cli -> <clone>/conf
CONFIG_PATH_ENV = "VAELAB_CONFIG_PATH"


def config_path() -> str:
    """Where ``@hydra.main`` reads train.yaml and eval.yaml: the clone's conf/ or the package's."""
    if (CLONE_CONF / "train.yaml").is_file():
        return str(CLONE_CONF)
    return "pkg://vaelab.conf"


def with_user_configs(args: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """``args`` with ``hydra.searchpath`` holding the folders of ``$VAELAB_CONFIG_PATH``
    (``:``-separated) when it is set and the command line does not set the search path."""
    folders = (os.environ if environ is None else environ).get(CONFIG_PATH_ENV, "")
    paths = [f"file://{Path(f).absolute()}" for f in folders.split(os.pathsep) if f]
    if not paths or any(a.split("=", 1)[0].lstrip("+") == "hydra.searchpath" for a in args):
        return args
    # beside the other overrides: Hydra's parser takes them as one run of arguments
    at = next((i for i, a in enumerate(args) if "=" in a and not a.startswith("-")), len(args))
    return [*args[:at], f"hydra.searchpath=[{','.join(paths)}]", *args[at:]]


def command(name: str) -> str:
    """How to call program ``name`` (train, eval, report, compare) here, for messages."""
    return f"python src/{name}.py" if (CLONE_CONF / "train.yaml").is_file() else f"vaelab-{name}"
