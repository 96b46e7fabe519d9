"""Read a sweep folder and answer "how does disentanglement change with β?".

Each job folder holds ``.hydra/overrides.yaml`` and ``metrics.json``. ``collect_jobs`` turns
them into rows; ``write_report`` writes ``results.csv``, ``report.md`` and PNG plots: every
metric against β (mean ± std over seeds, one line per model) and the reconstruction against
each disentanglement metric coloured by β (the trade-off). Failed jobs are listed. A sweep of
the model alone is grouped by model (``default_by``); ``by`` a key no job has is refused.

Jobs of ``experiment=reproduce_dsprites`` are grouped by their ``reproduce`` row, and the
values their config names as published (``reproduce.published``) stand beside the measured
ones, with the sources under the table.

Keys of earlier metrics.json files are read under today's names (``RENAMED``, e.g.
``disent/dci_d`` -> ``disent/dci[gbt]/d``), so old and new sweeps share a table.

Jobs whose values come from evaluations with different settings (some re-evaluated by
``src/eval.py`` with ``evaluation=full``, or evaluated with another ``evaluation.suite``) are
not averaged together: the ``evaluated`` column tells their rows apart (``label_evaluations``).
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import yaml

from vaelab.hydra_errors import did_you_mean

# Metrics shown in the table and plotted against β, when present.
KEY_METRICS = (
    "test/elbo", "test/recon", "test/kl", "test/nll_iw", "test/active_units", "test/psnr",
    "test/ssim", "test/fid", "test/kid",
    "disent/mig", "disent/dci[gbt]/d", "disent/dci[gbt]/c", "disent/sap", "disent/modularity",
    "disent/beta_vae_eval", "disent/factor_vae_eval", "disent/irs", "disent/gaussian_tc",
    "disent/mutual_info", "disent/sample_efficiency_lr", "disent/fairness", "disent/udr",
    "disent/udr[spearman]",
    "disent/dci[rf]/d", "disent/dci[rf]/c",
    "disent/infomec[range]/m", "disent/infomec[range]/e", "disent/infomec[range]/c",
    "disent/infomec[iqr]/m", "disent/infomec[iqr]/e", "disent/infomec[iqr]/c",
    "disent/dci_es[rf]/e", "disent/dci_es[rf]/s",
)  # fmt: skip
DISENTANGLEMENT = tuple(k for k in KEY_METRICS if k.startswith("disent/"))
# Keys of earlier versions -> today's: DCI names its predictor (gradient-boosted trees).
RENAMED = {
    "disent/dci_d": "disent/dci[gbt]/d",
    "disent/dci_c": "disent/dci[gbt]/c",
    "disent/dci_i_train": "disent/dci[gbt]/i_train",
    "disent/dci_i_test": "disent/dci[gbt]/i_test",
}


def renamed(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with the keys of earlier versions under today's names (``RENAMED``); a key
    present under both names keeps today's value."""
    out = {RENAMED.get(k, k): v for k, v in metrics.items() if k not in RENAMED}
    for old, new in RENAMED.items():
        if old in metrics:
            out.setdefault(new, metrics[old])
    return out


def _value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def job_record(path: Path) -> tuple[dict[str, Any], str]:
    """A job's metrics.json and its status; an unreadable file is a status, not a crash."""
    if not path.is_file():
        return {}, "no metrics.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return {"error": f"{path.name} cannot be read ({error})"}, "unreadable metrics.json"
    if not isinstance(record, dict):
        return {"error": f"{path.name} is not a run record"}, "unreadable metrics.json"
    return record, record.get("status", "no status")


