"""src/report.py's numbers: mean ± std over seeds per β, on job folders in the real format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vaelab.report import renamed, write_report

from .conftest import ROOT


def job(sweep: Path, name: str, overrides: list[str], record: dict) -> None:
    (sweep / name / ".hydra").mkdir(parents=True)
    (sweep / name / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (sweep / name / "metrics.json").write_text(json.dumps(record))


def test_report_gives_mean_and_std_over_seeds_and_lists_failures(tmp_path: Path):
    done = {"status": "completed", "model": "beta_vae"}
    job(tmp_path, "0_b1_s0", ["beta=1", "seed=0"], {**done, "metrics": {"disent/mig": 0.1}})
    job(tmp_path, "1_b1_s1", ["beta=1", "seed=1"], {**done, "metrics": {"disent/mig": 0.3}})
    job(tmp_path, "2_b4_s0", ["beta=4", "seed=0"], {**done, "metrics": {"disent/mig": 0.5}})
    job(tmp_path, "3_b4_s1", ["beta=4", "seed=1"], {"status": "failed", "error": "NaN at 7"})
    markdown, files = write_report(tmp_path)
    assert {f.name for f in files} >= {"results.csv", "report.md", "metrics_vs_beta.png"}
    rows = {line.split(" | ")[1]: line for line in markdown.splitlines() if "beta_vae" in line}
    assert "| 2 | – | 0.200 ± 0.141 |" in rows["1"]  # two seeds: mean 0.2, sample std 0.1·√2
    assert "mean ± sample standard deviation (÷ n − 1)" in markdown
    assert "| 1 | – | 0.500 |" in rows["4"]  # the failed seed is not averaged in; one value: no std
    assert "- `3_b4_s1`: failed NaN at 7" in markdown
    assert (tmp_path / "report.md").read_text().endswith(markdown)


def test_old_dci_keys_are_read_under_the_new_names(tmp_path: Path):
    """A metrics.json written before DCI named its predictor (``disent/dci_d``) and one
    written after (``disent/dci[gbt]/d``) are averaged in one column; the forest's DCI and
    InfoMEC get their own columns."""
    done = {"status": "completed", "model": "beta_vae"}
    old = {"disent/dci_d": 0.2, "disent/dci_c": 0.4, "disent/dci_i_test": 0.9}
    new = {"disent/dci[gbt]/d": 0.4, "disent/dci[gbt]/c": 0.6, "disent/dci[rf]/d": 0.7,
           "disent/infomec[iqr]/m": 0.5}  # fmt: skip
    job(tmp_path, "0_b1_s0", ["beta=1", "seed=0"], {**done, "metrics": old})
    job(tmp_path, "1_b1_s1", ["beta=1", "seed=1"], {**done, "metrics": new})
    assert renamed(old) == {
        "disent/dci[gbt]/d": 0.2, "disent/dci[gbt]/c": 0.4, "disent/dci[gbt]/i_test": 0.9,
    }  # fmt: skip
    assert renamed({"disent/dci_d": 0.1, "disent/dci[gbt]/d": 0.3}) == {"disent/dci[gbt]/d": 0.3}
    markdown, _ = write_report(tmp_path)
    header = next(line for line in markdown.splitlines() if line.startswith("| model"))
    assert "disent/dci_d" not in header
    row = next(line for line in markdown.splitlines() if "beta_vae" in line)
    cells = dict(zip(*(map(str.strip, r.split("|")) for r in (header, row)), strict=True))
    assert cells["disent/dci[gbt]/d"] == "0.300 ± 0.141"  # 0.2 (old key) and 0.4 (new)
    assert cells["disent/dci[rf]/d"] == "0.700 (1 of 2 jobs)"  # one job holds it: no std
    assert cells["disent/infomec[iqr]/m"] == "0.500 (1 of 2 jobs)"


def test_by_model_the_table_has_one_model_column(tmp_path: Path):
    for model, mig in (("qlae", 0.2), ("beta_vae", 0.1)):
        record = {"status": "completed", "model": model, "metrics": {"disent/mig": mig}}
        job(tmp_path, f"{model}_seed=0", [f"model={model}", "seed=0"], record)
    markdown, _ = write_report(tmp_path, by="model")
    lines = markdown.splitlines()
    assert "| model | jobs | steps | disent/mig |" in lines
    assert "| qlae | 1 | – | 0.200 |" in markdown and "| beta_vae | 1 | – | 0.100 |" in markdown


def test_jobs_that_differ_in_another_swept_setting_are_not_averaged_as_seeds(tmp_path: Path):
    """``-m beta=4 arch.latent_dim=5,10 seed=0,1``: one row per latent size, each the mean
    over its two seeds; the seed itself never splits a row."""
    migs = {(5, 0): 0.1, (5, 1): 0.3, (10, 0): 0.6, (10, 1): 0.8}
    for n, ((size, seed), mig) in enumerate(migs.items()):
        record = {"status": "completed", "model": "beta_vae", "metrics": {"disent/mig": mig}}
        job(tmp_path, f"{n}_beta_vae_beta=4_seed={seed}",
            ["beta=4", f"arch.latent_dim={size}", f"seed={seed}"], record)  # fmt: skip
    markdown, _ = write_report(tmp_path)
    lines = markdown.splitlines()
    assert "| model | beta | arch.latent_dim | jobs | steps | disent/mig |" in lines
    assert "| beta_vae | 4 | 5 | 2 | – | 0.200 ± 0.141 |" in lines
    assert "| beta_vae | 4 | 10 | 2 | – | 0.700 ± 0.141 |" in lines
    assert "overrides" not in (tmp_path / "results.csv").read_text().splitlines()[0]
    assert (tmp_path / "metrics_vs_beta.png").is_file()


def test_an_optuna_searchs_floats_are_shown_to_six_digits_and_kept_whole_in_the_csv(
    tmp_path: Path,
):
    lrs = [0.00031622776601683794, 0.0012345678901234567]
    for n, (lr, mig) in enumerate(zip(lrs, (0.25, 0.5), strict=True)):
        record = {"status": "completed", "model": "beta_vae", "metrics": {"disent/mig": mig}}
        job(tmp_path, f"{n}_beta_vae_beta=3.1998332897451096_seed=0",
            ["beta=3.1998332897451096", f"optimizer.lr={lr}", "seed=0"], record)  # fmt: skip
    markdown, _ = write_report(tmp_path)
    assert "| beta_vae | 3.19983 | 0.000316228 | 1 | – | 0.250 |" in markdown.splitlines()
    assert "| beta_vae | 3.19983 | 0.00123457 | 1 | – | 0.500 |" in markdown.splitlines()
    assert "0.0012345678901234567" in (tmp_path / "results.csv").read_text()


@pytest.mark.parametrize(
    ("folder", "words"),
    [("missing", "is not a folder"), ("one_run", "is the folder of one run, not of a sweep"),
     ("empty", "holds no job folders")],
)  # fmt: skip
def test_a_folder_without_a_sweep_is_said_plainly(tmp_path: Path, folder: str, words: str):
    (tmp_path / "empty").mkdir()
    (tmp_path / "one_run" / ".hydra").mkdir(parents=True)
    (tmp_path / "one_run" / ".hydra" / "overrides.yaml").write_text("- beta=4\n")
    (tmp_path / "one_run" / "metrics.json").write_text('{"status": "completed"}')
    before = sorted(tmp_path.rglob("*"))
    result = subprocess.run([sys.executable, str(ROOT / "src" / "report.py"),
                             str(tmp_path / folder)], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2
    message = result.stderr.strip()
    assert message == (f"error: {tmp_path / folder} {words}" + message.split(words, 1)[1])
    assert "give the folder a sweep was written to" in message and len(message.splitlines()) == 1
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_beta_not_swept_is_read_from_the_jobs_saved_config(tmp_path: Path):
    """``-m optimizer.lr=1e-3,1e-4``: β is the config's (4), not None; one row per lr."""
    for n, lr in enumerate((0.001, 0.0001)):
        record = {"status": "completed", "model": "beta_vae", "metrics": {"disent/mig": lr * 100}}
        job(tmp_path, f"{n}_beta_vae_beta=4_seed=0", [f"optimizer.lr={lr}"], record)
        (tmp_path / f"{n}_beta_vae_beta=4_seed=0" / ".hydra" / "config.yaml").write_text(
            yaml.safe_dump({"beta": 4, "optimizer": {"lr": lr}})
        )
    markdown, _ = write_report(tmp_path)
    assert "| model | beta | optimizer.lr | jobs | steps | disent/mig |" in markdown
    assert "| beta_vae | 4 | 0.0001 | 1 | – | 0.010 |" in markdown and "None" not in markdown


