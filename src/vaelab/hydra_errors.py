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
from typing import Any

from hydra._internal.defaults_list import Overrides
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


def override_error(error: BaseException) -> str | None:
    """Errors of Hydra's own code as it applied an override, else None:
    ``experiment=null`` (a group given null) and ``hydra.sweeper.params.beta=1`` (a key inside
    a null of a typed config, Hydra's own, which only a config file can fill)."""
    override = innermost(error, "override", Override)
    if override is None:
        return None
    line, key = override.input_line, override.key_or_group
    if isinstance(error, ValueError) and "Config group override must be" in str(error):
        return (f"{line}: a config group takes the name of one of its options, not null. "
                f"To run without one, leave `{key}` out, or write ~{key}.")  # fmt: skip
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
