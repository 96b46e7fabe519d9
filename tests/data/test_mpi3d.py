"""MPI3D read from full-size files that cost no disk (sparse: only headers and a few rows are
written), through the memory map, the checks, the download and the CLI."""

from __future__ import annotations

import io
import mmap
import pickle
import resource
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab.data import DataError, mpi3d
from vaelab.data.mpi3d import MPI3D, memmap_npz

from ..conftest import TINY, read_metrics, run_cli

FULL = (1036800, 64, 64, 3)
ROW = 64 * 64 * 3
UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: connections are refused at once


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return out.getvalue()


def write_sparse_npz(
    path: Path, shape=FULL, rows: dict[int, np.ndarray] | None = None, held: int | None = None
) -> None:
    """What ``np.savez(path, images=zeros(shape, uint8))`` writes (one stored zip64 member
    ``images.npy``), but sparse: the zeros are a hole in the file. ``rows`` are written at
    their place; ``held`` cuts the member short. The CRC is left 0 (nothing here checks it)."""
    name, header = b"images.npy", npy_header(shape)
    data = int(np.prod(shape)) if held is None else held
    size = len(header) + data
    extra = struct.pack("<HHQQ", 1, 16, size, size)  # zip64: sizes in the extra field
    big = 0xFFFFFFFF
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 45, 0, 0, 0, 33, 0, big, big, 10, 20)
    start = len(local) + len(name) + len(extra) + len(header)
    central = struct.pack(
        "<4s6H3I5HII", b"PK\x01\x02", 45, 45, 0, 0, 0, 33, 0, big, big, 10, 20, 0, 0, 0, 0, 0
    )
    central += name + extra
    with path.open("wb") as f:
        f.write(local + name + extra + header)
        for i, row in (rows or {}).items():
            f.seek(start + i * ROW)
            f.write(np.ascontiguousarray(row, np.uint8).tobytes())
        cd = start + data
        f.seek(cd)
        f.write(central)
        end64 = cd + len(central)
        f.write(struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1, len(central), cd))
        f.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, end64, 1))
        f.write(struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(central), big, 0))


def write_sparse_npy(path: Path, rows: dict[int, np.ndarray]) -> None:
    """An extracted ``images.npy`` of the full size, zeros except ``rows``."""
    header = npy_header(FULL)
    with path.open("wb") as f:
        f.write(header)
        for i, row in rows.items():
            f.seek(len(header) + i * ROW)
            f.write(row.tobytes())
        f.truncate(len(header) + int(np.prod(FULL)))


def picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)


# (color, shape, size, camera, background, horizontal, vertical) -> row, by the README's
# formula: 6 * 6 * 2 * 3 * 3 * 40 * 40 images, the last factor fastest
CLASSES = np.array([[0, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0], [5, 4, 1, 2, 0, 39, 7],
                    [5, 5, 1, 2, 2, 39, 39]])  # fmt: skip
ROWS = [1, 172800, 5 * 172800 + 4 * 28800 + 14400 + 2 * 4800 + 39 * 40 + 7, 1036799]


@pytest.fixture(scope="module")
def full_npz(tmp_path_factory) -> tuple[Path, dict[int, np.ndarray]]:
    """A full-size mpi3d_toy.npz (12.7 GB apparent, a few KB on disk) with 4 pictures."""
    folder = tmp_path_factory.mktemp("mpi3d")
    rows = {row: picture(row) for row in ROWS}
    write_sparse_npz(folder / "mpi3d_toy.npz", rows=rows)
    return folder, rows