def test_jobs_evaluated_with_different_settings_are_not_averaged(tmp_path: Path):
    """Four seeds of β = 4: seeds 0 and 1 as trained (their evaluations differ only in the
    seed and the worker count, which decide no value), seed 2 also re-evaluated by
    ``src/eval.py evaluation=full``, seed 3 trained with 1,000 training codes: three rows;
    without seed 3, the rows are told apart by the re-evaluation alone."""
    suite = {"num_train": 10000, "num_test": 5000, "jobs": "auto"}
    cases = [(0, 0.1, suite, None), (1, 0.3, {**suite, "jobs": 1}, None),
             (2, 0.6, suite, {"suite": {"num_train": 10000}, "seed": 2}),
             (3, 0.9, {**suite, "num_train": 1000}, None)]  # fmt: skip
    for seed, mig, trained, full in cases:
        record = {"status": "completed", "model": "beta_vae", "metrics": {"disent/mig": mig}}
        if full is not None:
            record["evaluations"] = {"full": {"settings": full, "file": "evaluation/full.json"}}
        name = f"{seed}_beta_vae_beta=4_seed={seed}"
        job(tmp_path, name, ["beta=4", f"seed={seed}"], record)
        saved = {"beta": 4, "evaluation": {"seed": seed, "suite": trained, "iwae_k": 1000}}
        (tmp_path / name / ".hydra" / "config.yaml").write_text(yaml.safe_dump(saved))
    markdown, _ = write_report(tmp_path)
    lines = markdown.splitlines()
    assert "| model | beta | evaluated | jobs | steps | disent/mig |" in lines
    assert "| beta_vae | 4 | evaluation.suite.num_train=10000 | 2 | – | 0.200 ± 0.141 |" in lines
    assert "| beta_vae | 4 | evaluation.suite.num_train=10000; full | 1 | – | 0.600 |" in lines
    assert "| beta_vae | 4 | evaluation.suite.num_train=1000 | 1 | – | 0.900 |" in lines
    (tmp_path / "3_beta_vae_beta=4_seed=3" / "metrics.json").unlink()  # not completed: ignored
    lines = write_report(tmp_path)[0].splitlines()
    assert "| beta_vae | 4 | as trained | 2 | – | 0.200 ± 0.141 |" in lines
    assert "| beta_vae | 4 | full | 1 | – | 0.600 |" in lines
    assert any(line.startswith("evaluated: what sets the evaluations") for line in lines)
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert "evaluated" in header and "evaluated_with" not in header


