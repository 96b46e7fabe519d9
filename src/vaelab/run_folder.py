"""The folder a run writes to: whether this run may use it, and its ``.hydra/`` files.

A folder that holds a run (its ``metrics.json`` names the config's fingerprint) is only ever
used again by the same config: a completed run is skipped, an unfinished one resumed. Any
other config, or ``resume=false`` over a completed run, is refused before anything in the
folder is written, so no result is ever replaced by another config's. For that check to come
first, Hydra writes no ``.hydra/`` (``hydra.output_subdir: null``); ``write_hydra_files``
writes the same three files once the run has passed its checks.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, read_write

from vaelab.errors import ConfigError, FolderInUse
from vaelab.io import folder_locked, write_json_atomic

METRICS = "metrics.json"
HYDRA_DIR = ".hydra"
# Keys a run's fingerprint leaves out: those that only say how to start it, and the conv
# weights' memory layout (``arch.channels_last``, new on 2026-12-06: the runs before it match)
HOW_TO_START = ("resume", "ckpt_path", "allow_unsafe_checkpoints")
LAYOUT = "channels_last"


def config_hash(cfg: DictConfig, as_given: bool = False) -> str:
    """A fingerprint of what a run computes: the resolved config with every ``paths.*`` set to
    a placeholder first (so a folder copied elsewhere keeps its fingerprint), the suite's
    settings of where its work runs (``vaelab.metrics.settings.EXECUTION``: the worker count)
    at ``SuiteConfig``'s defaults, so the same run whatever they are (``as_given``: as they
    are, the fingerprint of versions before 2026-12-05; such a record made with another count
    than 1 matches only that count, ``fingerprints``), and without ``HOW_TO_START`` and
    ``arch.LAYOUT`` (with the encoder's and decoder's copies)."""
    unresolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for key in list(unresolved.get("paths") or {}):
        unresolved.paths[key] = f"<paths.{key}>"
    plain = OmegaConf.to_container(unresolved, resolve=True)
    for key in ("paths", *HOW_TO_START):
        plain.pop(key, None)
    arch = plain.get("arch")
    for part in (arch, *(arch.values() if isinstance(arch, dict) else ())):
        if isinstance(part, dict):  # arch itself, its encoder and decoder
            part.pop(LAYOUT, None)
    evaluation = plain.get("evaluation")
    suite = evaluation.get("suite") if isinstance(evaluation, dict) else None
    if isinstance(suite, dict) and not as_given:
        # here, not at the top: the metrics load scikit-learn and torch, which the programs'
        # start (config checks, --help, a refusal) does without
        from vaelab.metrics.settings import EXECUTION, SuiteConfig

        suite.update({k: getattr(SuiteConfig(), k) for k in EXECUTION if k in suite})
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprints(cfg: DictConfig) -> tuple[str, str]:
    """``config_hash(cfg)`` and the one versions before 2026-12-05 recorded for it: a folder
    holds a run of ``cfg`` when its record has either."""
    return config_hash(cfg), config_hash(cfg, as_given=True)


def read_record(out_dir: Path) -> dict[str, Any] | None:
    """The folder's ``metrics.json``; None when there is none; ``ConfigError`` when corrupt."""
    path = Path(out_dir) / METRICS
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(
            f"{path} cannot be read ({type(error).__name__}: {error}), so it is unknown what "
            f"this folder holds; nothing in it was changed. Move the file away, or give a new "
            f"folder (hydra.run.dir=... / hydra.sweep.dir=...)."
        ) from None
    if not isinstance(record, dict):
        raise ConfigError(f"{path} is not a vaelab run record; nothing in the folder was changed.")
    return record


def _saved_overrides(out_dir: Path) -> str:
    saved = Path(out_dir) / HYDRA_DIR / "overrides.yaml"
    try:
        overrides = yaml.safe_load(saved.read_text()) or []
    except (OSError, yaml.YAMLError):
        return "its overrides are unknown"
    return f"its overrides: {' '.join(map(str, overrides)) or 'none'}"


