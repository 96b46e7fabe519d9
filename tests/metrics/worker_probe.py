"""What a worker process has loaded: a module without torch, so that importing it in a
worker (to unpickle ``process_facts``) loads nothing the answer would be about."""

import os
import sys


def process_facts(_: object) -> tuple[int, bool]:
    """A worker's process id, and whether torch is loaded there."""
    return os.getpid(), "torch" in sys.modules


def touch_or_fail(path: str) -> None:
    """Raise for a path named ``fail``; otherwise wait 0.3 s and create the file."""
    import time
    from pathlib import Path

    if Path(path).name == "fail":
        raise RuntimeError("this item fails")
    time.sleep(0.3)
    Path(path).touch()