def test_jobs_evaluated_alike_have_no_evaluated_column(tmp_path: Path):
    """A sweep over the evaluation itself (``-m evaluation=fast,full``) is told apart by that
    override; the evaluations' settings add no column."""
    for n, (evaluation, num_train) in enumerate((("fast", 10000), ("full", 20000))):
        record = {"status": "completed", "model": "beta_vae", "metrics": {"disent/mig": 0.1}}
        name = f"{n}_beta_vae_beta=4_seed=0"
        job(tmp_path, name, ["beta=4", f"evaluation={evaluation}"], record)
        saved = {"beta": 4, "evaluation": {"suite": {"num_train": num_train}}}
        (tmp_path / name / ".hydra" / "config.yaml").write_text(yaml.safe_dump(saved))
    markdown, _ = write_report(tmp_path)
    assert "| model | beta | evaluation | jobs | steps | disent/mig |" in markdown.splitlines()
    assert "evaluated" not in markdown


def test_an_evaluation_that_only_added_metrics_splits_no_row(tmp_path: Path):
    """UDR computed while seed 2 still trained: seeds 0 and 1 have it, seed 2 does not; their
    MIG all come from the end of training, one row of three jobs (it split into two)."""
    for seed, mig in enumerate((0.1, 0.2, 0.3)):
        record = {"status": "completed", "model": "beta_vae", "metrics": {"disent/mig": mig}}
        name = f"{seed}_beta_vae_beta=4_seed={seed}"
        if seed < 2:
            record["metrics"]["disent/udr"] = 0.5
            udr = {"settings": {"seed": 0}, "file": "evaluation/udr.json"}
            record["evaluations"] = {"udr": udr}
        job(tmp_path, name, ["beta=4", f"seed={seed}"], record)
        if seed < 2:
            (tmp_path / name / "evaluation").mkdir()
            (tmp_path / name / "evaluation" / "udr.json").write_text(
                json.dumps({"metrics": {"disent/udr": 0.5}})
            )
    lines = write_report(tmp_path)[0].splitlines()
    assert "| beta_vae | 4 | 3 | – | 0.200 ± 0.100 | 0.500 ± 0.000 (2 of 3 jobs) |" in lines
    # seed 2 holds a udr value from elsewhere: the evaluation may have changed such a value
    changed = {"status": "completed", "model": "beta_vae",
               "metrics": {"disent/mig": 0.3, "disent/udr": 0.9}}  # fmt: skip
    (tmp_path / "2_beta_vae_beta=4_seed=2" / "metrics.json").write_text(json.dumps(changed))
    assert "| model | beta | evaluated | jobs |" in write_report(tmp_path)[0]


