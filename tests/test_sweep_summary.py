"""The end-of-sweep summary (vaelab.sweep.SweepSummary) on sweep folders written by hand:
a job that another live process on this host is training is said to be running, not failed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from vaelab import sweep
from vaelab.run_folder import owner, process_start, running_elsewhere


def write_job(sweep_dir: Path, name: str, **record) -> None:
    (sweep_dir / name).mkdir(parents=True)
    (sweep_dir / name / "metrics.json").write_text(json.dumps(record))


def summarise(sweep_dir: Path, capsys) -> str:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    sweep.SweepSummary().on_multirun_end(config)
    return capsys.readouterr().out


def test_a_job_running_in_another_live_process_is_not_a_failure(tmp_path, capsys, other_process):
    here = socket.gethostname()
    write_job(tmp_path, "beta=1", status="completed", metrics={})
    write_job(tmp_path, "beta=2", status="running", pid=other_process, host=here)
    out = summarise(tmp_path, capsys)
    assert "1 of 1 jobs completed" in out
    assert "still running in another process: beta=2" in out
    assert sweep.failed_jobs == []


def test_a_running_record_whose_process_is_gone_or_unknown_is_a_failure(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free again (reuse within the test is not a concern)
    here = socket.gethostname()
    write_job(tmp_path, "beta=1", status="running", pid=dead.pid, host=here)
    write_job(tmp_path, "beta=2", status="running")  # written before pids were recorded
    write_job(tmp_path, "beta=3", status="running", pid=os.getpid(), host=here)  # this process
    write_job(tmp_path, "beta=4", status="running", pid=1, host=here + "-elsewhere")
    out = summarise(tmp_path, capsys)
    assert "0 of 4 jobs completed" in out
    assert sweep.failed_jobs == ["beta=1", "beta=2", "beta=3", "beta=4"]


def test_owner_names_this_process_and_only_a_running_record_can_be_elsewhere(other_process):
    assert owner() == {"pid": os.getpid(), "host": socket.gethostname(),
                       "pid_started": process_start(os.getpid())}  # fmt: skip
    assert isinstance(owner()["pid_started"], int)  # Linux: read from /proc
    record = {"status": "running", "pid": other_process, "host": socket.gethostname()}
    assert running_elsewhere(record)
    assert not running_elsewhere({**record, "status": "completed"})
    assert not running_elsewhere({**record, "pid": str(other_process)})
