"""What a run prints: each of Lightning's and Optuna's lines once, through the job's own
logging, without Lightning's advertisement for another logging service or libraries' chatter.

Lightning gives its loggers a console handler of their own; under Hydra the job's handlers
(console and ``<job>.log``) receive the same records, so each line appeared twice. With a
handler on the root logger (Hydra's), Lightning's handlers are removed and its records go
there alone, into the log file too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

LIGHTNING = ("lightning", "lightning.pytorch", "lightning.fabric")
QUIET = ("alembic",)  # Optuna's database migrations
ADVERTISEMENT = "💡 Tip:"  # Lightning 2.6: "💡 Tip: For seamless cloud logging ... litlogger"


class _NoAdvertisement(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTISEMENT)


def route_lightning_logs() -> None:
    """Lightning's records to the root handlers only (when there are some), tips dropped;
    Python's warnings (Lightning's advice among them) go there too, so the job's log file
    holds them as well as the console."""
    if logging.getLogger().handlers:
        logging.captureWarnings(True)
    for name in LIGHTNING:
        logger = logging.getLogger(name)
        if logging.getLogger().handlers:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
        for source in (logger, logging.getLogger(f"{name}.utilities.rank_zero")):
            if not any(isinstance(f, _NoAdvertisement) for f in source.filters):
                source.addFilter(_NoAdvertisement())


def quiet_libraries() -> None:
    """INFO lines of libraries that say nothing to a user, silenced before Hydra starts:
    alembic's "setup plugin ..." (7 lines as Hydra's plugin scan imports Optuna's storage)."""
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def optuna_through_logging() -> None:
    """Optuna's lines through the job's logging (once, in its format, into its log file)
    instead of Optuna's own handler, which colours them with escape codes even in a file."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


@contextmanager
def logging_restored() -> Iterator[None]:
    """The root logger's handlers and level as they were before the block, the handlers added
    inside it (Hydra's job logging: the console and the job's log file) closed: a job run
    in a process that goes on (a notebook, a test) leaves its logging behind it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        logging.captureWarnings(False)  # warnings printed as before the job
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
