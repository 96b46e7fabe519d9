"""Hydra's errors in composing a config, said as one paragraph: the option or key that is
wrong, what is allowed, the closest allowed name; without Hydra's config search path and
its HYDRA_FULL_ERROR advice. Used by the programs (``vaelab.cli.arguments``) and by
``vaelab.train``. Where Hydra's message leaves out the override it was applying (an option
chosen in a config file, an error of Hydra's own code), it is read from the traceback's frames:
Hydra's ``Override`` and ``Overrides`` objects there."""

from __future__ import annotations

import difflib
import re
import traceback
from pathlib import Path
from typing import Any

from hydra._internal.config_repository import IConfigRepository
from hydra._internal.defaults_list import Overrides
from hydra.core.default_element import GroupDefault
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.types import Override
from hydra.errors import (
    HydraException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"

# Config groups of train.yaml that a training run cannot do without: `~model` composes a
# config that fails in training (`~precision` runs at Lightning's default, `~logger` and
# `~callbacks` without them; sweep, experiment, reproduce and debug are null by default).
REQUIRED_GROUPS = ("data", "model", "arch", "size", "beta_schedule", "trainer", "evaluation",
                   "paths")  # fmt: skip

# Hydra reads a bare `precision=32` as the integer 32, which cannot name a config file:
# ``vaelab.cli.arguments.normalize_overrides`` maps these to the option names.
PRECISION_ALIASES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}


def did_you_mean(name: str, options: list[str], prefix: str = "") -> str:
    """`` Did you mean <prefix>X?`` for the option X nearest ``name`` (difflib), else ``""``."""
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" Did you mean {prefix}{match[0]}?" if match else ""


def innermost(error: BaseException, name: str, kind: type) -> Any:
    """The local variable ``name`` of type ``kind`` in the innermost frame of ``error``'s
    traceback that has one, else None."""
    found = None
    for frame, _ in traceback.walk_tb(error.__traceback__):
        value = frame.f_locals.get(name)
        if isinstance(value, kind):
            found = value
    return found


def missing_option(error: MissingConfigException) -> str:
    """``model=betavae``: the group's options and the nearest one; the config file that
    chose it, where it was not the command line."""
    group, _, name = str(error.missing_cfg_file).rpartition("/")
    options = sorted(error.options or [])
    if not group or not options:  # not a group's option: the first line of Hydra's message
        return str(error).split("\n", 1)[0]
    overrides = innermost(error, "overrides", Overrides)
    chosen = overrides.override_metadata.get(group) if overrides is not None else None
    where = (
        f", chosen in the defaults of the config {chosen.containing_config_path} "
        f"(override /{group}: {name}),"
        if chosen is not None and not chosen.external_override and chosen.containing_config_path
        else ""
    )
    own = (
        ""
        if group.startswith("hydra")
        else " Configs of your own are found in the folders of VAELAB_CONFIG_PATH."
    )
    return (f"{group}={name}{where} names no config: the options of `{group}` are "
            f"{', '.join(options)}.{did_you_mean(name, options)}{own}")  # fmt: skip


def null_parent(cfg: DictConfig, key: str, itself: bool) -> str | None:
    """The first of ``key``'s parents (``itself``: or the key) whose value is null."""
    parts = key.split(".")
    for end in range(1, len(parts) + int(itself)):
        prefix = ".".join(parts[:end])
        if OmegaConf.select(cfg, prefix, default="absent", throw_on_missing=False) is None:
            return prefix
    return None


def group_options(error: BaseException, group: str) -> tuple[list[str], bool]:
    """The options of config group ``group`` and whether the primary config (train.yaml,
    eval.yaml) may run without one (its default is null), read from Hydra's config
    repository in ``error``'s traceback; ([], False) where that cannot be read."""
    repo = innermost(error, "repo", IConfigRepository)
    name = innermost(error, "config_name", str)
    if repo is None:
        return [], False
    options = sorted(repo.get_group_options(group, results_filter=ObjectType.CONFIG))
    try:
        defaults = repo.load_config(name).defaults_list or [] if name else []
    except Exception:  # the primary config cannot be read again: no group is said optional
        defaults = []
    optional = any(
        isinstance(d, GroupDefault) and d.group == group and d.value is None for d in defaults
    )
    return options, optional


def group_value_error(error: BaseException, override: Override) -> str:
    """``precision=64``, ``model=1``, ``model=null``: a group given a value that is no option's
    name. Null where the run may go without the group (its default is null): how to leave it
    out; else the group's options and the nearest one."""
    line, group, value = override.input_line, override.key_or_group, override.value()
    options, optional = group_options(error, group)
    if value is None and (optional or group not in REQUIRED_GROUPS):
        return (f"{line}: a config group takes the name of one of its options, not null. "
                f"To run without one, leave `{group}` out, or write ~{group}.")  # fmt: skip
    listed = f": the options of `{group}` are {', '.join(options)}" if options else ""
    if group == "precision":
        listed += f" (or for short {', '.join(PRECISION_ALIASES)})"
    if value is None:
        said = f"{line}: `{group}` takes the name of one of its options, not null, and a run "
        return f"{said}cannot do without one{listed}."
    near = did_you_mean(str(value), options)
    return f"{line} names no option{listed}.{near}"


