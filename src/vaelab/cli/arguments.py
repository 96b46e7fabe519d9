"""The command line around ``@hydra.main``: overrides normalized before Hydra parses them,
the output folder checked before any work, and Hydra's errors in composing the config said
in one paragraph with the bad-input status (2) and a hint for a missing plugin."""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.errors import MissingConfigException

from vaelab.console import name_console_lines
from vaelab.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from vaelab.hydra_errors import (
    PRECISION_ALIASES,
    REQUIRED_GROUPS,
    composition_error,
    launcher_error,
)

FULL_ERROR = "HYDRA_FULL_ERROR"  # set: Hydra raises its errors instead of printing them
SET_BY_US = "VAELAB_SET_HYDRA_FULL_ERROR"  # marks it as ours, in job processes too

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


def call_hydra_main(main: Callable[[], object]) -> None:
    """Call a ``@hydra.main`` function whose task calls ``task_started`` first. An error before
    the task has started is bad input (exit 2): one in composing the config (an unknown
    option or key, an override Hydra cannot parse, a launcher that is not installed) said in
    one paragraph (``hydra_errors``), with the pip hint for a plugin; a launcher that could
    not submit the jobs (sbatch failed) said in one paragraph too. Hydra raises such errors
    to us (HYDRA_FULL_ERROR) until the task starts; with HYDRA_FULL_ERROR set by the user, as
    Hydra has them."""
    global _started
    _started = False
    if FULL_ERROR not in os.environ:
        os.environ[FULL_ERROR] = os.environ[SET_BY_US] = "1"
    ours = SET_BY_US in os.environ
    try:
        main()
    except SystemExit as exit_:
        if exit_.code == 1 and not _started:
            bad_input(None)
        raise
    except Exception as error:
        if _started or not ours:
            raise
        launcher = launcher_error(error)  # sbatch refused the jobs: not the user's config
        if launcher is not None:
            bad_input(launcher, hint=False)
        message = composition_error(error)
        if message is not None:  # the pip hint only for an option not found
            bad_input(message, hint=isinstance(error, MissingConfigException))
        if isinstance(error, ValueError) and "can be specified" in str(error):
            bad_input(str(error))  # Hydra's check of its flags (--cfg with -m)
        traceback.print_exc()
        bad_input(None)
    finally:
        unset_full_error()


_started = False  # set by task_started: Hydra has composed the config and called the task


def task_started() -> None:
    """The first call of a task function: from here errors are the task's, for Hydra to
    report (``unset_full_error``). Where the launcher runs jobs at once (joblib), their lines
    share the terminal: each console line names its job."""
    global _started
    _started = True
    unset_full_error()
    from vaelab.sweep import launcher_jobs  # the report's matplotlib: not for compose errors

    if launcher_jobs() > 1:
        name_console_lines(f"job {HydraConfig.get().job.num}")


def unset_full_error() -> None:
    """HYDRA_FULL_ERROR unset again where ``call_hydra_main`` set it (in a launcher's job
    process too, which inherited it), as a task or a stack's training starts: errors there are
    Hydra's to report, and processes started from it see the user's environment."""
    if os.environ.pop(SET_BY_US, None):
        os.environ.pop(FULL_ERROR, None)


def exit_said(error: Exception) -> None:
    """A task's error said plainly, without a traceback: bad input (``ConfigError``: exit 2,
    the empty run folder removed) or a loss that became NaN (exit 1); any other returns, for
    Hydra to report."""
    from vaelab.errors import ConfigError, NonFiniteLossError
    from vaelab.run_folder import drop_if_empty

    if not isinstance(error, ConfigError | NonFiniteLossError):
        return
    if isinstance(error, ConfigError):  # refused: no empty folder left behind
        drop_if_empty(Path(HydraConfig.get().runtime.output_dir))
    print(f"error: {error}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT if isinstance(error, ConfigError) else 1)


def exit_interrupted(line: str) -> NoReturn:
    """Ctrl-C as one line (``interrupted: ...``) on the console and in the log, exit 130."""
    from vaelab.console import to_log_files

    to_log_files(line)  # the log says how it goes on, too
    print(line, file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


def bad_input(message: str | None, hint: bool = True) -> NoReturn:
    """Exit 2 after ``message`` and (``hint``) the pip hint for a plugin, if one was asked for."""
    if message:
        print(f"error: {message}", file=sys.stderr)
    hint = hint and plugin_hint(sys.argv[1:])
    if hint:
        print(hint, file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def group_default(group: str, config: str = "train.yaml") -> str | None:
    """The option ``config``'s defaults list chooses for ``group``, None where not known."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    from vaelab.cli import config_path

    folder = config_path()
    try:
        path = files("vaelab.conf") if folder.startswith("pkg://") else Path(folder)
        defaults = OmegaConf.load(str(path / config)).get("defaults") or []
    except Exception:  # no such file, or not YAML: the message goes without the default
        return None
    chosen = [d.get(group) for d in defaults if hasattr(d, "get") and d.get(group) is not None]
    return str(chosen[0]) if chosen else None


def removed_group_problem(args: list[str]) -> str | None:
    """A sentence for ``~model`` (``~model=beta_vae``): an override that removes a config group
    a training run needs (``REQUIRED_GROUPS``), said before Hydra composes a config that
    would fail in training."""
    from vaelab.cli import command

    for arg in args:
        group = arg[1:].split("=", 1)[0] if arg.startswith("~") else ""
        if group in REQUIRED_GROUPS:
            default = group_default(group)
            kept = f" ({group}={default})" if default else ""
            return (
                f"{arg} removes the config group `{group}`, and a training run cannot do "
                f"without one: leave {arg} out to keep its default{kept}, or choose another "
                f"option with {group}=<name> (`{command('train')} --help` lists the options)."
            )
    return None


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


# Keys whose value is a path: one into a sweep's job folder holds `=` (0_beta_vae_beta=4_seed=0),
# which Hydra's grammar refuses unquoted.
PATH_KEYS = ("ckpt_path", "data.path", "paths.data_dir", "paths.log_dir", "hydra.run.dir",
             "hydra.sweep.dir")  # fmt: skip


def parses(override: str) -> bool:
    """Whether Hydra's grammar reads ``override``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        OverridesParser.create().parse_overrides([override])
    except OverrideParseException:
        return False
    return True


def normalize_overrides(args: list[str]) -> list[str]:
    """Map ``precision=32`` (and ``16``, ``bf16``, also in comma sweeps) to the option names;
    quote a path that holds ``=`` where Hydra cannot parse it as given (``PATH_KEYS``; not one
    with quotes, escapes or a list, which Hydra's error then advises on)."""
    out = []
    for arg in args:
        key, _, value = arg.partition("=")
        if key == "precision":
            arg = "precision=" + ",".join(PRECISION_ALIASES.get(v, v) for v in value.split(","))
        elif (key.lstrip("+") in PATH_KEYS and "=" in value
              and not set(value) & set("'\"\\,[") and not parses(arg)):  # fmt: skip
            arg = f"{key}='{value}'"
        out.append(arg)
    return out
