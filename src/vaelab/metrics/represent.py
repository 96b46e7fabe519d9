"""Any model's representation scored by the disentanglement suite:
``vaelab.metrics.evaluate(represent, data="dsprites")`` here, or
``python src/eval.py represent=<module>:<function> data=dsprites`` (vaelab.eval_runs).

``represent`` maps a uint8 image batch ``[B, C, H, W]`` (a torch tensor, values 0..255, as the
data set holds them) to codes ``[B, D]`` (a torch tensor or a numpy array); a tuple or list,
such as ``(mu, logvar)``, gives its first element. The codes z = represent(x) take the place
of a vaelab model's mean code mu(x): the suite (vaelab.metrics.suite) draws the same images
for the same seed, encodes every distinct image once and scores the codes, so a vaelab
model's ``encode(x)[0]`` passed as ``represent`` gives the values ``src/eval.py run=`` gives.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from vaelab.data.base import GroundTruthSource
from vaelab.errors import ConfigError
from vaelab.metrics.codes import Images
from vaelab.metrics.settings import METRICS, make_config
from vaelab.metrics.suite import run_suite
from vaelab.metrics.utils import Encode

log = logging.getLogger(__name__)

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
        raise ConfigError(
            f"`represent`={text} is a {type(found).__name__}, not a callable; it must map a uint8 "
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


def score_represent(
    represent: Represent,
    source: GroundTruthSource,
    metrics: Sequence[str],
    suite: dict[str, Any],
    seed: int,
    *,
    name: str,
    images: Images | None = None,
    device: str | torch.device | None = None,
) -> tuple[dict[str, float], list[str]]:
    """The suite's values for ``represent``'s codes of ``source`` (``images``: the images
    of source indices as ``represent`` sees them, default ``source.images``), and notes
    on what they do not say themselves (binned factors, fairness skipped), as
    ``vaelab.evaluate.Evaluator`` makes them for a trained model."""
    check_factors(source)
    notes = []
    if source.binned_factors:
        notes.append(
            f"factors {', '.join(source.binned_factors)} take real values: binned into "
            f"equal-width classes for the metrics (data.factor_bins)"
        )
    if not source.is_grid and "fairness" in metrics:
        notes.append(
            "fairness skipped: it needs an image of every combination of the factors' classes"
        )
        metrics = [m for m in metrics if m != "fairness"]
    for note in notes:
        log.info("%s: %s", source.name, note)
    if isinstance(represent, torch.nn.Module):
        represent.eval()  # dropout off, batch norm from its running statistics
    where = represent_device(represent, device)
    result = run_suite(
        source, as_encoder(represent, name), seed, metrics, images=images, device=where, **suite
    )
    return result.values, notes


def check_choice(metrics: Sequence[str], suite: dict[str, Any]) -> None:
    """``ConfigError`` for unknown metric names, ``TypeError`` for unknown suite settings."""
    unknown = [str(m) for m in metrics if str(m) not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metrics {unknown}; choose from {', '.join(METRICS)}.")
    make_config(**suite)


def represent_record(
    label: str,
    sha256: str | None,
    evaluation: str,
    data: str,
    settings: dict[str, Any],
    values: dict[str, float],
    notes: list[str],
    elapsed_s: float,
) -> dict[str, Any]:
    """What ``evaluation/<name>.json`` holds for a representation: a run's record with the
    callable (``represent``, and ``represent_sha256`` of a TorchScript file, else None) and
    the data set instead of the checkpoint, its step and sha256."""
    record = {
        "status": "completed", "evaluation": evaluation, "represent": label,
        "represent_sha256": sha256, "data": data, "settings": settings, "metrics": values,
        "elapsed_s": round(elapsed_s, 3),
    }  # fmt: skip
    if notes:
        record["notes"] = notes
    return record


def evaluate(
    represent: Represent | str | Path,
    data: str | GroundTruthSource | Any = "dsprites",
    metrics: Sequence[str] | None = None,
    seed: int = 0,
    evaluation: str = "fast",
    out: str | Path | None = None,
    device: str | torch.device | None = None,
    overrides: Sequence[str] = (),
    **suite: Any,
) -> dict[str, Any]:
    """Score ``represent`` (module docstring; or a ``"<module>:<function>"`` / TorchScript
    file name) with the suite of ``conf/evaluation/<evaluation>.yaml`` on ``data``: a data
    config's name (``conf/data/<name>.yaml``, composed as the CLI composes it, with
    ``overrides`` such as ``"data.image_size=32"``), a built ``GroundTruthSource``, or an
    ``ImageDataModule``. ``metrics``: the names to run (None: the evaluation's own set);
    ``suite``: ``SuiteConfig`` settings (``num_train=2000``); ``device``: where the images
    are handed over (None: a torch module's own device, else the CPU). A torch module is put
    in eval mode. Returns the record ``src/eval.py`` writes (values under ``"metrics"``,
    e.g. ``result["metrics"]["disent/mig"]``); with ``out``, also writes
    ``<out>/evaluation/<evaluation>.json`` and merges it into ``<out>/metrics.json``.
    ``ConfigError`` (one paragraph) for bad input; nothing is written then."""
    from vaelab.eval_runs import represent_settings, write_evaluation

    start = time.time()
    label = str(represent) if isinstance(represent, str | Path) else callable_name(represent)
    sha256 = None
    if isinstance(represent, str | Path):
        represent, sha256 = load_represent(represent, represent_device(None, device))
    cfg = _compose(evaluation, data if isinstance(data, str) else None, seed, overrides)
    evaluator = build_evaluator(cfg, evaluation)
    chosen = list(evaluator.metrics if metrics is None else metrics)
    settings_suite = {**evaluator.suite, **suite}
    check_choice(chosen, settings_suite)
    source, images, data_name = _data(cfg, data)
    values, notes = score_represent(
        represent, source, chosen, settings_suite, seed, name=label, images=images, device=device
    )
    record = represent_record(
        label, sha256, evaluation, data_name, represent_settings(chosen, settings_suite, seed),
        values, notes, time.time() - start,
    )  # fmt: skip
    if out is not None:
        write_evaluation(Path(out), evaluation, record)
    return record


def _compose(evaluation: str, data: str | None, seed: int, overrides: Sequence[str]):
    """``eval.yaml`` composed with ``evaluation=``, ``data=`` and ``overrides``, as the CLI
    composes it (the configs it reads, the user's folders of ``$VAELAB_CONFIG_PATH``)."""
    from hydra import compose, initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from vaelab.cli import config_path, with_user_configs

    args = [f"evaluation={evaluation}", f"seed={seed}", *([f"data={data}"] if data else [])]
    args = with_user_configs([*args, *overrides])
    where = config_path()
    GlobalHydra.instance().clear()
    if where.startswith("pkg://"):
        context = initialize_config_module(where.removeprefix("pkg://"), version_base="1.3")
    else:
        context = initialize_config_dir(where, version_base="1.3")
    try:
        with context:
            return compose("eval", overrides=args)
    except ConfigError:
        raise
    except Exception as error:  # an unknown option or key: Hydra's own sentence
        detail = " ".join(str(error).split())
        raise ConfigError(f"{' '.join(args)} cannot be composed: {detail}") from None


def build_evaluator(cfg, name: str):
    """The ``Evaluator`` of ``conf/evaluation/<name>.yaml`` (without FID: no model to sample)."""
    from hydra.utils import instantiate

    from vaelab.evaluate import Evaluator

    try:
        evaluator = instantiate(cfg.evaluation, fid=None)
    except Exception as error:
        raise ConfigError(f"evaluation={name} cannot be built: {error}") from None
    if not isinstance(evaluator, Evaluator):
        raise ConfigError(
            f"evaluation={name} builds a {type(evaluator).__name__}, which compares trained "
            f"models; a representation is scored by evaluation=fast or full (or none)."
        )
    return evaluator


def _data(cfg, data: Any) -> tuple[GroundTruthSource, Images | None, str]:
    """The source, the images as its models see them, and the data's name."""
    if isinstance(data, GroundTruthSource):
        return data, None, data.name
    if not isinstance(data, str):
        if isinstance(getattr(data, "source", None), GroundTruthSource):  # an ImageDataModule
            return data.source, data.source_images, data.source.name
        raise ConfigError(
            f"`data` must be a data config's name (dsprites, shapes3d, ...), a "
            f"GroundTruthSource or an ImageDataModule, not a {type(data).__name__}."
        )
    datamodule = build_datamodule(cfg)
    return datamodule.source, datamodule.source_images, data


def build_datamodule(cfg):
    """``cfg.data`` checked (vaelab.config.validate), built and its files checked."""
    from hydra.utils import instantiate

    from vaelab.config import building, validate

    validate(cfg)
    with building("the data (`data`)"):
        datamodule = instantiate(cfg.data)
    check_factors(datamodule.source)
    datamodule.check_available()
    return datamodule


def check_factors(source: Any) -> None:
    """``ConfigError`` unless ``source`` has ground-truth factors (the metrics need them)."""
    if not getattr(source, "has_factors", False):
        raise ConfigError(
            f"{getattr(source, 'name', type(source).__name__)} has no ground-truth factors, so "
            f"the disentanglement metrics cannot score a representation of it; choose data with "
            f"factors (dsprites, shapes3d, mpi3d, factors, ...)."
        )
