"""The C allocator's settings for a training or evaluation process on Linux (glibc).

PyTorch has no caching allocator on the CPU: each activation tensor is a ``malloc`` and a
``free``. glibc serves blocks above its mmap threshold (128 KB, raised as such blocks are
freed, to 32 MB at most) with fresh pages from the system and gives them back on ``free``, so
a conv layer at batch 256 (33 MB of activations) has the kernel map and zero its memory anew
on every step. ``keep_freed_memory`` raises the threshold and the heap's trim threshold to
1 GiB: freed blocks stay in the process and are reused. Measured on 2 cores (``make bench``),
the conv net trains at batch 64 at 930 instead of 858 images/s and at batch 256 at 1,012
instead of 575; its decoder evaluates 3,700-3,900 images/s at every batch size instead of
1,900 at 256 and more. The cost: up to 1 GiB of freed memory stays with the process.

The programs (train, eval, compare) and ``vaelab.train`` call it first. It leaves the
allocator alone when the environment already tunes it (``MALLOC_*``, ``GLIBC_TUNABLES``, an
allocator in ``LD_PRELOAD`` such as jemalloc or tcmalloc) or when ``VAELAB_MALLOC=system``.
"""

from __future__ import annotations

import ctypes
import os
import sys

KEEP_BYTES = 1 << 30
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
OPT_OUT = "VAELAB_MALLOC"


def keep_freed_memory(environ: dict[str, str] | None = None) -> bool:
    """Raise glibc's mmap and trim thresholds to ``KEEP_BYTES``; True when they were set."""
    environ = os.environ if environ is None else environ
    if not sys.platform.startswith("linux") or environ.get(OPT_OUT) == "system":
        return False
    chosen_by_user = (
        any(k.startswith("MALLOC_") for k in environ)
        or "malloc" in environ.get("GLIBC_TUNABLES", "")
        or "alloc" in environ.get("LD_PRELOAD", "")
    )
    if chosen_by_user:
        return False
    try:  # the process's own symbols: libc's, without a search for the library file
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt (not glibc)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) and mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
