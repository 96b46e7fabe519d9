"""Checkpoints: written atomically, checked before use, and found again to resume a run.

- ``AtomicCheckpointIO`` writes each checkpoint to a temporary file and renames it, so a
  kill leaves the previous complete checkpoint, never a truncated one.
- ``read_checkpoint`` reads with ``weights_only=True``: a file that needs anything but tensors
  and plain values is refused, so opening a checkpoint from someone else cannot run code.
- ``check_checkpoint`` turns an unreadable or mismatched checkpoint into a ``ConfigError``.
- ``find_resumable`` finds the newest earlier run of the same overrides that did not finish.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from vaelab.errors import ConfigError
from vaelab.metrics.settings import EXECUTION
from vaelab.run_folder import HOW_TO_START, LAYOUT, read_record, running_elsewhere

# Overrides ignored when matching runs: what run_folder.config_hash leaves out of a run's
# fingerprint, or sets to its default there (the suite's EXECUTION settings)
NOT_IDENTITY = (*HOW_TO_START, f"arch.{LAYOUT}", *(f"evaluation.suite.{k}" for k in EXECUTION))


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to ``.<name>.tmp``, fsync, then ``os.replace`` onto the real name."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


# What a vaelab checkpoint holds besides tensors: torch's ``weights_only`` unpickler allows
# exactly these (and nothing that names a class or a function), so loading cannot run code.
# The random states are kept as lists (``callbacks.RandomState``), the config as plain values.
PLAIN_TYPES = (dict, list, tuple, str, int, float, bool, type(None), torch.Tensor, torch.Size)

log = logging.getLogger(__name__)


def _refused_global(error: Exception) -> str | None:
    """The class or function a refused pickle asks for, from torch's message; None when the
    unpickler stopped for another reason (bytes that are no pickle at all)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    return found.group(1) if found else None


def read_checkpoint(path: str | Path, allow_unsafe: bool = False) -> dict[str, Any]:
    """The checkpoint at ``path``, read with ``weights_only=True`` (tensors and ``PLAIN_TYPES``
    only, so reading it cannot run code from it); ``ConfigError`` when it cannot be read.
    ``allow_unsafe`` reads it with the full unpickler, for a file the user trusts."""
    if allow_unsafe:
        log.warning(
            "allow_unsafe_checkpoints=true: reading %s with weights_only=False, which runs any "
            "code stored in the file",
            path,
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not allow_unsafe)
    except pickle.UnpicklingError as error:
        refused = _refused_global(error)
        if refused is None:  # no pickle that names a class: bytes of something else
            raise _unreadable(path, "UnpicklingError: not a pickle torch can read") from None
        raise ConfigError(
            f"{path} is not a plain vaelab checkpoint: it holds a `{refused}` "
            f"object, and a vaelab checkpoint holds only tensors and plain values. Loading it "
            f"would run code stored in the file, so it was not loaded. Use a checkpoint written "
            f"by vaelab, or, only if you trust where the file comes from, pass "
            f"allow_unsafe_checkpoints=true."
        ) from None
    except Exception as error:  # arbitrary bytes fail deep in the unpickler in many ways
        raise _unreadable(path, f"{type(error).__name__}: {error}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ConfigError(f"`ckpt_path`={path} holds no model weights (no 'state_dict').")
    return checkpoint


def _unreadable(path: str | Path, reason: str) -> ConfigError:
    return ConfigError(
        f"`ckpt_path`={path} cannot be read as a checkpoint ({reason}); the file may be "
        f"truncated or not a vaelab checkpoint. Use another checkpoint, e.g. the run's "
        f"checkpoints/last.ckpt."
    )


def check_state(path: str | Path, state: dict[str, torch.Tensor], module: nn.Module) -> None:
    """Raise ``ConfigError`` unless ``state`` (read from ``path``) fits ``module``'s shapes."""
    expected = module.state_dict()
    mismatched = [
        f"{k} {tuple(state[k].shape) if k in state else 'missing'} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k not in state or state[k].shape != v.shape
    ]
    unexpected = sorted(set(state) - set(expected))
    if mismatched or unexpected:
        shown = "; ".join(mismatched[:3] + [f"{k} unexpected" for k in unexpected[:2]])
        raise ConfigError(
            f"`ckpt_path`={path} was trained with a different architecture or model than "
            f"this config ({len(mismatched) + len(unexpected)} tensors differ: {shown}). "
            f"Resume with the same model, arch and size overrides as that run (see its "
            f".hydra/overrides.yaml)."
        )


def check_checkpoint(path: str | Path, module: nn.Module, allow_unsafe: bool = False) -> None:
    """Raise ``ConfigError`` unless ``path`` is a readable checkpoint of ``module``'s shapes."""
    check_state(path, read_checkpoint(path, allow_unsafe)["state_dict"], module)


def load_weights(path: str | Path, module: nn.Module, allow_unsafe: bool = False) -> int:
    """Load the weights of checkpoint ``path`` into ``module`` (checked first); returns the
    training step the checkpoint was written at."""
    checkpoint = read_checkpoint(path, allow_unsafe)
    check_state(path, checkpoint["state_dict"], module)
    module.load_state_dict(checkpoint["state_dict"])
    return int(checkpoint.get("global_step", 0))


def lay_out_as_parameters(optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """Give each optimizer state tensor shaped as its parameter that parameter's strides.

    ``Optimizer.load_state_dict`` keeps the strides a checkpoint saved, so one from before the
    conv weights were NHWC (2026-12-06) restores NCHW moments beside NHWC weights: the same
    values, but CUDA's foreach Adam takes its fast path only on equal strides."""
    for optimizer in optimizers:
        for param, state in optimizer.state.items():
            for key, value in state.items():
                if (isinstance(value, torch.Tensor) and value.shape == param.shape
                        and value.stride() != param.stride()):  # fmt: skip
                    state[key] = value.new_empty_strided(param.shape, param.stride()).copy_(value)


def _identity(overrides: list[str]) -> list[str]:
    return sorted(o for o in overrides if o.split("=")[0].lstrip("+~") not in NOT_IDENTITY)


def find_resumable(log_dir: str | Path, overrides: list[str], exclude: str | Path) -> Path | None:
    """``last.ckpt`` of the newest earlier run under ``log_dir/runs`` with the same overrides,
    when that run did not complete; None when there is none, or the newest one completed, is
    still training in a live process on this host, or has a record that cannot be read."""
    runs: list[tuple[float, Path]] = []
    for saved in Path(log_dir, "runs").glob("*/*/.hydra/overrides.yaml"):
        run = saved.parent.parent
        last = run / "checkpoints" / "last.ckpt"
        if run.resolve() == Path(exclude).resolve() or not last.is_file():
            continue
        if _identity(yaml.safe_load(saved.read_text()) or []) == _identity(overrides):
            runs.append((last.stat().st_mtime, run))
    if not runs:
        return None
    newest = max(runs)[1]
    try:
        record = read_record(newest) or {}
    except ConfigError:  # its record cannot be read: whether it finished is unknown
        return None
    if record.get("status") == "completed":
        log.info("the newest run of these overrides, %s, completed: this one trains afresh",
                 newest)  # fmt: skip
        return None
    if running_elsewhere(record):  # still training in another process: not to be taken over
        log.info("the newest run of these overrides, %s, is training in process %s: this one "
                 "trains afresh", newest, record.get("pid"))  # fmt: skip
        return None
    return newest / "checkpoints" / "last.ckpt"