def test_reader_maps_an_npz_member_in_place(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", other=np.arange(5), images=array)
    mapped = memmap_npz(tmp_path / "a.npz")
    assert isinstance(mapped, np.memmap) and mapped.mode == "r"
    assert np.array_equal(mapped, array) and np.array_equal(
        memmap_npz(tmp_path / "a.npz", "other"), np.arange(5)
    )
    np.savez(tmp_path / "o.npz", images=np.array([{}], dtype=object))
    with pytest.raises(DataError, match=r"o\.npz cannot be used: it holds Python objects"):
        memmap_npz(tmp_path / "o.npz")


def test_full_size_file_streams_rows_in_factor_order(full_npz):
    folder, rows = full_npz
    source = MPI3D(folder, download=False)
    assert len(source) == 1036800 and source.streamed and source.name == "mpi3d_toy"
    assert source.factor_sizes == (6, 6, 2, 3, 3, 40, 40)
    assert source.index_of(CLASSES).tolist() == ROWS
    images = source.images_of(CLASSES)
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.uint8
    for image, row in zip(images, ROWS, strict=True):
        assert torch.equal(image, chw(rows[row]))
    assert (source.labels(np.array(ROWS)) == CLASSES).all()
    mixed = source.images(np.array([ROWS[2], 7, ROWS[0]]))
    assert torch.equal(mixed[0], chw(rows[ROWS[2]])) and not mixed[1].any()
    with pytest.raises(IndexError, match="out of range"):
        source.images(np.array([1036800]))


def test_reading_64_random_images_touches_only_those(full_npz):
    source = MPI3D(full_npz[0], download=False)
    source.check_available()
    indices = np.random.default_rng(0).choice(len(source), 64, replace=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    started = time.perf_counter()
    images = source.images(indices)
    seconds = time.perf_counter() - started
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert images.shape == (64, 3, 64, 64) and seconds < 2 and grown_mib < 100
    assert source._advice == getattr(mmap, "MADV_RANDOM", None)  # no read-ahead for these
    source.images(np.arange(1000, 1100))
    assert source._advice == getattr(mmap, "MADV_NORMAL", None)


def test_extracted_npy_is_preferred(full_npz, tmp_path):
    write_sparse_npz(tmp_path / "mpi3d_real.npz")
    write_sparse_npy(tmp_path / "mpi3d_real.npy", {ROWS[3]: picture(3)})
    source = MPI3D(tmp_path, variant="real", download=False)
    assert source.path == tmp_path / "mpi3d_real.npy"
    assert torch.equal(source.images(np.array([ROWS[3]]))[0], chw(picture(3)))
    with (tmp_path / "mpi3d_real.npy").open("r+b") as f:
        f.truncate(10_000)
    with pytest.raises(DataError, match=r"mpi3d_real\.npy cannot be used: it cannot be read"):
        MPI3D(tmp_path, variant="real", download=False).check_available()


def test_pickled_without_the_memory_map(full_npz):
    source = MPI3D(full_npz[0], download=False)
    source.check_available()
    data = pickle.dumps(source)
    assert len(data) < 10_000
    assert torch.equal(pickle.loads(data).images(np.array([ROWS[1]]))[0], chw(full_npz[1][ROWS[1]]))


def test_a_set_over_max_memory_is_read_batch_by_batch(full_npz):
    from vaelab.data import ImageDataModule

    source = MPI3D(full_npz[0], download=False)
    dm = ImageDataModule(source, batch_size=16, subset=4096, channels=3, max_memory_gb=0.01)
    dm.setup("fit")
    assert not isinstance(dm.images, torch.Tensor)  # 4096 images = 48 MiB > 0.01 GiB
    batch = next(iter(dm.train_dataloader()))
    batch = batch[0] if isinstance(batch, (list, tuple)) else batch
    assert batch.shape == (16, 3, 64, 64)


def broken(tmp_path: Path, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        MPI3D(tmp_path, download=False).check_available()
    assert "\n" not in str(info.value)


def test_bad_files_are_named_with_what_is_wrong(tmp_path):
    path = tmp_path / "mpi3d_toy.npz"
    np.savez_compressed(path, images=np.zeros((4, 64, 64, 3), np.uint8))
    broken(tmp_path, r"mpi3d_toy\.npz cannot be used: its images\.npy is compressed.*"
           r"unzip -p mpi3d_toy\.npz images\.npy > mpi3d_toy\.npy")  # fmt: skip
    np.savez(path, images=np.zeros((4, 64, 64, 3), np.uint8))
    broken(tmp_path, r"its images are uint8 \(4, 64, 64, 3\), expected uint8 \(1036800, 64, 64")
    np.savez(path, imgs=np.zeros(3, np.uint8))
    broken(tmp_path, r"it has members \['imgs.npy'\], expected images\.npy")
    write_sparse_npz(path, shape=(460800, 64, 64, 3))
    broken(tmp_path, r"\(460800, 64, 64, 3\) \(the first, 2019 release of MPI3D\)")
    write_sparse_npz(path, held=4096)
    broken(tmp_path, r"it is truncated: its images\.npy header says uint8 \(1036800, 64, 64, 3\) "
           r"\(12,740,198,400 bytes\) but the file holds 4,096 bytes")  # fmt: skip
    write_sparse_npz(path)
    with path.open("r+b") as f:
        f.truncate(5 << 30)  # a download cut short: no zip directory at the end
    broken(tmp_path, r"mpi3d_toy\.npz cannot be used: it is not a readable \.npz \(BadZipFile")


def test_unknown_variant_lists_the_three(tmp_path):
    with pytest.raises(DataError, match=r"variants toy, realistic, real; got data.variant='sim'"):
        MPI3D(tmp_path, variant="sim")


def test_missing_file_offline_fails_fast_and_leaves_nothing(tmp_path, monkeypatch):
    urls = (UNREACHABLE + "mpi3d_toy.npz", UNREACHABLE + "mirror/mpi3d_toy.npz")
    monkeypatch.setitem(mpi3d.URLS, "toy", urls)
    started = time.monotonic()
    with pytest.raises(DataError, match="the download failed") as info:
        MPI3D(tmp_path).check_available()
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "\n" not in message and message.count("URLError") == 2
    words = [
        "The mpi3d_toy data set is not available",
        str(tmp_path),
        "mpi3d_toy.npz",
        "rr-learning",
    ]
    assert all(w in message for w in words)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match=r"not available \(download is off\)"):
        MPI3D(tmp_path, download=False).check_available()


def test_download_tries_the_next_url_and_moves_only_a_good_file(tmp_path, monkeypatch):
    calls = []

    def fake(url: str, target: Path) -> None:
        calls.append(url)
        if url.endswith("bad"):
            np.savez(target, images=np.zeros((2, 64, 64, 3), np.uint8))
        else:
            write_sparse_npz(Path(target), rows={5: picture(5)})

    monkeypatch.setattr(mpi3d.urllib.request, "urlretrieve", fake)
    monkeypatch.setitem(mpi3d.URLS, "realistic", ("u/bad", "u/good"))
    source = MPI3D(tmp_path, variant="realistic")
    assert torch.equal(source.images(np.array([5]))[0], chw(picture(5)))
    assert calls == ["u/bad", "u/good"]
    assert [p.name for p in tmp_path.iterdir()] == ["mpi3d_realistic.npz"]


def test_data_variant_on_the_command_line(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from ..conftest import CONF

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        base = [f"paths.output_dir={tmp_path}", f"paths.data_dir={tmp_path}", "data=mpi3d"]
        cfg = compose("train", overrides=[*base, "data.variant=real"])
        dm = instantiate(cfg.data)
        assert dm.source.variant == "real" and dm.image_shape == (3, 64, 64)
        assert cfg.data.likelihood == "bernoulli" and dm.source.download is True
        with pytest.raises(InstantiationException, match="toy, realistic, real"):
            instantiate(compose("train", overrides=[*base, "data.variant=Real"]).data)


def test_cli_trains_on_a_subset_read_through_the_memory_map(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    write_sparse_npz(data / "mpi3d_realistic.npz", rows={r: picture(r) for r in ROWS})
    asked: list[int | None] = []
    read = MPI3D.images

    def counted(self, indices=None, **kwargs):
        asked.append(None if indices is None else len(np.asarray(indices).reshape(-1)))
        return read(self, indices, **kwargs)

    monkeypatch.setattr(MPI3D, "images", counted)
    run = tmp_path / "run"
    result = run_cli(run, *TINY, "data=mpi3d", "data.variant=realistic", process=False)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(run)
    assert metrics["status"] == "completed" and metrics["step"] == 6
    assert metrics["metrics"]["test/recon"] > 0
    assert asked[0] == 512 and None not in asked and sum(asked) <= 1024, asked
