"""Errors that end a run and are reported in plain words, without a traceback."""

from __future__ import annotations

EXIT_BAD_INPUT = 2  # the exit status of bad input: a config, file or folder that cannot be used
EXIT_INTERRUPTED = 130  # the shell's status for a program stopped by Ctrl-C (128 + SIGINT)


def whole_number(value: object, least: int) -> bool:
    """Whether a setting's ``value`` is a whole number >= ``least`` (True and False are not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


class ConfigError(ValueError):
    """The composed config cannot be run; the message says what to change (exit status 2)."""


class FolderInUse(ConfigError):
    """The run's folder is another live process's run, training now: not this run's to use,
    nor to mark failed."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (``trainer.nan_policy=stop``)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped training at ``step`` (None: not known); the message says what was kept
    and how to go on (printed as one line, exit status ``EXIT_INTERRUPTED``)."""

    def __init__(self, message: str = "", step: int | None = None) -> None:
        super().__init__(message)
        self.step = step
