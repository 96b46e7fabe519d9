"""What a run prints: each of Lightning's lines once, through the job's own logging, without
Lightning's advertisement for another logging service.

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
ADVERTISEMENT = "💡 Tip:"  # Lightning 2.6: "💡 Tip: For seamless cloud logging ... litlogger"


class _NoAdvertisement(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTISEMENT)


def route_lightning_logs() -> None:
    """Lightning's records to the root handlers only (when there are some), tips dropped."""
    for name in LIGHTNING:
        logger = logging.getLogger(name)
        if logging.getLogger().handlers:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
        for source in (logger, logging.getLogger(f"{name}.utilities.rank_zero")):
            if not any(isinstance(f, _NoAdvertisement) for f in source.filters):
                source.addFilter(_NoAdvertisement())


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
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
