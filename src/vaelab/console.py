"""What a run prints: each of Lightning's and Optuna's lines once, through the job's own
logging, without Lightning's advertisement for another logging service or libraries' chatter.

Lightning gives its loggers a console handler of their own; under Hydra the job's handlers
(console and ``<job>.log``) receive the same records, so each line appeared twice. With a
handler on the root logger (Hydra's), Lightning's handlers are removed and its records go
there alone, into the log file too.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LIGHTNING = ("lightning", "lightning.pytorch", "lightning.fabric")
QUIET = ("alembic",)  # Optuna's database migrations
# Lightning's lines that are not shown: its advertisement (2.6: "💡 Tip: For seamless cloud
# logging ... litlogger"), its Ctrl-C notice, which vaelab's `interrupted: ...` replaces, and
# its TPU line on a machine without one ("TPU available: False, using: 0 TPU cores"; the GPU
# line stays: it says where the run trains)
DROPPED = ("💡 Tip:", "Detected KeyboardInterrupt", "TPU available: False")


class _Dropped(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith(DROPPED)


# Lightning's warning when a resumed checkpoint holds the state of a callback the Trainer
# lacks, here only when it names one ModelCheckpoint alone (its state key holds its
# settings, so a run extended with another `callbacks.model_checkpoint.every_n_train_steps`
# has "another" one): with vaelab's settings (no monitored metric) it keeps no state that
# matters, last.ckpt is saved anew. Any other callback named (the random state's) is still
# warned about. The key holds single quotes only: [^"]* stays inside its own entry.
CHECKPOINT_SETTINGS_CHANGED = (
    r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be "
    r"provided during `Trainer` instantiation\. Please add the following callbacks: "
    r"\[\"ModelCheckpoint\{[^\"]*\}\"\]\.$"
)


def route_lightning_logs() -> None:
    """Lightning's records to the root handlers only (when there are some), ``DROPPED`` left out
    (and ``CHECKPOINT_SETTINGS_CHANGED``);
    Python's warnings (Lightning's advice among them) go there too, so the job's log file
    holds them as well as the console."""
    if logging.getLogger().handlers:
        logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message=CHECKPOINT_SETTINGS_CHANGED)
    for name in LIGHTNING:
        logger = logging.getLogger(name)
        if logging.getLogger().handlers:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
        for source in (logger, logging.getLogger(f"{name}.utilities.rank_zero")):
            if not any(isinstance(f, _Dropped) for f in source.filters):
                source.addFilter(_Dropped())


def to_log_files(message: str, name: str = "vaelab") -> None:
    """``message`` as a WARNING record for the root logger's file handlers only (the job's
    ``<job>.log``): for a line the program prints plainly on the console itself."""
    record = logging.LogRecord(name, logging.WARNING, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


class _Named(logging.Formatter):
    """The handler's own formatter (Hydra's, colorlog's), its line given ``[<name>]`` after
    the leading ``[time]`` (or in front)."""

    def __init__(self, inner: logging.Formatter, name: str) -> None:
        super().__init__()
        self.inner, self.name = inner, name

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        end = text.find("]") + 1 if text.startswith("[") else 0
        return f"{text[:end]}[{self.name}]{'' if end else ' '}{text[end:]}"


def name_console_lines(name: str) -> None:
    """The console's lines say ``[<name>]``: for the jobs of a parallel sweep, whose lines share
    one terminal. The job's log file, which holds its lines alone, is unchanged. Called again,
    the name is replaced."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            inner = handler.formatter or logging.Formatter()
            handler.setFormatter(_Named(getattr(inner, "inner", inner), name))


def log_file_sizes() -> dict[str, int | None]:
    """Each of the root logger's log files and its size now (None: not there yet)."""
    files = [h.baseFilename for h in logging.getLogger().handlers
             if isinstance(h, logging.FileHandler)]  # fmt: skip
    return {f: os.path.getsize(f) if os.path.isfile(f) else None for f in files}


def cut_log_files(sizes: dict[str, int | None]) -> None:
    """The root logger's log files back to ``sizes`` (``log_file_sizes``), those that were
    not there removed: what a refused command logged goes, the lines before it stay. A
    handler writes on at the file's new end."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename in sizes:
            handler.close()  # reopened (appending) at its next line
            size, path = sizes[handler.baseFilename], handler.baseFilename
            if size is None:
                Path(path).unlink(missing_ok=True)
            elif os.path.isfile(path):
                os.truncate(path, size)


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
