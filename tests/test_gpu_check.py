"""``make gpu-check`` before a GPU is spent on it: the wheels it would carry, and its whole
pipeline in the ``--tiny`` version on this CPU (where the GPU tests skip)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check


def test_carries_hydra_and_wandb_with_their_requirements_and_nothing_the_machine_has():
    names = {line.split("==")[0] for line in gpu_check.pinned()}
    assert {"hydra-core", "omegaconf", "antlr4-python3-runtime", "wandb", "pydantic"} <= names
    assert not names & {"torch", "lightning", "numpy", "pyyaml", "protobuf", "requests"}
    assert "typing-extensions" in names  # newer than the image's may be, for pydantic-core


def test_the_tiny_run_goes_through_every_part_and_writes_the_figures(tmp_path: Path):
    out = tmp_path / "out"
    cmd = [sys.executable, "benchmarks/gpu_check.py", "run", "--tiny", "--out", str(out)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((out / "cpu-tiny.json").read_text())
    assert {k: v["status"] for k, v in record["parts"].items()} == {
        "tests": "passed",
        "bench": "passed",
        "stack": "passed",
        "metrics": "passed",
    }
    # every GPU test was collected and skipped here (-v names each): none ran, none failed
    counts = record["parts"]["tests"]["counts"]
    skipped = (out / "tests.log").read_text().count(" SKIPPED")
    assert set(counts) == {"skipped", "deselected"} and counts["skipped"] == skipped >= 13
    (row,) = record["throughput"]
    assert row["vaelab_images_per_s"] > 0 and row["bare_images_per_s"] > 0
    suite = record["metric_suite"]
    assert suite["suite_s"] > 0 and 0 <= suite["scores"]["disent/mig"] <= 1
    assert [r["models"] for r in record["stacks"]] == [1, 2]
    assert all(r["stacked_images_per_s"] > 0 for r in record["stacks"])
    assert {p.name for p in out.iterdir()} == {  # at most 8 files come back from the device
        "cpu-tiny.json", "tests.log", "bench.log", "metrics.log", "stack.log",
    }  # fmt: skip


def test_a_run_of_some_parts_runs_those_with_the_tests_chosen(tmp_path: Path):
    out = tmp_path / "out"
    cmd = [sys.executable, "benchmarks/gpu_check.py", "run", "--tiny", "--parts", "tests",
           "--tests-k", "stack", "--out", str(out)]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((out / "cpu-tiny.json").read_text())
    assert list(record["parts"]) == ["tests"] and record["parts"]["tests"]["selected"] == "stack"
    log = (out / "tests.log").read_text()
    assert record["parts"]["tests"]["counts"]["skipped"] == log.count(" SKIPPED") == 2
    assert "test_a_stack_trains_on_the_gpu" in log and "test_trains_on_the_gpu[" not in log
    assert {p.name for p in out.iterdir()} == {"cpu-tiny.json", "tests.log"}
    wrong = subprocess.run([*cmd[:4], "--parts", "tests,stacks"], cwd=ROOT, capture_output=True,
                           text=True)  # fmt: skip
    assert wrong.returncode == 2 and "unknown parts ['stacks']" in wrong.stderr


def test_counts_read_the_summary_or_for_a_run_cut_short_its_result_lines(tmp_path: Path):
    log = tmp_path / "tests.log"
    log.write_text("....\n== 12 passed, 1 skipped, 590 deselected in 180.2s ==\n")
    assert gpu_check.test_counts(log) == {"passed": 12, "skipped": 1, "deselected": 590}
    log.write_text(  # -v lines of xdist workers, then the limit: no summary
        "[gw0] [  7%] PASSED tests/test_gpu.py::test_a \n"
        "[gw1] [ 15%] PASSED tests/test_gpu.py::test_b \n"
        "[gw2] [ 23%] FAILED tests/test_gpu.py::test_c \n"
    )
    assert gpu_check.test_counts(log) == {"passed": 2, "failed": 1, "unfinished": 1}
    assert gpu_check.test_counts(tmp_path / "missing.log") == {}


def reproduce(out: Path, *args: str, data: Path) -> subprocess.CompletedProcess:
    rows = ["--rows", "beta_vae_b4,factor_vae_g10", "--metrics", "[mig,factor_vae]"]
    cmd = [sys.executable, "benchmarks/gpu_check.py", "reproduce", "--tiny", "--out", str(out)]
    cmd += [*rows, *args]
    env = {**os.environ, "VAELAB_DATA_DIR": str(data)}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)


def test_a_reproduce_piece_trains_its_rows_at_once_and_brings_back_two_files(tmp_path: Path):
    result = reproduce(tmp_path / "out", "--train-seconds", "5", data=tmp_path / "data")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"reproduce-seed0.tar.gz", "report.md"}
    report = (out / "report.md").read_text()
    assert "[0.63 ± 0.10]" in report and "[0.82]" in report  # beside the published values
    with tarfile.open(out / "reproduce-seed0.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "back", filter="data")
    assert not [n for n in names if n.endswith(".ckpt")]
    sweep = tmp_path / "back" / "reproduce-seed0" / "reproduce" / "dsprites"
    for row in ("beta_vae_b4", "factor_vae_g10"):
        record = json.loads((sweep / f"{row}_seed=0" / "metrics.json").read_text())
        assert record["status"] == "completed" and record["step"] > 0
        assert 0 <= record["metrics"]["disent/mig"] <= 1
        # trained without its evaluation, then scored by src/eval.py with the experiment's
        assert record["evaluations"]["reproduce_dsprites"]["step"] == record["step"]
        scored = json.loads((sweep / f"{row}_seed=0" / "evaluation" / "reproduce_dsprites.json")
                            .read_text())  # fmt: skip
        assert scored["settings"]["disentanglement"] == ["mig", "factor_vae"]
        overrides = (sweep / f"{row}_seed=0" / ".hydra" / "overrides.yaml").read_text()
        assert "+trainer.max_time='00:00:00:05'" in overrides and "evaluation=none" in overrides
        assert (tmp_path / "back" / "reproduce-seed0" / f"{row}_seed=0.log").is_file()
    assert (tmp_path / "back" / "reproduce-seed0" / "evaluation.log").is_file()


def test_jobs_still_running_at_the_deadline_are_stopped_and_the_piece_fails(tmp_path: Path):
    result = reproduce(tmp_path / "out", "--deadline", "1", "--eval-seconds", "0",
                       data=tmp_path / "data")  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.count("stopped at the training deadline (1 s)") == 2
    assert "evaluation: stopped at the evaluation deadline (1 s)" in result.stdout
    assert (tmp_path / "out" / "reproduce-seed0.tar.gz").is_file()


def test_the_2018_vs_2024_comparison_runs_as_a_piece_and_reports_by_model(tmp_path: Path):
    """``reproduce --experiment compare_2024``: the GPU's run of the README's comparison."""
    cmd = [sys.executable, "benchmarks/gpu_check.py", "reproduce", "--tiny", "--out",
           str(tmp_path / "out"), "--experiment", "compare_2024", "--rows", "qlae,ada_gvae",
           "--train-seconds", "5", "evaluation.suite.num_train=200",
           "evaluation.suite.num_test=100"]  # fmt: skip
    env = {**os.environ, "VAELAB_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"compare_2024-seed0.tar.gz", "report.md"}
    with tarfile.open(out / "compare_2024-seed0.tar.gz") as tar:
        tar.extractall(tmp_path / "back", filter="data")
    sweep = tmp_path / "back" / "compare_2024-seed0" / "compare_2024"
    for row in ("qlae", "ada_gvae"):
        record = json.loads((sweep / f"{row}_seed=0" / "metrics.json").read_text())
        assert record["status"] == "completed" and record["model"] == row
        assert "disent/infomec[range]/m" in record["metrics"] and "disent/mig" in record["metrics"]
    report = (out / "report.md").read_text()
    assert "qlae" in report and "ada_gvae" in report


def test_runs_of_some_parts_add_up_in_one_file_each_part_with_its_figures(tmp_path: Path):
    out = tmp_path / "out"
    base = [sys.executable, "benchmarks/gpu_check.py", "run", "--tiny", "--out", str(out)]
    for parts in ("stack", "profile,metrics"):
        result = subprocess.run([*base, "--parts", parts], cwd=ROOT, capture_output=True,
                                text=True, timeout=200)  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((out / "cpu-tiny.json").read_text())
    assert list(record["parts"]) == ["stack", "profile", "metrics"]
    assert all(p["status"] == "passed" and p["date"] for p in record["parts"].values())
    assert [r["models"] for r in record["stacks"]] == [1, 2]  # the first run's figures kept
    profiled = {r["case"]: r for r in record["profiles"]}  # a run alone, and a stack of 2
    assert list(profiled) == ["mlp:16", "stack:mlp:16:2"]
    assert all(r["ms_per_step"] > 0 and r["top_host_ops"] for r in profiled.values())
    assert profiled["mlp:16"]["launches_per_step"] == 0  # a CPU launches no kernels
    assert "Optimizer.step#Adam.step" in (out / "profile.log").read_text()  # torch's table
    assert record["metric_suite"]["suite_s"] > 0
    # a part run again replaces its earlier figures; another device's record is not merged
    earlier = {"device": "another GPU", "parts": {"bench": {"status": "passed"}}, "throughput": []}
    assert gpu_check.merged(earlier, record) is record
    again = {**record, "parts": {"stack": {"status": "timed out"}}, "stacks": []}
    assert gpu_check.merged(record, again)["stacks"] == []
    kept = gpu_check.merged(record, again)["parts"]["metrics"]
    assert kept == {"torch": record["torch"], **record["parts"]["metrics"]}
    # a file of 2026-12-04 held the compiled bench's rows in `throughput`: a bench run alone
    # replaces the plain rows and keeps the compiled ones
    h200 = {
        "device": "H200",
        "date": "2026-12-04",
        "torch": "2.11",
        "parts": {"bench": {"status": "passed"}, "bench_compiled": {"status": "passed"}},
        "throughput": [{"arch": "conv", "compile": False}, {"arch": "conv", "compile": True}],
    }
    bench = {"device": "H200", "parts": {"bench": {"status": "passed"}},
             "throughput": [{"arch": "mlp", "compile": False}]}  # fmt: skip
    both = gpu_check.merged(h200, bench)
    assert both["throughput"] == bench["throughput"]
    assert both["throughput_compiled"] == [{"arch": "conv", "compile": True}]
    assert both["parts"]["bench_compiled"]["date"] == "2026-12-04"