def collect_jobs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per job folder: ``job``, ``status``, ``error``, the overrides and the metrics."""
    rows = []
    sweep_dir = Path(sweep_dir)
    jobs = {p.parent for p in sweep_dir.glob("*/metrics.json")}  # a job refused before
    jobs |= {p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")}  # its .hydra/
    for job in sorted(jobs):
        saved = job / ".hydra" / "overrides.yaml"
        overrides = {}
        for item in (yaml.safe_load(saved.read_text()) or []) if saved.is_file() else []:
            key, _, value = item.lstrip("+~").partition("=")
            overrides[key] = _value(value)
        record, status = job_record(job / "metrics.json")
        rows.append({
            "job": job.name, "status": status, "error": record.get("error", ""),
            "model": overrides.get("model", record.get("model", "beta_vae")),
            "step": record.get("step"), **overrides, **renamed(record.get("metrics", {})),
            "overrides": tuple(overrides),
        })  # fmt: skip
        saved = _saved_config(job / ".hydra" / "config.yaml")
        if "beta" not in overrides and isinstance(saved.get("beta"), int | float):
            rows[-1]["beta"] = saved["beta"]  # not swept: the value the job was trained with
        published = _published(saved)
        if published:
            rows[-1]["published"] = published
        rows[-1]["evaluated_with"] = _evaluations(saved, record)
        rows[-1]["evaluated_keys"] = _evaluated_keys(job, record)
    label_evaluations(rows)
    return rows


# Evaluation settings that decide no value: its seed (a repeat's), where the work runs
# (metrics.settings.EXECUTION's keys of the suite) and FID's weights file and batch size.
UNSCORED = ("seed", "suite.jobs", "fid.weights", "fid.batch_size")


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"suite.num_train": 10000, ...}``, lists as their text."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif f"{prefix}{key}" not in UNSCORED:
            out[f"{prefix}{key}"] = str(value) if isinstance(value, list) else value
    return out


def _evaluations(saved: dict[str, Any], record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings behind a job's values: ``evaluation`` (its saved config's, run at the end
    of training) and each evaluation ``src/eval.py`` merged into its metrics.json, by name."""
    found = {}
    if isinstance(saved.get("evaluation"), dict):
        found["evaluation"] = _flat(saved["evaluation"])
    evaluations = record.get("evaluations")
    for name, details in evaluations.items() if isinstance(evaluations, dict) else ():
        if isinstance(details, dict) and isinstance(details.get("settings"), dict):
            found[str(name)] = _flat(details["settings"])
    return found


def _evaluated_keys(job: Path, record: dict[str, Any]) -> dict[str, set[str] | None]:
    """The metrics each merged evaluation wrote (its ``evaluation/<name>.json``); None where
    that file cannot be read."""
    found: dict[str, set[str] | None] = {}
    evaluations = record.get("evaluations")
    for name, details in evaluations.items() if isinstance(evaluations, dict) else ():
        try:
            written = json.loads((job / details["file"]).read_text())["metrics"]
            found[str(name)] = set(renamed(written))
        except (OSError, KeyError, TypeError, ValueError):
            found[str(name)] = None
    return found


def label_evaluations(rows: list[dict[str, Any]]) -> None:
    """Each row's ``evaluated``: the settings of the evaluation at the end of training that
    differ between the completed jobs (``evaluation.suite.num_train=1000``), and each
    evaluation ``src/eval.py`` merged into it, with its settings that differ between the jobs
    it was merged into (``full``, ``full: suite.num_train=1000``); ``as trained`` when there
    is nothing to name. An evaluation that only added metrics the jobs without it lack (UDR
    computed before a seed finished) is not named. Rows with the same label were evaluated
    alike."""
    done = [r for r in rows if r["status"] == "completed"]
    names = dict.fromkeys(n for r in done for n in r["evaluated_with"])
    differ, named = {}, {}
    for name in names:
        having = [r["evaluated_with"][name] for r in done if name in r["evaluated_with"]]
        keys = dict.fromkeys(k for d in having for k in d)
        differ[name] = [k for k in keys if len({repr(d.get(k)) for d in having}) > 1]
        without = [r for r in done if name not in r["evaluated_with"]]
        written = [r["evaluated_keys"][name] for r in done if name in r["evaluated_keys"]]
        added_only = bool(without) and None not in written
        if added_only:
            added = set().union(*written)
            added_only = not any(key in r for r in without for key in added)
        named[name] = name != "evaluation" and not added_only
    for row in rows:
        parts = []
        for name, settings in row["evaluated_with"].items():
            shown = [f"{k}={settings.get(k)}" for k in differ.get(name, ())]
            if name == "evaluation":
                parts += [f"evaluation.{k}" for k in shown]
            elif named.get(name, True):
                parts.append(f"{name}: {', '.join(shown)}" if shown else name)
        row["evaluated"] = "; ".join(parts) or "as trained"


