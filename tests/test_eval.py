"""src/eval.py through the real CLI: a trained run and a sweep evaluated again without
training, values equal to the in-training evaluation, the skip and force, bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from vaelab.eval_runs import result_path, seed_part

from .conftest import ROOT, TINY, read_metrics, run_cli, run_program
from .metrics.test_sample_quality import without_internet
from .test_sweep import sweep

# A small evaluation: IWAE on 8 images, the shared-code metrics and BetaVAE / FactorVAE, FID
# and KID of 200 samples with the small feature network (not Inception: no weights, CPU time).
EVAL = [
    "evaluation=full",
    "evaluation.iwae_k=8",
    "evaluation.iwae_images=8",
    "evaluation.suite.num_train=200",
    "evaluation.suite.num_test=100",
    "evaluation.suite.batch_size=8",
    "evaluation.suite.num_variance_estimate=200",
    "evaluation.suite.downstream_sizes=[10,100]",
    "evaluation.suite.fairness_per_class=5",
    "evaluation.fid.features={_target_:vaelab.metrics.sample_quality.PixelFeatures}",
    "evaluation.fid.num_samples=200",
]
# For the sweep tests, which check how jobs are found, run and recorded: the same evaluation
# name, without the metrics that train boosted trees (~17 s a job) or FID.
EVAL_LIGHT = [
    *EVAL[:6],
    "evaluation.disentanglement=[mig,sap,irs,unsupervised]",
    "evaluation.quality_images=16",
    "evaluation.fid=null",
]


def eval_cli(*args: str, data: Path, process: bool = False) -> subprocess.CompletedProcess:
    """``python src/eval.py <args>`` (in this process unless ``process``; see run_program)."""
    env = {"VAELAB_DATA_DIR": str(data)}
    if not process:
        return run_program("eval.py", list(args), env)
    cmd = [sys.executable, str(ROOT / "src" / "eval.py"), *args]
    return subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )


def snapshot(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run evaluated at the end of training with ``EVAL``."""
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    keep_all = "callbacks.model_checkpoint.save_top_k=-1"  # step 3 and 6 checkpoints
    result = run_cli(run_dir, *TINY, *EVAL, "~callbacks.progress", keep_all, process=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_eval_equals_the_in_training_evaluation_and_skips_when_done(run_copy: Path):
    data = run_copy.parent / "data"
    trained_values = read_metrics(run_copy)["metrics"]
    checkpoints = snapshot(run_copy / "checkpoints")
    result = eval_cli(f"run={run_copy}", *EVAL, data=data)
    assert result.returncode == 0, result.stderr[-3000:]

    saved = json.loads((run_copy / "evaluation" / "full.json").read_text())
    assert saved["status"] == "completed" and saved["step"] == 6
    assert saved["settings"]["suite"]["num_train"] == 200 and saved["settings"]["seed"] == 0
    values = {k: v for k, v in saved["metrics"].items() if "/time/" not in k}
    assert "disent/beta_vae_eval" in values and "disent/factor_vae_eval" in values
    assert values["test/fid"] > 0 and {"test/kid", "test/kid_std"} <= set(values)
    assert saved["settings"]["fid"]["features"].endswith("PixelFeatures(size=8)")
    # 51 test images: KID's subsets held them, not the 1,000 the settings ask for
    assert saved["settings"]["fid"]["kid_subset_size"] == 1000
    assert ("KID's subsets held 51 images (fewer test images or samples), not "
            "evaluation.fid.kid_subset_size=1000") in saved["notes"]  # fmt: skip
    assert {k: trained_values[k] for k in values} == values  # the same values, exactly
    merged = read_metrics(run_copy)
    assert merged["status"] == "completed" and merged["evaluations"]["full"]["step"] == 6
    assert merged["metrics"]["val/elbo"] == trained_values["val/elbo"]  # nothing else lost
    assert snapshot(run_copy / "checkpoints") == checkpoints  # checkpoints never touched
    log = (run_copy / "eval.log").read_text()
    assert "encoding" in log and "beta_vae" in log and "factor_vae" in log  # progress lines
    # jobs=auto on 200 codes: starting workers would cost more than they save
    assert "classifiers fitted in this process (evaluation.suite.jobs=auto: " in log

    before = snapshot(run_copy)
    # the classifiers in two workers: the same evaluation (settings without `jobs`), skipped
    two = "evaluation.suite.jobs=2"
    again = eval_cli(f"run={run_copy}", *EVAL, two, data=data)
    assert again.returncode == 0 and "skipped" in again.stdout + again.stderr
    after = snapshot(run_copy)
    assert {k: v for k, v in after.items() if k != "eval.log"} == {
        k: v for k, v in before.items() if k != "eval.log"
    }
    assert "jobs" not in saved["settings"]["suite"]
    forced = eval_cli(f"run={run_copy}", *EVAL, two, "force=true", data=data)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert snapshot(run_copy)["evaluation/full.json"] > before["evaluation/full.json"]
    redone = json.loads((run_copy / "evaluation" / "full.json").read_text())["metrics"]
    assert {k: redone[k] for k in values} == values  # two workers: the same values, exactly
    assert "replaces values" not in (run_copy / "eval.log").read_text()
    # other settings replace full.json's values in metrics.json, said value by value
    nll = json.loads((run_copy / "metrics.json").read_text())["metrics"]["test/nll_iw"]
    other = eval_cli(f"run={run_copy}", *EVAL, "evaluation.iwae_k=2", data=data)
    assert other.returncode == 0, other.stderr[-3000:]
    line = next(x for x in (other.stdout + other.stderr).splitlines() if "replaces values" in x)
    assert f"test/nll_iw {nll:.6g} -> " in line, line


def test_another_seed_and_an_earlier_checkpoint_go_to_their_own_files(run_copy: Path):
    data = run_copy.parent / "data"
    earlier = run_copy / "checkpoints" / "step0000003.ckpt"
    assert earlier.is_file()
    args = [f"ckpt_path={earlier}", "seed=1"]
    result = eval_cli(f"run={run_copy}", *EVAL_LIGHT, *args, data=data)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((run_copy / "evaluation" / "full-step3-seed1.json").read_text())
    assert saved["step"] == 3 and saved["settings"]["seed"] == 1
    assert "evaluations" not in read_metrics(run_copy)  # not the final model: not merged


def test_a_sweep_is_evaluated_job_by_job_and_reported(tmp_path: Path):
    """Two seeds of β = 1 evaluated alike are one row of the report; one of them evaluated
    again with other settings is a row of its own (the ``evaluated`` column)."""
    sweep_dir = tmp_path / "sweep"
    trained = sweep(sweep_dir, "beta=1", "seed=0,1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    jobs = sorted(p.parent for p in sweep_dir.glob("*/metrics.json"))
    assert all("disent/mig" not in read_metrics(j)["metrics"] for j in jobs)

    result = eval_cli(f"sweep={sweep_dir}", *EVAL_LIGHT, data=tmp_path / "data")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "evaluation=full of 2 of 2 completed jobs" in result.stdout
    for job in jobs:
        assert read_metrics(job)["evaluations"]["full"]["step"] == 6

    def report() -> list[str]:
        done = subprocess.run([sys.executable, str(ROOT / "src" / "report.py"), str(sweep_dir)],
                              capture_output=True, text=True, cwd=ROOT)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return [line for line in done.stdout.splitlines() if line.startswith("| ")]

    table = report()
    assert table[0].startswith("| model | beta | jobs | steps |") and "disent/mig" in table[0]
    assert len(table) == 2 and table[1].startswith("| beta_vae | 1 | 2 | 6 |")
    with open(sweep_dir / "results.csv") as f:  # both re-evaluated alike: no column, but each
        assert [row["evaluated"] for row in csv.DictReader(f)] == ["full", "full"]  # job says
    again = eval_cli(f"run={jobs[0]}", *EVAL_LIGHT, "evaluation.suite.num_train=300",
                     "force=true", data=tmp_path / "data")  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    table = report()
    assert table[0].startswith("| model | beta | evaluated | jobs | steps |")
    assert {row.split(" | ")[2] for row in table[1:]} == {
        "full: suite.num_train=200",
        "full: suite.num_train=300",
    }


def test_a_sweep_through_a_launcher_isolates_a_failing_job(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    trained = sweep(sweep_dir, "beta=1,2", "seed=0")
    assert trained.returncode == 0, trained.stderr[-3000:]
    good, bad = sorted(p.parent for p in sweep_dir.glob("*/metrics.json"))
    (bad / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")

    result = eval_cli("-m", f"sweep={sweep_dir}", *EVAL_LIGHT, "hydra/launcher=joblib",
                      "hydra.launcher.n_jobs=2", data=tmp_path / "data", process=True)  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"FAILED {bad.name}" in result.stdout and "cannot be read" in result.stdout
    said = [line for line in (result.stdout + result.stderr).splitlines() if "][vaelab." in line]
    assert {line.split("][")[1] for line in said} == {"job 0", "job 1"}, said  # both at once
    assert read_metrics(good)["evaluations"]["full"]["step"] == 6
    assert json.loads((bad / "evaluation" / "full.json").read_text())["status"] == "failed"
    assert "evaluations" not in read_metrics(bad)
    assert (sweep_dir / "evaluation" / good.name / "eval.log").is_file()
    assert (sweep_dir / "multirun.yaml").is_file()  # the training sweep's own, kept


STOPPED_EARLY = "training stopped at step 2 before its first checkpoint; the same command starts it"
# how to break a copy of the run, words the message must contain
BAD = {
    "no such folder": (lambda run: run / "nope", "is not a folder"),
    "not a run folder": (lambda run: run / "checkpoints", "is not a vaelab run folder"),
    "no checkpoint": (lambda run: (run / "checkpoints" / "last.ckpt").unlink() or run,
                      "has no checkpoint checkpoints/last.ckpt"),
    "incompatible config": (lambda run: _edit_config(run, "vaelab.nets.ConvEncoder",
                                                     "vaelab.nets.gone.Encoder"),
                            "does not build with this version of vaelab"),
    "unknown setting": (lambda run: _edit_config(run, "use_file: true",
                                                 "use_file: true\n    renamed_key: 1"),
                        "does not build with this version"),
    "training not completed": (lambda run: _set_status(run, "running"),
                               "has not completed (metrics.json status: running)"),
    "interrupted before a checkpoint": (
        lambda run: _stopped_early(run),
        f"(metrics.json status: interrupted: {STOPPED_EARLY}), so it has no final model. Evaluate"
        " it once training has finished; it has no checkpoint to evaluate meanwhile"),
    "training resumed elsewhere": (lambda run: _set_status(run, "resumed", resumed_in="/b"),
                                   "was resumed in /b and went on there (metrics.json status"),
}  # fmt: skip


def _edit_config(run: Path, old: str, new: str) -> Path:
    saved = run / ".hydra" / "config.yaml"
    text = saved.read_text()
    assert old in text
    saved.write_text(text.replace(old, new))
    return run


def _stopped_early(run: Path) -> Path:
    """Ctrl-C before the first checkpoint: eval.py advised ckpt_path=<its last.ckpt>, absent."""
    shutil.rmtree(run / "checkpoints")
    return _set_status(run, "interrupted", error=STOPPED_EARLY)


def _set_status(run: Path, status: str, **fields: str) -> Path:
    record = read_metrics(run)
    (run / "metrics.json").write_text(json.dumps({**record, "status": status, **fields}))
    return run


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_paragraph_and_exit_2_and_changes_nothing(run_copy: Path, case: str):
    target = BAD[case][0](run_copy)
    before = snapshot(run_copy)
    result = eval_cli(f"run={target}", *EVAL, data=run_copy.parent / "data")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    message = result.stderr.strip()
    assert message.startswith("error:") and BAD[case][1] in message
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert snapshot(run_copy) == before  # nothing written, not even a log folder


@pytest.mark.parametrize(
    ("setting", "words"),
    [("evaluation.suite.jobs=0", "evaluation.suite.jobs=0 is not a number of worker processes"),
     ("+evaluation.suite.num_codes=5", "`evaluation.suite` has unknown settings ['num_codes']")],
)  # fmt: skip
def test_a_bad_suite_setting_is_refused_before_the_model_is_loaded(
    run_copy: Path, setting: str, words: str
):
    before = snapshot(run_copy)
    result = eval_cli(f"run={run_copy}", *EVAL, setting, data=run_copy.parent / "data")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    message = result.stderr.strip()
    assert message.startswith("error: evaluation=full cannot be built") and words in message
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert snapshot(run_copy) == before


def test_a_device_that_is_not_one_is_one_paragraph(run_copy: Path):
    before = snapshot(run_copy)
    result = eval_cli(f"run={run_copy}", *EVAL, "device=gpu0", data=run_copy.parent / "data")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    message = result.stderr.strip()  # it was torch's RuntimeError with Hydra's traceback
    assert message.startswith("error: `device`='gpu0' is not a device: use auto")
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert snapshot(run_copy) == before


def test_missing_data_is_said_with_where_to_put_it(run_copy: Path, tmp_path: Path):
    _edit_config(run_copy, "_target_: vaelab.data.dsprites.ProceduralDSprites",
                 "_target_: vaelab.data.shapes3d.Shapes3D")  # fmt: skip
    _edit_config(run_copy, "    cache_dir: ", "    data_dir: ")
    _edit_config(run_copy, "    use_file: true\n", "")
    before = snapshot(run_copy)
    result = eval_cli(f"run={run_copy}", *EVAL, data=tmp_path / "empty")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "3dshapes" in result.stderr.lower() and len(result.stderr.strip().splitlines()) == 1
    assert snapshot(run_copy) == before


def test_fid_without_the_inception_weights_is_one_paragraph_and_exit_2(run_copy: Path, monkeypatch):
    """Nothing in the run's folder changes: its eval.log kept the line "downloading the
    Inception weights" that the refused evaluation had logged."""
    offline = without_internet(monkeypatch, run_copy.parent)
    inception = [a for a in EVAL if not a.startswith("evaluation.fid.features")]
    before = snapshot(run_copy)
    result = eval_cli(f"run={run_copy}", *inception, data=run_copy.parent / "data")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    message = result.stderr.strip()
    assert message.startswith("error: FID and KID (evaluation.fid) need the Inception v3 weights")
    assert f"put it at {offline} " in message and "evaluation.fid=null" in message
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert snapshot(run_copy) == before
    assert "(step 6)" not in result.stdout + result.stderr  # said before the run was loaded
    (run_copy / "eval.log").write_text("an earlier evaluation's line\n")
    result = eval_cli(f"run={run_copy}", *inception, data=run_copy.parent / "data")
    assert result.returncode == 2 and "downloading" in result.stdout  # said on the console
    assert (run_copy / "eval.log").read_text() == "an earlier evaluation's line\n"


def test_fid_without_its_weights_stops_a_sweep_once_before_any_job(run_copy: Path, monkeypatch):
    """Said once with exit 2 (it was said for every job, then 'run the same command again to
    retry them', with exit 1)."""
    without_internet(monkeypatch, run_copy.parent)
    sweep = run_copy.parent / "sweep"
    for job in ("0_beta_vae_beta=4_seed=0", "1_beta_vae_beta=4_seed=1"):
        shutil.copytree(run_copy, sweep / job)
    inception = [a for a in EVAL if not a.startswith("evaluation.fid.features")]
    result = eval_cli(f"sweep={sweep}", *inception, data=run_copy.parent / "data")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    printed = result.stdout + result.stderr
    assert printed.count("need the Inception v3 weights") == 1 and "retry" not in printed
    assert not any(sweep.glob("*/evaluation")) and not (sweep / "eval.log").exists()


def test_no_target_is_exit_2():
    result = eval_cli("evaluation=fast", data=ROOT / "data")
    assert result.returncode == 2 and "exactly one of run=" in result.stderr


def test_evaluation_none_is_exit_2_before_any_file(tmp_path: Path):
    """It wrote an empty evaluation/none.json into the run folder."""
    run = tmp_path / "run"
    run.mkdir()
    result = eval_cli(f"run={run}", "evaluation=none", data=tmp_path / "data")
    assert result.returncode == 2 and "evaluation=none computes nothing" in result.stderr
    assert list(run.iterdir()) == []


# For the tests of where results go and what is refused: IWAE on 8 images and MIG, fast.
QUICK = [
    "evaluation=fast",
    "evaluation.iwae_k=8",
    "evaluation.iwae_images=8",
    "evaluation.quality_images=16",
    "evaluation.disentanglement=[mig]",
    "evaluation.suite.num_train=200",
    "evaluation.suite.num_test=100",
]


def _one_paragraph(result: subprocess.CompletedProcess, words: str) -> None:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    message = result.stderr.strip()
    assert message.startswith("error:") and words in message, message
    assert "Traceback" not in message and len(message.splitlines()) == 1


def _sweep_of(run: Path, *jobs: str) -> Path:
    """A sweep folder holding a copy of ``run`` per job name."""
    sweep_dir = run.parent / "sweep"
    for job in jobs:
        shutil.copytree(run, sweep_dir / job)
    return sweep_dir


@pytest.mark.parametrize("how", ["run", "sweep", "-m sweep"])
def test_unknown_metrics_are_refused_before_any_work(run_copy: Path, how: str):
    """As src/train.py refuses them (it was IWAE and quality, then a traceback and exit 1)."""
    sweep_dir = _sweep_of(run_copy, "0_beta_vae_beta=4_seed=0")
    target = [f"run={run_copy}"] if how == "run" else [*how.split()[:-1], f"sweep={sweep_dir}"]
    before, jobs_before = snapshot(run_copy), snapshot(sweep_dir)
    result = eval_cli(*target, *QUICK, "evaluation.disentanglement=[mgi]",
                      data=run_copy.parent / "data")  # fmt: skip
    _one_paragraph(result, "`evaluation.disentanglement` names unknown metrics ['mgi']; choose")
    assert "nll_iw" not in result.stdout + result.stderr  # nothing computed
    assert snapshot(run_copy) == before and snapshot(sweep_dir) == jobs_before


def test_a_result_is_named_by_its_seed_only_for_a_seed_the_command_gave(run_copy: Path):
    """On a run of seed 3, an evaluation config with a seed of its own (udr.yaml's 0) or none
    (the Evaluator's 0) named even the run's own draw <name>-seed0.json, never merged."""
    saved = run_copy / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(saved)
    cfg.seed = 3
    OmegaConf.save(cfg, saved)
    target = {"_target_": "vaelab.evaluate.Evaluator"}
    configs = [OmegaConf.create({**target, "seed": "${seed}"}),  # conf/evaluation's
               OmegaConf.create({**target, "seed": 0}), OmegaConf.create(target)]  # fmt: skip
    assert [seed_part(run_copy, e, None) for e in configs] == ["", "", ""]
    assert [seed_part(run_copy, e, 3) for e in configs] == ["", "-seed3", "-seed3"]
    assert [seed_part(run_copy, e, 0) for e in configs] == ["-seed0", "", ""]
    assert result_path(run_copy, "full", 6, 6, "-seed3").name == "full-seed3.json"
    assert result_path(run_copy, "full", 3, 6).name == "full-step3.json"


def test_another_seed_of_the_final_checkpoint_keeps_the_run_seed_result(run_copy: Path):
    data = run_copy.parent / "data"
    first = eval_cli(f"run={run_copy}", *QUICK, data=data)
    assert first.returncode == 0, first.stderr[-3000:]
    kept = (run_copy / "evaluation" / "fast.json").read_text()
    merged = read_metrics(run_copy)
    assert merged["evaluations"]["fast"]["settings"]["seed"] == 0

    other = eval_cli(f"run={run_copy}", *QUICK, "seed=1", data=data)
    assert other.returncode == 0, other.stderr[-3000:]
    assert (run_copy / "evaluation" / "fast.json").read_text() == kept  # not overwritten
    assert read_metrics(run_copy) == merged  # only the run's own seed is merged
    drawn = json.loads((run_copy / "evaluation" / "fast-seed1.json").read_text())
    assert drawn["step"] == 6 and drawn["settings"]["seed"] == 1
    assert drawn["metrics"]["test/nll_iw"] != json.loads(kept)["metrics"]["test/nll_iw"]

    before = snapshot(run_copy / "evaluation")
    again = eval_cli(f"run={run_copy}", *QUICK, "seed=0", data=data)  # the run's own seed
    assert again.returncode == 0 and "skipped" in again.stdout + again.stderr
    assert snapshot(run_copy / "evaluation") == before


def test_a_checkpoint_of_an_unfinished_run_goes_to_its_step_file(run_copy: Path):
    """The command the refusal of an unfinished run suggests; once training has completed,
    the same checkpoint is evaluated again as the final one (it was found as done)."""
    data = run_copy.parent / "data"
    _set_status(run_copy, "interrupted")
    merged = read_metrics(run_copy)
    last = run_copy / "checkpoints" / "last.ckpt"
    result = eval_cli(f"run={run_copy}", f"ckpt_path={last}", *QUICK, data=data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_copy / "evaluation" / "fast-step6.json").read_text())["step"] == 6
    assert not (run_copy / "evaluation" / "fast.json").exists()
    assert read_metrics(run_copy) == merged  # not the final model: not merged

    _set_status(run_copy, "completed")
    final = eval_cli(f"run={run_copy}", *QUICK, data=data)
    assert final.returncode == 0, final.stderr[-3000:]
    assert json.loads((run_copy / "evaluation" / "fast.json").read_text())["step"] == 6
    assert read_metrics(run_copy)["evaluations"]["fast"]["file"] == "evaluation/fast.json"


@pytest.mark.parametrize("multirun", [False, True])
def test_a_sweep_without_a_completed_job_is_refused(run_copy: Path, multirun: bool):
    sweep_dir = _sweep_of(run_copy, "0_beta_vae_beta=4_seed=0")
    _set_status(sweep_dir / "0_beta_vae_beta=4_seed=0", "interrupted")
    before = snapshot(sweep_dir)
    result = eval_cli(*(["-m"] if multirun else []), f"sweep={sweep_dir}", *QUICK,
                      data=run_copy.parent / "data")  # fmt: skip
    _one_paragraph(result, "holds no job whose training completed")
    assert "0_beta_vae_beta=4_seed=0 (training interrupted)" in result.stderr
    assert snapshot(sweep_dir) == before


def test_a_failed_job_is_said_once_in_plain_words(run_copy: Path):
    """A job whose earlier evaluation is kept and whose new one failed (``-m``), and the
    count of failures (it was 'FAILED <job>: failed (see its eval.log)', '1 evaluations')."""
    data = run_copy.parent / "data"
    sweep_dir = _sweep_of(run_copy, "0_beta_vae_beta=4_seed=0", "1_beta_vae_beta=4_seed=1")
    done = eval_cli("-m", f"sweep={sweep_dir}", *QUICK, data=data)
    assert done.returncode == 0, done.stderr[-3000:]
    bad = sweep_dir / "1_beta_vae_beta=4_seed=1"
    kept = (bad / "evaluation" / "fast.json").read_text()
    (bad / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    for args in (["-m"], []):
        result = eval_cli(*args, f"sweep={sweep_dir}", *QUICK, "force=true", data=data)
        assert result.returncode == 1, result.stderr[-3000:]
        line = next(x for x in result.stdout.splitlines() if x.startswith(f"  FAILED {bad.name}"))
        said = line.split(": ", 1)[1]  # -m: from the job's files; else the error itself
        assert said.startswith("no result of its" if args else "ConfigError: "), line
        assert "error: 1 evaluation failed; run the same command" in result.stderr
        assert (bad / "evaluation" / "fast.json").read_text() == kept  # the earlier one kept
