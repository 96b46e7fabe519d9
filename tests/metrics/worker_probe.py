"""What a worker process has loaded: a module without torch, so that importing it in a
worker (to unpickle ``process_facts``) loads nothing the answer would be about."""

import os
import sys


def process_facts(_: object) -> tuple[int, bool]:
    """A worker's process id, and whether torch is loaded there."""
    return os.getpid(), "torch" in sys.modules