def _saved_config(config: Path) -> dict[str, Any]:
    """A job's saved ``.hydra/config.yaml`` as plain data (empty when it cannot be read)."""
    try:
        saved = yaml.safe_load(config.read_text()) if config.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _published(saved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``reproduce.published`` of a job's saved config: ``{metric: {value, std?, source}}``."""
    reproduce = saved.get("reproduce")
    published = reproduce.get("published") if isinstance(reproduce, dict) else None
    return published if isinstance(published, dict) else {}


def varied(rows: list[dict[str, Any]]) -> list[str]:
    """The keys set on the jobs' command lines (their overrides) whose values differ between
    the jobs: what the sweep varies. A β read from each job's saved config is not one."""
    keys = dict.fromkeys(key for row in rows for key in row.get("overrides", ()))
    return [key for key in keys if differs(rows, key)]


def differs(rows: list[dict[str, Any]], key: str) -> bool:
    """Whether the jobs' values of ``key`` are not all the same (a missing one is None)."""
    return len({repr(row.get(key)) for row in rows}) > 1


def default_by(rows: list[dict[str, Any]]) -> str:
    """The swept key to group by: ``reproduce`` for a reproduction's jobs; ``model`` when the
    sweep varies the model and not β (``experiment=compare_2024``); else ``beta``."""
    if any("reproduce" in row for row in rows):
        return "reproduce"
    swept = varied(rows)
    return "model" if "model" in swept and "beta" not in swept else "beta"


def by_problem(rows: list[dict[str, Any]], by: str, sweep_dir: Path) -> str | None:
    """Why no report can be grouped by ``by`` (no job has that key: a typo), naming the keys
    the jobs have, those that differ between them first; None when they have it."""
    keys = ["model", *(k for k in ("beta", "reproduce") if any(k in row for row in rows))]
    keys = list(dict.fromkeys([*keys, *(k for row in rows for k in row.get("overrides", ()))]))
    if by in keys:
        return None
    differ = [k for k in keys if differs(rows, k)]
    alike = [k for k in keys if k not in differ]
    named = [f"differ between them: {', '.join(differ)}" if differ else "",
             f"the same in all: {', '.join(alike)}" if alike else ""]  # fmt: skip
    have = "; ".join(n for n in named if n)
    return (
        f"--by {by}: no job in {sweep_dir} has that key, so there is nothing to group by; "
        f"the keys its jobs have ({have}).{did_you_mean(by, keys, '--by ')}"
    )


# Overrides that differ between repeats of one setting: averaged over, never a row of their own.
REPEATS = ("seed", "ckpt_path", "resume")
NOT_CSV = ("published", "overrides", "evaluated_with", "evaluated_keys")  # bookkeeping


def swept_settings(rows: list[dict[str, Any]], by: str) -> list[str]:
    """The override keys, besides the model, ``by`` and the seed, whose values differ between
    completed jobs (``arch.latent_dim=5,10``, an Optuna search's learning rates): jobs that
    differ in one are different settings, shown apart, not averaged as if they were seeds.
    Then ``evaluated`` where jobs alike in those were evaluated differently."""
    done = [row for row in rows if row["status"] == "completed"]
    keys = dict.fromkeys(key for row in done for key in row.get("overrides", ()))
    settings = [
        key for key in keys
        if key not in ("model", by, *REPEATS) and len({repr(row.get(key)) for row in done}) > 1
    ]  # fmt: skip
    labels: dict[tuple, set[str]] = defaultdict(set)
    for row in done:
        labels[(row["model"], row.get(by), *(row.get(k) for k in settings))].add(row["evaluated"])
    return settings + ["evaluated"] * any(len(found) > 1 for found in labels.values())


def _order(value: Any) -> tuple:
    """A sort key for mixed values: numbers in order, then the rest by their text."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return (0, value, "") if number else (1, 0, str(value))


def summarize(rows: list[dict[str, Any]], by: str = "beta") -> list[dict[str, Any]]:
    """Mean and sample std (÷ n − 1) over seeds of each key metric, per (model, ``by``, each
    other swept setting); completed jobs only; the steps trained (their range) and the
    published values of the group's first job."""
    settings = swept_settings(rows, by)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "completed":
            groups[(row["model"], row.get(by), *(row.get(k) for k in settings))].append(row)
    table = []
    for group, members in sorted(groups.items(), key=lambda kv: [_order(v) for v in kv[0]]):
        model, value, *others = group
        entry: dict[str, Any] = {"model": model, by: value, "settings": settings}
        entry.update(zip(settings, others, strict=True), jobs=len(members))
        entry["published"] = members[0].get("published", {})
        steps = sorted({m["step"] for m in members if isinstance(m.get("step"), int)})
        ends = sorted({steps[0], steps[-1]}) if steps else []
        entry["steps"] = "–".join(f"{n:,}" for n in ends) or "–"
        for key in KEY_METRICS:
            values = [m[key] for m in members if isinstance(m.get(key), int | float)]
            if values:
                spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                entry[key] = (float(np.mean(values)), spread, len(values))
        table.append(entry)
    return table


def _cell(entry: dict[str, Any], key: str) -> str:
    """``mean ± std`` over seeds (the value alone from one job; how many jobs hold it when not
    all of the row's do), and ``[published value ± std]`` where one is given."""
    text = "–"
    if key in entry:
        mean, std, count = entry[key]
        text = f"{_fixed(mean)} ± {_fixed(std)}" if count > 1 else _fixed(mean)
        if count < entry["jobs"]:  # the other jobs lack this metric (not evaluated with it)
            text += f" ({count} of {entry['jobs']} jobs)"
    paper = entry["published"].get(key)
    if paper:
        spread = f" ± {_fixed(paper['std'], 2)}" if "std" in paper else ""
        text += f" [{_fixed(paper['value'], 2)}{spread}]"
    return text


def _setting(value: Any) -> str:
    """A swept setting's value as a cell or label: a float to 6 significant digits (an Optuna
    search's 3.1998332897451096 as 3.19983), anything else as it is."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _fixed(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, a negative that rounds to zero without its sign."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _markdown(table: list[dict[str, Any]], by: str, failed: list[dict[str, Any]]) -> str:
    if not table:  # no job completed: no table, no footer
        lines = [f"Nothing to report: none of the {len(failed)} jobs completed."]
        lines += ["", f"Jobs not completed ({len(failed)}):", ""]
        lines += [f"- `{r['job']}`: {r['status']} {r['error']}".rstrip() for r in failed]
        return "\n".join(lines) + "\n"
    keys = [k for k in KEY_METRICS if any(k in e for e in table)]
    grouped = [] if by == "model" else [by]  # by model: one column for it
    grouped += table[0]["settings"] if table else []
    head = ["model", *grouped, "jobs", "steps", *keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in table:
        cells = [str(e["model"]), *(_setting(e[g]) for g in grouped), str(e["jobs"]), e["steps"]]
        cells += [_cell(e, k) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    sources = {
        f"{e[by]}: {k} {_fixed(p['value'], 2)} from {p['source']}"
        for e in table
        for k, p in e["published"].items()
    }
    lines += ["", "Cells: mean ± sample standard deviation (÷ n − 1) over the row's jobs."]
    if "evaluated" in grouped:
        lines += [
            "",
            "evaluated: what sets the evaluations behind a row's values apart from "
            "other rows' (an evaluation by vaelab-eval that some jobs had, or its "
            "settings); `as trained`: the evaluation at the end of training only.",
        ]
    if sources:
        lines += ["", "[published value] from:", ""]
        lines += [f"- {s}" for s in sorted(sources)]
    if failed:
        lines += ["", f"Jobs not completed ({len(failed)}):", ""]
        lines += [f"- `{r['job']}`: {r['status']} {r['error']}".rstrip() for r in failed]
    return "\n".join(lines) + "\n"


def _line(entry: dict[str, Any]) -> str:
    """A plotted line's label: the model, and the other swept settings of its jobs."""
    return " ".join(
        [str(entry["model"]), *(f"{k}={_setting(entry[k])}" for k in entry["settings"])]
    )


def _plot_against(table: list[dict[str, Any]], by: str, path: Path) -> Path | None:
    keys = [k for k in KEY_METRICS if any(k in e for e in table)]
    if not keys:
        return None
    cols = min(4, len(keys))
    fig, axes = plt.subplots(
        math.ceil(len(keys) / cols),
        cols,
        figsize=(4 * cols, 3 * math.ceil(len(keys) / cols)),
        squeeze=False,
    )
    named = not all(isinstance(e[by], int | float) for e in table)  # reproduce's rows
    names = sorted({str(e[by]) for e in table}) if named else []

    def position(value: Any) -> float:
        return float(names.index(str(value))) if named else float(value)

    for ax, key in zip(axes.flat, keys, strict=False):
        for line in sorted({_line(e) for e in table}):
            points = [
                (position(e[by]), *e[key][:2]) for e in table if _line(e) == line and key in e
            ]
            if points:
                x, mean, std = (np.array(v, dtype=float) for v in zip(*points, strict=True))
                ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=line,
                            linestyle="none" if named else "-")  # fmt: skip
        paper = [(position(e[by]), e["published"][key]["value"]) for e in table
                 if key in e["published"]]  # fmt: skip
        if paper:
            ax.scatter(*zip(*paper, strict=True), marker="x", color="black", label="published")
        if named:
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        elif by == "beta" and all(e[by] > 0 for e in table):
            ax.set_xscale("log", base=2)
        ax.set_xlabel(by)
        ax.set_title(key, fontsize=10)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_tradeoff(rows: list[dict[str, Any]], by: str, path: Path) -> Path | None:
    done = [r for r in rows if r["status"] == "completed" and "test/recon" in r]
    keys = [k for k in DISENTANGLEMENT if any(k in r for r in done)]
    if not keys:
        return None
    ncols = min(len(keys), 5)
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4 * ncols, 3.4 * nrows), squeeze=False, layout="constrained"
    )  # titles, labels and colour bar apart
    raw = [r.get(by) for r in done]
    if all(isinstance(v, int | float) or v is None for v in raw):  # β: coloured on a log scale
        colour, label = np.log2(np.maximum([float(v or 0) for v in raw], 1e-3)), f"log2 {by}"
    else:  # named rows (reproduce): one colour each, in sorted order
        names = sorted({str(v) for v in raw})
        colour, label = [names.index(str(v)) for v in raw], f"{by}: " + ", ".join(names)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys, strict=False):
        points = ax.scatter([r["test/recon"] for r in done], [r.get(key, np.nan) for r in done],
                            c=colour, cmap="viridis")  # fmt: skip
        ax.set_xlabel("test/recon (nats)")
        ax.set_title(key, fontsize=10)
    fig.colorbar(points, ax=axes.ravel().tolist(), label=label)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _not_a_sweep(folder: Path) -> str:
    """Why ``folder`` has no report: it is missing, one run's folder, or holds no jobs."""
    if not folder.is_dir():
        problem = "is not a folder"
    elif (folder / ".hydra" / "overrides.yaml").is_file() or (folder / "metrics.json").is_file():
        problem = "is the folder of one run, not of a sweep (its metrics.json holds its results)"
    else:
        problem = "holds no job folders (*/.hydra/overrides.yaml)"
    return (
        f"{folder} {problem}; give the folder a sweep was written to "
        f"(outputs/multirun/<date>/<time>, or the sweep's hydra.sweep.dir)"
    )


