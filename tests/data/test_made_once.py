"""The jobs of a parallel sweep (joblib) that need the same data file make it once: a cache
(rendered dSprites, resized NORB or Cars3D) or a download. The others wait, then read it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vaelab.io import folder_locked

JOB = """
import logging, sys
from pathlib import Path
from vaelab.data.files import staged_download, write_cache
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
folder, kind, who = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

def made() -> None:  # one line per time this job made the file
    with open(folder.parent / "made.txt", "a") as f:
        f.write(who + "\\n")

def fill(array) -> None:
    made()
    array[:] = 7

def fetch(staging: Path) -> None:
    made()
    (staging / "data.bin").write_bytes(b"data")

if kind == "cache":
    write_cache(folder / "cache.npy", (4, 2, 2), fill)
else:
    staged_download(folder, fetch, keep=["data.bin"],
                    needed=lambda: not (folder / "data.bin").is_file())
print("done", flush=True)
"""


@pytest.mark.parametrize("kind", ["cache", "download"])
def test_two_jobs_asking_for_one_data_file_make_it_once(tmp_path: Path, kind: str):
    folder = tmp_path / "data"
    folder.mkdir()
    with folder_locked(folder):  # a third process is writing: both jobs must wait for it
        jobs = [subprocess.Popen([sys.executable, "-c", JOB, str(folder), kind, who],
                                 stdout=subprocess.PIPE, text=True)
                for who in ("a", "b")]  # fmt: skip
        for job in jobs:
            assert job.stdout.readline().startswith("waiting for another process")
    assert [job.wait(timeout=60) for job in jobs] == [0, 0]
    assert [job.stdout.read() for job in jobs] == ["done\n", "done\n"]
    assert len((tmp_path / "made.txt").read_text().split()) == 1  # the other job waited, then read
    if kind == "cache":
        assert (np.load(folder / "cache.npy") == 7).all()
    else:
        assert (folder / "data.bin").read_bytes() == b"data"
    kept = "cache.npy" if kind == "cache" else "data.bin"
    assert [p.name for p in folder.iterdir()] == [kept]  # no temporary file or staging folder


def test_a_job_that_waited_for_another_reason_still_downloads_what_it_lacks(tmp_path: Path):
    """The folder's lock is also a cache's: a job that waited while another wrote something
    else, its own files still missing, downloads them (it skipped the download before)."""
    folder = tmp_path / "data"
    (folder / "MNIST").mkdir(parents=True)  # there, but without its files
    wanted = folder / "MNIST" / "raw.bin"
    with folder_locked(folder):  # another job renders a cache into the same folder
        job = subprocess.Popen([sys.executable, "-c", DOWNLOADER, str(folder)],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert job.stdout.readline().startswith("waiting for another process")
    assert job.wait(timeout=60) == 0 and wanted.read_bytes() == b"images"


DOWNLOADER = """
import logging, sys
from pathlib import Path
from vaelab.data.files import staged_download
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
folder = Path(sys.argv[1])

def fetch(staging: Path) -> None:
    (staging / "MNIST").mkdir()
    (staging / "MNIST" / "raw.bin").write_bytes(b"images")

staged_download(folder, fetch, keep=["MNIST"],
                needed=lambda: not (folder / "MNIST" / "raw.bin").is_file())
"""