def completed_run(
    out_dir: Path, fingerprint: str | tuple[str, ...], resume: bool, shared: bool = False
) -> dict[str, Any] | None:
    """The record of a completed run of this same config in ``out_dir``, to be skipped; None
    when the folder is new or holds an unfinished run of this config (resumed). ``ConfigError``
    when the folder holds another config's run, or a completed one and ``resume`` is false,
    or a run that another live process on this host is training (unless ``shared``: a DDP
    rank > 0 in its chief's folder).
    ``fingerprint``: the config's, or those it may have been recorded under (``fingerprints``)."""
    record = read_record(out_dir)
    if record is None or "config_hash" not in record:
        return None
    status = record.get("status", "unknown")
    new_folder = "give a new folder (hydra.run.dir=... or hydra.sweep.dir=...) or none"
    if not shared and running_elsewhere(record):
        raise FolderInUse(
            f"{out_dir} is in use: process {record.get('pid')} on this host is training a run "
            f"there ({_saved_overrides(out_dir)}), so nothing in the folder was changed. "
            f"Either wait for it to end or {new_folder}, so that this run gets a folder of its "
            f"own (two runs started in the same second share the default folder, which is "
            f"named after that second). If process {record.get('pid')} is not a vaelab run, "
            f"the record is stale: move {METRICS} away."
        )
    known = (fingerprint,) if isinstance(fingerprint, str) else fingerprint
    if record["config_hash"] not in known:
        again = "skip it" if status == "completed" else "resume it"
        raise ConfigError(
            f"{out_dir} already holds another config's {status} run "
            f"({_saved_overrides(out_dir)}); training this config there would replace its "
            f"results, so nothing in the folder was changed. Either {new_folder}, so that "
            f"this run gets a folder of its own, or run that folder's own overrides to {again}."
        )
    if status == "completed" and not resume:
        raise ConfigError(
            f"{out_dir} already holds a completed run of this config, and resume=false would "
            f"train it again over its results; nothing in the folder was changed. To train "
            f"afresh, {new_folder}."
        )
    return record if status == "completed" else None


def claim(
    out_dir: Path, fingerprint: tuple[str, ...], resume: bool, record: dict[str, Any]
) -> dict[str, Any] | None:
    """``completed_run``'s answer, and when the folder is this run's (None) its ``running``
    ``record`` written at once, both under the folder's lock: a second process that starts in
    the same folder meanwhile finds the record and is refused (``running_elsewhere``)."""
    with folder_locked(out_dir):
        previous = completed_run(out_dir, fingerprint, resume)
        if previous is None:
            write_json_atomic(Path(out_dir) / METRICS, record)
    return previous


def write_hydra_files(cfg: DictConfig, out_dir: Path) -> None:
    """``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml``, as Hydra writes them."""
    if not HydraConfig.initialized():
        return
    if Path(out_dir).resolve() != Path(HydraConfig.get().runtime.output_dir).resolve():
        return  # a run inside another job's folder (src/compare.py's sides): not its job
    hydra_cfg = copy.deepcopy(HydraConfig.instance().cfg)
    with read_write(hydra_cfg.hydra):
        hydra_cfg.hydra.output_subdir = HYDRA_DIR  # where these files are, as Hydra says it
    folder = Path(out_dir) / HYDRA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(hydra_cfg, folder / "hydra.yaml")
    OmegaConf.save(hydra_cfg.hydra.overrides.task, folder / "overrides.yaml")


def entries(out_dir: Path) -> set[Path]:
    """What the folder holds now (its top level), to tell later what a run added."""
    return set(Path(out_dir).iterdir()) if Path(out_dir).is_dir() else set()


