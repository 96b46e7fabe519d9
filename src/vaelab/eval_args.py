"""src/eval.py's command line, checked and rewritten before Hydra parses it.

- ``sweep=<folder>`` names a config group of train.py, so it becomes the key ``sweep_dir``;
  with ``-m`` it becomes the list of the sweep's completed jobs (``run=<job>,<job>,...``);
- existing folders are quoted (job folders hold ``=``, which Hydra's grammar refuses);
- a missing or unusable ``run=`` / ``sweep=`` is said before Hydra creates any folder.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from vaelab.cli import command
from vaelab.config import ConfigError
from vaelab.eval_runs import RESULTS, sweep_jobs
from vaelab.runs import run_config


def register_resolvers() -> None:
    """The resolvers conf/eval.yaml names its log folders with."""
    if not OmegaConf.has_resolver("vaelab_first"):
        OmegaConf.register_new_resolver("vaelab_first", lambda a, b: a if a else b)
        OmegaConf.register_new_resolver("vaelab_basename", lambda path: Path(str(path)).name)


def _quoted(path: str | Path) -> str:
    """A folder as a quoted Hydra value (job folders hold ``=``, which the grammar refuses)."""
    return "'{}'".format(str(path).replace("'", "\\'"))


def expand_sweep(args: list[str]) -> list[str]:
    """``sweep=<folder>`` (a config group's name, so Hydra would read it as one) becomes the
    key ``sweep_dir=<folder>``; with ``-m`` it becomes ``run=<job>,<job>,...`` (the completed
    jobs) instead, so any Hydra launcher runs one evaluation per job, the others listed now.
    An existing folder given as ``run=`` or ``sweep=`` is quoted for Hydra."""
    multirun = bool({"-m", "--multirun"} & set(args))
    out = []
    for arg in args:
        key, _, value = arg.partition("=")
        if key in ("run", "ckpt_path") and Path(value).exists():
            out.append(f"{key}={_quoted(value)}")
            continue
        if key != "sweep":
            out.append(arg)
            continue
        sweep_dir = Path(arg.removeprefix("sweep="))
        if not multirun:
            out.append(f"sweep_dir={_quoted(sweep_dir) if sweep_dir.exists() else sweep_dir}")
            continue
        done, others = sweep_jobs(sweep_dir)
        for job, status in others:
            print(f"not evaluated {job.name}: training {status}")
        if not done:
            raise ConfigError(f"{sweep_dir} holds no job whose training completed.")
        out += [
            "run=" + ",".join(_quoted(j) for j in done),
            f"hydra.sweep.dir={_quoted(sweep_dir / RESULTS)}",
        ]
    return out


def listed_runs(overrides: list[str]) -> list[str]:
    """The folders named by the ``run=`` override among ``overrides`` (one, or a ``-m`` list)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    chosen = [o for o in overrides if o.startswith("run=")]
    try:
        parsed = OverridesParser.create().parse_overrides(chosen)
    except Exception:  # not Hydra's grammar (a missing folder with `=` in it): taken as it is
        return [o.removeprefix("run=") for o in chosen]
    values = [v for o in parsed for v in (o.sweep_iterator() if o.is_sweep_override()
                                          else [o.value()])]  # fmt: skip
    return [getattr(v, "text", str(v)) for v in values]


def target_problem(args: list[str]) -> str | None:
    """A paragraph when ``run=`` / ``sweep=`` is missing or names no usable folder (checked
    before Hydra starts, which would otherwise create the folder for its log)."""
    given = dict(a.split("=", 1) for a in args if a.startswith(("run=", "sweep_dir=")))
    if len(given) != 1:
        return (
            "error: say what to evaluate with exactly one of run=<run folder> (one trained run) "
            "or sweep=<sweep folder> (every completed job of a sweep), e.g. "
            f"{command('eval')} run=outputs/runs/2026-12-02/10-00-00_beta_vae evaluation=full"
        )
    ((key, folder),) = given.items()
    try:
        if key == "run":  # (with -m, a list of the sweep's jobs)
            for run in listed_runs([f"run={folder}"]):
                run_config(run)
        else:
            sweep_jobs(folder.strip("'"))
    except ConfigError as error:
        return f"error: {error}"
    return None
