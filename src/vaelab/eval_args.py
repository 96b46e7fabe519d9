"""src/eval.py's command line, checked and rewritten before Hydra parses it.

- ``sweep=<folder>`` names a config group of train.py, so it becomes the key ``sweep_dir``;
  with ``-m`` it becomes the list of the sweep's completed jobs (``run=<job>,<job>,...``);
- existing folders are quoted (job folders hold ``=``, which Hydra's grammar refuses);
- a missing or unusable ``run=`` / ``sweep=`` / ``represent=`` is said before Hydra creates
  any folder; ``represent=`` without ``data=`` scores on dsprites (``with_default_data``).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from vaelab.cli import command
from vaelab.errors import ConfigError
from vaelab.eval_runs import RESULTS, sweep_jobs, training_status
from vaelab.runs import run_config

DEFAULT_DATA = "dsprites"  # what represent= is scored on without data=


def register_resolvers() -> None:
    """The resolvers conf/eval.yaml names its log folders with."""
    if not OmegaConf.has_resolver("vaelab_first"):
        OmegaConf.register_new_resolver("vaelab_first", lambda a, b: a if a else b)
        OmegaConf.register_new_resolver("vaelab_basename", lambda path: Path(str(path)).name)
    if not OmegaConf.has_resolver("vaelab_eval_dir"):
        OmegaConf.register_new_resolver("vaelab_eval_dir", eval_dir)


def represent_name(spec: str) -> str:
    """A folder name for ``represent=<spec>``: the function's name, or the file's stem."""
    module, colon, attribute = str(spec).partition(":")
    name = attribute.rsplit(".", 1)[-1] if colon and "/" not in module else Path(spec).stem
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "represent"


def eval_dir(run, sweep_dir, out, represent, dated: str) -> str | None:
    """Where eval.log goes: the run (or sweep) folder; for ``represent=``, ``out`` or
    ``<dated>_<its name>`` (``outputs/eval/<date>/<time>_<name>``)."""
    for folder in (run, sweep_dir, out):
        if folder:
            return str(folder)
    return f"{dated}_{represent_name(represent)}" if represent else None


def with_default_data(args: list[str]) -> list[str]:
    """``args`` with ``data=dsprites`` added when ``represent=`` is given without ``data=``."""
    keys = {a.split("=", 1)[0] for a in args}
    if "represent" in keys and "data" not in keys:
        return [*args, f"data={DEFAULT_DATA}"]
    return args


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
        if key in ("run", "ckpt_path", "represent", "out") and Path(value).exists():
            out.append(f"{key}={_quoted(value)}")
            continue
        if key != "sweep":
            out.append(arg)
            continue
        sweep_dir = Path(arg.removeprefix("sweep="))
        if not multirun:
            out.append(f"sweep_dir={_quoted(sweep_dir) if sweep_dir.exists() else sweep_dir}")
            continue
        done, others = sweep_jobs(sweep_dir)  # ConfigError when none completed
        for job, status in others:
            print(f"not evaluated {job.name}: {training_status(status)}")
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
    """A paragraph when ``run=`` / ``sweep=`` / ``represent=`` is missing, names no usable
    folder or callable, or when they are mixed; for ``evaluation=none`` (checked before Hydra
    starts, which would otherwise create the folder for its log)."""
    given = dict(
        a.split("=", 1) for a in args if a.startswith(("run=", "sweep_dir=", "represent="))
    )
    if "evaluation=none" in args:
        return ("error: evaluation=none computes nothing (it turns the end-of-run evaluation "
                "off); choose evaluation=fast, full, or udr for a sweep.")  # fmt: skip
    if "represent" in given:
        return represent_problem(args, given)
    data_keys = [
        a.split("=", 1)[0] for a in args if a.lstrip("+~").startswith(("data=", "data.", "out="))
    ]
    if data_keys:
        return (
            f"error: {data_keys[0].lstrip('+~')}= goes with represent=<module>:<function> (a "
            f"model's codes scored on a data set); a trained run is evaluated on the data it "
            f"was trained with, and its results go into its own folder. Drop "
            f"{data_keys[0].lstrip('+~')}=, or give represent= instead of run= / sweep=."
        )
    if len(given) != 1:
        return (
            "error: say what to evaluate with exactly one of run=<run folder> (one trained run), "
            "sweep=<sweep folder> (every completed job of a sweep) or "
            "represent=<module>:<function> (any model's codes), e.g. "
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


def represent_problem(args: list[str], given: dict[str, str]) -> str | None:
    """A paragraph when ``represent=`` comes with ``run=`` / ``sweep=`` / ``-m``, or names
    no callable or file (vaelab.metrics.representation.check_represent)."""
    from vaelab.metrics.representation import check_represent

    others = [k.replace("sweep_dir", "sweep") for k in given if k != "represent"]
    if others or {"-m", "--multirun"} & set(args):
        mixed = f"{others[0]}=" if others else "-m"
        return (
            f"error: represent= and {mixed} cannot go together: represent=<module>:<function> "
            f"scores one model's codes on a data set (data=) and writes them to out=<folder>, "
            f"while run=<folder> and sweep=<folder> evaluate trained vaelab runs in their own "
            f"folders. Give one of them, e.g. {command('eval')} represent=mypkg.models:encode "
            f"data=dsprites evaluation=fast."
        )
    try:
        check_represent(given["represent"].strip("'"))
    except ConfigError as error:
        return f"error: {error}"
    return None
