"""Hydra's errors in composing a config, said as one paragraph: the option or key that is
wrong, what is allowed, the closest allowed name; without Hydra's config search path and
its HYDRA_FULL_ERROR advice. Used by the programs (``vaelab.cli.arguments``) and by
``vaelab.train``."""

from __future__ import annotations

import difflib
import re

from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def did_you_mean(name: str, options: list[str], prefix: str = "") -> str:
    """`` Did you mean <prefix>X?`` for the option X nearest ``name`` (difflib), else ``""``."""
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" Did you mean {prefix}{match[0]}?" if match else ""


def missing_option(error: MissingConfigException) -> str:
    """``model=betavae``: the group's options and the nearest one."""
    group, _, name = str(error.missing_cfg_file).rpartition("/")
    options = sorted(error.options or [])
    if not group or not options:  # not a group's option: the first line of Hydra's message
        return str(error).split("\n", 1)[0]
    own = (
        ""
        if group.startswith("hydra")
        else " Configs of your own are found in the folders of VAELAB_CONFIG_PATH."
    )
    return (f"{group}={name} names no config: the options of `{group}` are "
            f"{', '.join(options)}.{did_you_mean(name, options)}{own}")  # fmt: skip


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
    return said


def composition_error(error: BaseException) -> str:
    """``error``, raised while Hydra composed the config, as one paragraph."""
    cause = error.__cause__
    text = str(error)
    if isinstance(error, MissingConfigException):
        return missing_option(error)
    if isinstance(error, OverrideParseException):
        return unparsable(error)
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