def test_the_settings_that_split_no_row_include_where_the_suite_runs():
    """report.py keeps its own list (importing the metrics would load scikit-learn)."""
    from vaelab.metrics.settings import EXECUTION
    from vaelab.report import UNSCORED

    assert {f"suite.{key}" for key in EXECUTION} <= set(UNSCORED)


def report_cli(*args: str) -> subprocess.CompletedProcess:
    """``python src/report.py <args>``, captured."""
    command = [sys.executable, str(ROOT / "src" / "report.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def model_sweep(sweep: Path) -> None:
    """Jobs as ``-m experiment=compare_2024`` writes them: only the model is swept, each model's
    β (none for QLAE: 0.0) is in its saved config."""
    for n, (model, beta, mig) in enumerate((("beta_vae", 4, 0.1), ("qlae", 0.0, 0.2))):
        name = f"{model}_seed=0"
        record = {"status": "completed", "model": model, "metrics": {"disent/mig": mig + n}}
        job(sweep, name, [f"model={model}", "seed=0"], record)
        saved = {"beta": beta, "model": {"name": model}}
        (sweep / name / ".hydra" / "config.yaml").write_text(yaml.safe_dump(saved))


def test_a_by_key_no_job_has_is_refused_in_one_paragraph_naming_the_keys(tmp_path: Path):
    """``--by modle`` (a typo) wrote a table with a column of None and metrics_vs_modle.png."""
    model_sweep(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    result = report_cli(str(tmp_path), "--by", "modle")
    assert result.returncode == 2, result.stdout
    message = result.stderr.strip()
    assert message.startswith("error: --by modle") and len(message.splitlines()) == 1
    assert "model" in message.split("Did you mean")[0] and "seed" in message
    assert message.endswith("Did you mean --by model?")
    assert sorted(tmp_path.rglob("*")) == before  # nothing written
    assert report_cli(str(tmp_path), "--by", "seed").returncode == 0  # a key the jobs have


def test_a_sweep_over_the_model_alone_is_reported_by_model_without_by(tmp_path: Path):
    """The hint a model-only sweep prints (``report.py <sweep>``) gives its report by model:
    no β column (the jobs' β, read from their configs, differ but were not swept)."""
    model_sweep(tmp_path)
    result = report_cli(str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "| model | jobs | steps | disent/mig |" in lines
    assert "| qlae | 1 | – | 1.200 |" in lines and "| beta |" not in result.stdout
    assert (tmp_path / "metrics_vs_model.png").is_file()
    assert not (tmp_path / "metrics_vs_beta.png").exists()


def test_a_sweep_without_a_completed_job_says_there_is_nothing_to_report(tmp_path: Path):
    job(tmp_path, "0_b1_s0", ["beta=1", "seed=0"], {"status": "failed", "error": "NaN at 7"})
    job(tmp_path, "1_b4_s0", ["beta=4", "seed=0"], {"status": "running"})
    result = report_cli(str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Nothing to report: none of the 2 jobs completed." in result.stdout
    assert "| model" not in result.stdout and "Cells:" not in result.stdout
    assert "- `0_b1_s0`: failed NaN at 7" in result.stdout


def test_a_mean_that_rounds_to_zero_has_no_sign(tmp_path: Path):
    done = {"status": "completed", "model": "beta_vae"}
    job(tmp_path, "0_b1_s0", ["beta=1", "seed=0"], {**done, "metrics": {"disent/mig": -0.0001}})
    lines = write_report(tmp_path)[0].splitlines()
    assert "| beta_vae | 1 | 1 | – | 0.000 |" in lines


def test_help_gives_the_whole_description_and_a_closed_pipe_is_no_traceback(tmp_path: Path):
    shown = " ".join(report_cli("--help").stdout.split())
    assert "vaelab-report outputs/multirun/<date>/<time> [--by beta]``." in shown
    for job_number in range(300):  # a table longer than a pipe holds
        record = {"status": "completed", "model": "beta_vae", "metrics": {"disent/mig": 0.1}}
        job(tmp_path, f"{job_number}_b", [f"beta={job_number + 1}", "seed=0"], record)
    for args in (["--help"], [str(tmp_path)]):
        command = [sys.executable, str(ROOT / "src" / "report.py"), *args]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process.stdout.readline()  # `| head -1`
        process.stdout.close()
        error = process.stderr.read().decode()
        process.wait()
        assert "Traceback" not in error and "BrokenPipeError" not in error, error