class UnknownKey(ValueError):
    """``--by`` names a key no job of the sweep has; the message names those they have."""


def write_report(sweep_dir: str | Path, by: str | None = None) -> tuple[str, list[Path]]:
    """Write results.csv, report.md and plots into ``sweep_dir``; return (markdown, files).
    ``by``: the swept key (default ``default_by``); ``UnknownKey`` before anything is written
    when no job has it."""
    sweep_dir = Path(sweep_dir)
    rows = collect_jobs(sweep_dir)
    if not rows:
        raise FileNotFoundError(_not_a_sweep(sweep_dir))
    problem = by_problem(rows, by, sweep_dir) if by else None
    if problem:
        raise UnknownKey(problem)
    by = by or default_by(rows)
    columns = list(dict.fromkeys(k for row in rows for k in row if k not in NOT_CSV))
    with open(sweep_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    table = summarize(rows, by)
    failed = [r for r in rows if r["status"] != "completed"]
    markdown = _markdown(table, by, failed)
    (sweep_dir / "report.md").write_text(f"# Sweep report: {sweep_dir}\n\n{markdown}")
    files = [sweep_dir / "results.csv", sweep_dir / "report.md"]
    files += [p for p in (_plot_against(table, by, sweep_dir / f"metrics_vs_{by}.png"),
                          _plot_tradeoff(rows, by, sweep_dir / "tradeoff.png")) if p]  # fmt: skip
    return markdown, files
