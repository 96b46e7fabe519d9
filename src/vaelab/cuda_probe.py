"""Ask once whether this machine has a GPU, not at every optimizer step.

Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` when it is imported, so that asking
whether CUDA is available does not initialize CUDA (a process forked after that could not
use it). torch caches the device count only once CUDA is initialized, and torch's Adam asks
at every step (``torch.accelerator.is_available()``, its CUDA-graph check). With a CUDA build
of torch (pip's default on Linux) on a machine without a GPU, every step therefore loads
NVML's library again: 0.33 ms of a 2.6 ms step of a small MLP on 2 cores.

``ask_for_gpus_once`` asks NVML once; where it finds no GPU it turns the NVML check off, and
torch's own count answers from then on (cached after its first call, and with no GPU there
is no CUDA that a fork could break). With a GPU it changes nothing: training on it
initializes CUDA, after which torch caches the count. Left as they are: a machine with a GPU
that trains on the CPU (NVML is asked at every step there, found), and a process that hides
its GPUs (``CUDA_VISIBLE_DEVICES=""``) and shows them again later, which then sees none.
"""

from __future__ import annotations

import os

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def ask_for_gpus_once() -> bool:
    """Turn the per-call NVML check off when it finds no GPU; True when it did so."""
    import torch

    if os.environ.get(NVML_CHECK) != "1" or torch.cuda.device_count() > 0:
        return False
    os.environ[NVML_CHECK] = "0"
    return True
