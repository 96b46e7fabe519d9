"""Offline downloads fail fast with one clear paragraph and leave no files behind."""

from __future__ import annotations

import socket
import time

import pytest
from torchvision import datasets

from vaelab.data import DataError
from vaelab.data.celeba import CelebA
from vaelab.data.cifar10 import CIFAR10
from vaelab.data.files import DOWNLOAD_TIMEOUT_S
from vaelab.data.mnist import MNIST, FashionMNIST

from ..conftest import run_cli

UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: connections are refused at once


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(datasets.MNIST, "mirrors", [UNREACHABLE])
    monkeypatch.setattr(datasets.FashionMNIST, "mirrors", [UNREACHABLE])
    monkeypatch.setattr(datasets.CIFAR10, "url", UNREACHABLE + "cifar-10-python.tar.gz")


@pytest.mark.parametrize(
    ("cls", "words"),
    [
        (MNIST, ["mnist", "MNIST/raw", "t10k-labels-idx1-ubyte", "yann.lecun.com"]),
        (FashionMNIST, ["fashion_mnist", "FashionMNIST/raw", "zalandoresearch"]),
        (CIFAR10, ["cifar10", "cifar-10-batches-py", "data_batch_1", "cs.toronto.edu"]),
        (CelebA, ["celeba", "img_align_celeba", "list_attr_celeba.txt", "mmlab"]),
    ],
)
def test_failed_download_is_a_data_error_and_leaves_nothing(tmp_path, offline, cls, words):
    started = time.monotonic()
    with pytest.raises(DataError, match="the download failed") as info:
        cls(tmp_path).check_available()
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert all(w in message for w in words) and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_leaves_no_partial_files(tmp_path, monkeypatch):
    seen = {}

    def half_download(self, root):
        seen["timeout"] = socket.getdefaulttimeout()
        (root / "MNIST" / "raw").mkdir(parents=True)
        (root / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\0" * 10)
        raise ConnectionResetError("connection lost")

    monkeypatch.setattr(MNIST, "download_into", half_download)
    with pytest.raises(DataError, match="ConnectionResetError: connection lost"):
        MNIST(tmp_path).check_available()
    assert seen["timeout"] == DOWNLOAD_TIMEOUT_S and socket.getdefaulttimeout() is None
    assert list(tmp_path.iterdir()) == []


def test_completed_download_is_moved_into_place(tmp_path, monkeypatch):
    from . import formats

    monkeypatch.setattr(MNIST, "download_into", lambda self, root: formats.write_mnist(root))
    source = MNIST(tmp_path, verify=False)
    assert source.images().shape == (16, 1, 28, 28)
    assert [p.name for p in tmp_path.iterdir()] == ["MNIST"]


def test_cli_reports_missing_data_in_one_paragraph_with_status_2(tmp_path):
    result = run_cli(tmp_path / "run", "data=shapes3d", "trainer=cpu", process=False)
    assert result.returncode == 2, result.stderr[-2000:]
    line = next(x for x in result.stderr.splitlines() if x.startswith("error:"))
    assert "The shapes3d data set is not available" in line and "3dshapes.h5" in line
