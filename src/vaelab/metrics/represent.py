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

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vaelab.data.base import GroundTruthSource
from vaelab.errors import ConfigError
from vaelab.metrics.codes import Images
from vaelab.metrics.representation import (
    Represent,
    as_encoder,
    callable_name,
    load_represent,
    represent_device,
)
from vaelab.metrics.settings import METRICS, make_config
from vaelab.metrics.suite import run_suite, source_notes

log = logging.getLogger(__name__)


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
    beside: int = 1,
) -> tuple[dict[str, float], list[str]]:
    """The suite's values for ``represent``'s codes of ``source`` (``images``: the images
    of source indices as ``represent`` sees them, default ``source.images``), and notes
    on what they do not say themselves (binned factors, fairness skipped), as
    ``vaelab.evaluate.Evaluator`` makes them for a trained model; ``beside``: as
    ``run_suite``'s."""
    check_factors(source)
    notes, metrics = source_notes(source, metrics)
    for note in notes:
        log.info("%s: %s", source.name, note)
    if isinstance(represent, torch.nn.Module):
        represent.eval()  # dropout off, batch norm from its running statistics
    where = represent_device(represent, device)
    result = run_suite(
        source, as_encoder(represent, name), seed, metrics, images=images, device=where,
        beside=beside, **suite,
    )  # fmt: skip
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
    if isinstance(metrics, str):  # metrics="mig": one metric, not its letters
        chosen = [metrics]
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
    except Exception as error:  # an unknown option or key, said as the programs say it
        from vaelab.hydra_errors import composition_error

        detail = composition_error(error) or " ".join(str(error).split())
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
