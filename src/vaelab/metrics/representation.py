"""A representation: a callable from uint8 images ``[B, C, H, W]`` to codes ``[B, D]``, named
on the command line (``<module>:<function>`` or a TorchScript file), loaded, placed on a
device, and wrapped as the suite's ``encode`` with its output checked (vaelab.metrics.represent
scores it)."""

from __future__ import annotations

import importlib
import itertools
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vaelab.errors import ConfigError
from vaelab.metrics.utils import Encode

Represent = Callable[[torch.Tensor], Any]
"""uint8 images ``[B, C, H, W]`` -> codes ``[B, D]`` (tensor, array, or a tuple led by them)."""

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit")
FORMS = (
    "represent=<module>:<function> (a callable importable from the current folder or the "
    "installed packages, e.g. represent=mypkg.models:encode) or represent=<file.pt> (a "
    "TorchScript file written by torch.jit.save)"
)


def callable_name(represent: Represent) -> str:
    """``<module>:<qualified name>`` of a function, or of the class of a callable object."""
    named = represent if hasattr(represent, "__qualname__") else type(represent)
    return f"{getattr(named, '__module__', '?')}:{named.__qualname__}"


def load_represent(
    spec: str | Path, device: str | torch.device = "cpu"
) -> tuple[Represent, str | None]:
    """The callable that ``spec`` names (``FORMS``) and the sha256 of its file (TorchScript;
    None for an imported callable). ``ConfigError`` in one paragraph when it cannot be had."""
    from vaelab.data.files import file_digest

    text = str(spec)
    module_name, _, attribute = text.partition(":")
    path = Path(text).expanduser()
    if names_file(text):
        check_represent(text)
        try:
            with warnings.catch_warnings():  # torch's deprecation of TorchScript: not the user's
                warnings.filterwarnings("ignore", r"`torch\.jit\.load`", FutureWarning)
                loaded = torch.jit.load(str(path), map_location=device)
        except Exception as error:
            raise ConfigError(
                f"`represent`={text} cannot be read as a TorchScript file ({type(error).__name__}: "
                f"{str(error).strip().splitlines()[0]}); save a model with "
                f"torch.jit.save(torch.jit.script(model), path), or give <module>:<function>."
            ) from None
        return loaded.eval(), file_digest(path)
    if os.getcwd() not in sys.path:  # as `python -m` does: modules of the current folder
        sys.path.append(os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"`represent`={text}: the module {module_name} cannot be imported ({error}). Give "
            f"{FORMS}; a module of your own must be in the current folder, installed, or on "
            f"PYTHONPATH."
        ) from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ConfigError(
                f"`represent`={text}: {module_name} has no attribute {attribute!r}. Give {FORMS}."
            )
        found = getattr(found, part)
    if not callable(found):
        kind = type(found).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise ConfigError(
            f"`represent`={text} is {article} {kind}, not a callable; it must map a uint8 "
            f"image batch [B, C, H, W] to codes [B, D]. Give {FORMS}."
        )
    return found, None


def names_file(spec: str) -> bool:
    """Whether ``spec`` names a file (TorchScript) rather than ``<module>:<function>``."""
    module_name, colon, _ = spec.partition(":")
    path = Path(spec).expanduser()
    return path.is_file() or not colon or "/" in module_name or path.suffix in TORCHSCRIPT_SUFFIXES


def check_represent(spec: str) -> None:
    """``ConfigError`` unless ``spec`` names an existing file or an importable callable (a
    file is read only later, by ``load_represent``)."""
    if not names_file(spec):
        load_represent(spec)
    elif not Path(spec).expanduser().is_file():
        raise ConfigError(
            f"`represent`={spec} is not <module>:<function> and names no file "
            f"({Path(spec).expanduser().absolute()} does not exist); give {FORMS}."
        )


def represent_device(represent: Represent, device: str | torch.device | None) -> torch.device:
    """Where images are handed to ``represent``: ``device`` when named; for ``None`` or
    ``auto`` the device of a torch module's first parameter or buffer, else the CPU."""
    if device not in (None, "auto"):
        from vaelab.runs import pick_device

        return pick_device(str(device))
    if isinstance(represent, torch.nn.Module):
        tensor = next(itertools.chain(represent.parameters(), represent.buffers()), None)
        if tensor is not None:
            return tensor.device
    return torch.device("cpu")


def as_encoder(represent: Represent, name: str) -> Encode:
    """The suite's ``encode(x)`` (floats x = images / 255) around ``represent``: the uint8
    images back (exact: round(255 x)), their codes checked to be ``[B, D]``, finite and of
    one width D for every batch (``ConfigError`` naming ``name`` otherwise)."""
    width: list[int] = []

    def encode(x: torch.Tensor) -> torch.Tensor:
        images = x.mul(255.0).round_().to(torch.uint8)
        out = represent(images)
        if isinstance(out, tuple | list) and len(out) > 0:
            out = out[0]
        try:
            codes = torch.as_tensor(out)
        except Exception:
            codes = None
        shape = tuple(images.shape)
        if codes is None or codes.ndim != 2 or len(codes) != len(images) or codes.shape[1] < 1:
            got = type(out).__name__ if codes is None else f"shape {tuple(codes.shape)}"
            raise ConfigError(
                f"`represent`={name} returned {got} for a uint8 image batch of shape {shape}; "
                f"it must return codes [B, D] = [{shape[0]}, D] (a torch tensor or numpy array, "
                f"or a tuple whose first element is one)."
            )
        if not codes.is_floating_point():
            codes = codes.to(torch.float64)
        if not bool(torch.isfinite(codes).all()):
            bad = int((~torch.isfinite(codes)).any(dim=1).sum())
            raise ConfigError(
                f"`represent`={name} returned NaN or infinite codes for {bad} of {shape[0]} "
                f"images; the metrics need finite codes [B, D]."
            )
        if width and codes.shape[1] != width[0]:
            raise ConfigError(
                f"`represent`={name} returned codes of {codes.shape[1]} dimensions after "
                f"{width[0]} for earlier images; every image needs a code of one size D."
            )
        width[:] = [codes.shape[1]]
        return codes

    return encode