def remove_added(out_dir: Path, before: set[Path]) -> None:
    """Remove what a refused run added to its folder since ``before`` (``entries``): its
    log, logger files and ``.hydra/``; what was there before is left as it was."""
    for path in entries(out_dir) - before:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def drop_if_empty(out_dir: Path) -> None:
    """Remove the folder Hydra made for a run that was then refused, when nothing is in it
    (``rmdir`` removes only an empty folder: anything written there is kept)."""
    with contextlib.suppress(OSError):
        Path(out_dir).rmdir()


def _update_unfinished(
    out_dir: Path,
    statuses: tuple[str | None, ...],
    known: tuple[str, ...] | None = None,
    **fields: Any,
) -> bool:
    """``metrics.json`` updated with ``fields`` when its status is one of ``statuses`` (None: no
    record yet; the fingerprint and the rest are kept) and, with ``known`` fingerprints, it is
    a run of that config; otherwise left as it is (False)."""
    with folder_locked(out_dir):  # an evaluation may merge into the record meanwhile
        try:
            record = read_record(out_dir)
        except ConfigError:
            return False
        if (record or {}).get("status") not in statuses or running_elsewhere(record or {}):
            return False  # finished, or another live process's to write
        if known is not None and (record or {}).get("config_hash", known[0]) not in known:
            return False  # another config's run
        write_json_atomic(Path(out_dir) / METRICS, {**(record or {}), **fields})
        return True


def interrupted(stop: KeyboardInterrupt) -> dict[str, str]:
    """A record's fields for a run stopped by Ctrl-C: resumable, not running any more; the
    error says where the same command goes on from (``Interrupted``'s message)."""
    return {"status": "interrupted", "error": str(stop) or "stopped by Ctrl-C"}


def restate_interruption(out_dir: Path, message: str) -> bool:
    """An interrupted run's record says ``message`` of how to go on instead of training's own
    (a program that runs training for its own ends and does not resume it)."""
    return _update_unfinished(out_dir, ("interrupted",), error=message)


def mark_failed(out_dir: Path, message: str, known: tuple[str, ...] | None = None) -> bool:
    """``metrics.json`` says ``failed`` with ``message``: a new record, or the running (or
    interrupted, or already failed) one with its fingerprint kept; a completed or unreadable
    record, or another config's (a fingerprint not in ``known``), is left as it is (False)."""
    return _update_unfinished(
        out_dir, (None, "running", "interrupted", "failed"), known, status="failed", error=message
    )


def mark_resumed(out_dir: Path, resumed_in: Path) -> bytes | None:
    """``metrics.json`` of an unfinished run whose training goes on in another folder says
    ``resumed`` and where (``resumed_in``): it is no longer a run that may still finish. A
    completed or unreadable record is left as it is. Returns the file as it was (None: there
    was none), for ``restore_record`` if the run that resumes it is refused."""
    path = Path(out_dir) / METRICS
    before = path.read_bytes() if path.is_file() else None
    _update_unfinished(
        out_dir, (None, "running", "interrupted", "failed", "resumed"), status="resumed",
        resumed_in=str(Path(resumed_in).resolve()),
    )  # fmt: skip
    return before


def restore_record(out_dir: Path, before: bytes | None) -> None:
    """``metrics.json`` put back as it was (``before``: its bytes; None: there was none)."""
    path = Path(out_dir) / METRICS
    if before is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(before)


def owner() -> dict[str, Any]:
    """Who trains a run: this process (its number and when it started) and host, kept in a
    running run's ``metrics.json``."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "pid_started": process_start(pid)}


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat`` field 22),
    so that a later process given the same number is told apart; None where not known."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # fields from 3 on follow the name
    except (OSError, IndexError, ValueError):
        return None


def running_elsewhere(record: dict[str, Any]) -> bool:
    """Whether a ``running`` record belongs to another live process on this host (another
    launch into the same sweep folder): then it is unfinished, not failed."""
    pid = record.get("pid")
    if record.get("status") != "running" or record.get("host") != socket.gethostname():
        return False
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    started, now = record.get("pid_started"), process_start(pid)
    return started is None or now is None or started == now  # else: the number given again