def override_error(error: BaseException) -> str | None:
    """Errors of Hydra's own code as it applied an override, else None:
    ``precision=64``, ``experiment=null`` (a group given a value that names no option) and
    ``hydra.sweeper.params.beta=1`` (a key inside a null of a typed config, Hydra's own,
    which only a config file can fill)."""
    override = innermost(error, "override", Override)
    if override is None:
        return None
    line, key = override.input_line, override.key_or_group
    if isinstance(error, ValueError) and "Config group override must be" in str(error):
        return group_value_error(error, override)
    cfg = innermost(error, "cfg", DictConfig)
    parent = cfg is not None and null_parent(cfg, key, itself=isinstance(override.value(), dict))
    if not parent or not isinstance(error, (AssertionError, AttributeError)):
        return None
    said = f"{line}: `{parent}` is null in the config, and Hydra cannot set a key inside it."
    if parent == "hydra.sweeper.params":
        said += (" A sweep's values are given as overrides with -m (-m beta=1,4 seed=0,1) or "
                 "in the hydra.sweeper.params of a sweep config (the `sweep` group, e.g. "
                 "sweep=beta_vae).")  # fmt: skip
    return said


def unknown_key(cause: OmegaConfBaseException, text: str) -> str:
    """``trainer.max_step=20``: not a key of the config; the nearest key beside it."""
    key, full_key = str(cause.key), str(cause.full_key)
    parent = cause.parent_node
    siblings = [str(k) for k in parent] if isinstance(parent, DictConfig) else []
    prefix = full_key[: -len(key)] if full_key.endswith(key) else ""
    near = did_you_mean(key, siblings, prefix)
    append = re.search(r"use (\+\S+)", text)
    added = f" A key of your own is added with a leading +: {append.group(1)}." if append else ""
    return f"{full_key} is not a key of the config.{near}{added}"


def unparsable(error: OverrideParseException) -> str:
    """An override Hydra's grammar cannot read; for ``key=~/path``, how to write the path."""
    override = str(error.override)
    key, _, value = override.partition("=")
    said = f"the override `{override}` cannot be parsed (Hydra's grammar: {GRAMMAR})."
    if value.startswith("~/"):
        said += f" The shell does not expand ~ after `=`: write {key}=$HOME{value[1:]}."
    elif value.startswith("~"):
        said += " The shell does not expand ~ after `=`: write the whole path."
    elif "=" in value and "'" not in value:  # each value of a list quoted on its own
        quoted = ",".join(f"'{v}'" for v in value.split(","))
        said += f' A value that holds `=` is quoted: "{key}={quoted}".'
    return said


def composition_error(error: BaseException) -> str | None:
    """``error``, raised while Hydra composed the config, as one paragraph; None for an error
    that is neither Hydra's nor one of Hydra's code on an override (``override_error``)."""
    if not isinstance(error, HydraException):
        return override_error(error)
    cause = error.__cause__
    text = str(error)
    if isinstance(error, MissingConfigException):
        return missing_option(error)
    if isinstance(error, OverrideParseException):
        return unparsable(error)
    if isinstance(error, InstantiationException) and isinstance(cause, ValueError):
        return str(cause)  # a plugin's own check of its settings (the stacked launcher's)
    if isinstance(cause, OmegaConfBaseException) and "not in struct" in str(cause):
        return unknown_key(cause, text)
    chosen = re.match(
        r"Multiple values for (\S+)\. To override a value use 'override \S+ (\S+)'", text
    )
    if chosen:  # +model=vae
        group, name = chosen.groups()
        return (f"+{group}={name}: `{group}` has an option already (its default); choose "
                f"another without the +: {group}={name}.")  # fmt: skip
    reason = str(cause).split("\n", 1)[0] if cause is not None else ""
    if reason and reason not in text:  # Hydra prints the cause too
        text = f"{text.rstrip('.')}: {reason}"
    return " ".join(line.strip() for line in text.split("Config search path:", 1)[0].splitlines()
                    if line.strip())  # fmt: skip


def launcher_error(error: BaseException) -> str | None:
    """A launcher that could not hand a sweep's jobs to its scheduler, as one paragraph, else
    None: submitit's ``FailedJobError`` (hydra/launcher=slurm), with what sbatch said."""
    kind = type(error)
    if kind.__name__ != "FailedJobError" or not kind.__module__.startswith("submitit"):
        return None
    said = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    command = getattr(error.__cause__, "cmd", None)
    program = Path(str(command[0])).name if isinstance(command, list) and command else "sbatch"
    return (f"SLURM could not take the sweep's jobs (hydra/launcher=slurm): {program} said "
            f"\"{said.rstrip('.') or 'nothing'}\". Check that SLURM can be reached from this "
            f"machine: `sbatch --version` and `sinfo` must work here (sinfo lists the "
            f"partitions; hydra.launcher.partition must name one of them), or run the sweep "
            f"without SLURM (leave hydra/launcher=slurm out).")  # fmt: skip
