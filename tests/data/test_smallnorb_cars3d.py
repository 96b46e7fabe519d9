"""SmallNORB and Cars3D from tiny files in their real formats, through the loaders and CLI."""

from __future__ import annotations

import gzip
import itertools
import struct
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from vaelab.data import DataError, ImageDataModule
from vaelab.data import cars3d as cars3d_module
from vaelab.data import smallnorb as smallnorb_module
from vaelab.data.cars3d import Cars3D
from vaelab.data.smallnorb import ALL_FILES, FILES, SmallNORB, read_binary_matrix

from ..conftest import read_metrics

UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: connections are refused at once
LANCZOS = Image.Resampling.LANCZOS

# Tiny SmallNORB: the real kind of values, fewer of them; 2 instances per split.
CATEGORIES, ELEVATIONS, AZIMUTHS, LIGHTINGS = [0, 3], [0, 4, 8], [0, 2, 34], [1, 5]
INSTANCES = ([4, 6], [0, 1])  # training, testing
ROWS = 2 * 3 * 3 * 2 * 2  # per file
ALL_GZ = [f"{name}.gz" for name in ALL_FILES]


def write_binary_matrix(path: Path, array: np.ndarray, magic: int | None = None) -> None:
    """NYU's format: int32 magic, int32 ndim, max(3, ndim) int32 dims (padded with 1), data;
    all little-endian. Gzipped when ``path`` ends in .gz."""
    magic = magic or {np.uint8: 0x1E3D4C55, np.int32: 0x1E3D4C54}[array.dtype.type]
    dims = list(array.shape) + [1] * (3 - array.ndim)
    data = struct.pack(f"<ii{len(dims)}i", magic, array.ndim, *dims)
    data += array.astype(array.dtype.newbyteorder("<")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def write_smallnorb(data_dir: Path, gz: bool = False) -> np.ndarray:
    """The six files, rows shuffled. Image of global row i (training then testing): camera 0
    black above row 48 and i + 1 below; camera 1 all 255 - i. Returns the values of each row
    (category, instance, elevation, azimuth, lighting)."""
    rng, values = np.random.default_rng(0), []
    for split, instances in enumerate(INSTANCES):
        grid = itertools.product(CATEGORIES, instances, ELEVATIONS, AZIMUTHS, LIGHTINGS)
        rows = rng.permutation(np.array(list(grid), dtype=np.int32))
        marks = np.arange(ROWS) + split * ROWS + 1
        dat = np.zeros((ROWS, 2, 96, 96), np.uint8)
        dat[:, 0, 48:] = marks[:, None, None]
        dat[:, 1] = (255 - marks)[:, None, None]
        dat[:, 0, 50:60, 5:15] = 7  # a patch whose edges the resize smooths
        for kind, array in (("dat", dat), ("cat", rows[:, 0]), ("info", rows[:, 1:])):
            name = FILES[kind][split] + (".gz" if gz else "")
            write_binary_matrix(data_dir / "small_norb" / name, np.ascontiguousarray(array))
        values.append(rows)
    return np.concatenate(values).astype(np.int64)


def tiny_norb(data_dir: Path, **kwargs) -> SmallNORB:
    return SmallNORB(data_dir, **{"download": False, "verify": False, "rows": ROWS, **kwargs})


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_binary_matrix_reader(tmp_path, suffix):
    arrays = [np.arange(5, dtype=np.int32) - 2, np.arange(24, dtype=np.int32).reshape(6, 4),
              np.arange(96, dtype=np.uint8).reshape(3, 2, 4, 4)]  # fmt: skip
    for k, array in enumerate(arrays):
        write_binary_matrix(path := tmp_path / f"m{k}.mat{suffix}", array)
        read = read_binary_matrix(path)
        assert read.dtype == array.dtype and read.shape == array.shape and (read == array).all()
    raw = (gzip.decompress if suffix else bytes)((tmp_path / f"m2.mat{suffix}").read_bytes())
    assert struct.unpack("<iiiiii", raw[:24]) == (0x1E3D4C55, 4, 3, 2, 4, 4)
    path.write_bytes(gzip.compress(raw[:-8]) if suffix else raw[:-8])
    with pytest.raises(DataError, match=r"m2\.mat.* 88 bytes of data, \(3, 2, 4, 4\) uint8 needs"):
        read_binary_matrix(path)  # truncated


@pytest.mark.parametrize("gz", [False, True])
def test_smallnorb_factors_images_and_cache(tmp_path, gz):
    values = write_smallnorb(tmp_path, gz=gz)
    source = tiny_norb(tmp_path)
    source.check_available()
    assert source.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert source.factor_sizes == (2, 3, 3, 2) and source.is_grid and len(source) == 2 * ROWS
    levels = {0: CATEGORIES, 2: ELEVATIONS, 3: AZIMUTHS, 4: LIGHTINGS}  # classes: ranks
    expected = np.stack([np.searchsorted(v, values[:, k]) for k, v in levels.items()], 1)
    assert (source.factors_of(np.arange(2 * ROWS)) == expected).all()
    assert (source.labels() == expected).all() and (source.instances == values[:, 1]).all()
    images = source.images()
    assert images.shape == (2 * ROWS, 1, 64, 64) and images.dtype == torch.uint8
    assert images[:, 0, 60, 60].tolist() == list(range(1, 2 * ROWS + 1))  # camera 0, in order
    assert (images[:, 0, :28] == 0).all()  # upright
    first = np.zeros((96, 96), np.uint8)
    first[48:], first[50:60, 5:15] = 1, 7
    resized = np.asarray(Image.fromarray(first).resize((64, 64), LANCZOS))
    assert (images[0, 0].numpy() == resized).all()  # PIL's LANCZOS, as disentanglement_lib
    assert torch.equal(source.images(rows := np.array([5, 100, 3])), images[rows])
    classes = source.sample_factors(200, np.random.default_rng(1))  # images_of: those classes
    got = source.images_of(classes)[:, 0, 60, 60].long().numpy() - 1
    assert (expected[got] == classes).all()
    for name in FILES["dat"]:  # with a cache, the dat files are still checked
        (tmp_path / "small_norb" / (name + (".gz" if gz else ""))).write_bytes(b"")
    with pytest.raises(DataError, match=r"dat\.mat"):
        tiny_norb(tmp_path).check_available()


def test_smallnorb_index_of_spreads_over_the_instances_and_subsets(tmp_path):
    values = write_smallnorb(tmp_path)
    source = tiny_norb(tmp_path)
    classes = np.tile([[1, 2, 0, 1]], (400, 1))
    rows = source.index_of(classes)
    assert (source.factors_of(rows) == classes).all()
    found, counts = np.unique(values[rows, 1], return_counts=True)
    assert found.tolist() == [0, 1, 4, 6] and counts.min() > 60
    assert (source.index_of(classes) == rows).all()  # the same draw reads the same images
    dm = ImageDataModule(source, batch_size=8, subset=50, val_fraction=0.1, test_fraction=0.1)
    dm.setup()  # a subset: the rows are read from the cache by index
    assert dm.images.shape == (50, 1, 64, 64)
    marks = dm.images[:, 0, 60, 60].long().numpy() - 1
    assert (np.sort(marks) == np.sort(np.concatenate(list(dm.split_indices.values())))).all()


def test_smallnorb_errors_name_the_file_and_the_cache(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"smallnorb data set is not available \(download is off"):
        tiny_norb(tmp_path).check_available()  # the whole message: see the offline test
    folder = tmp_path / "small_norb"
    values = write_smallnorb(tmp_path)
    with pytest.raises(DataError, match=r"holds uint8 \(72, 2, 96, 96\), expected uint8 \(73,"):
        tiny_norb(tmp_path, rows=ROWS + 1).check_available()
    cat = folder / FILES["cat"][1]
    write_binary_matrix(cat, values[ROWS:, 0].astype(np.int32), magic=0x0BADF00D)
    with pytest.raises(DataError, match=r"testing-cat\.mat cannot be used: its magic number"):
        tiny_norb(tmp_path).check_available()
    write_binary_matrix(cat, values[ROWS:, 0].astype(np.int32))
    dat = folder / FILES["dat"][0]
    dat.write_bytes(dat.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"training-dat\.mat cannot be used: it has \d+ bytes"):
        tiny_norb(tmp_path).check_available()
    write_smallnorb(tmp_path, gz=True)  # the .gz files are read in preference
    with pytest.raises(DataError, match=r"training-dat\.mat\.gz cannot be used: its sha256"):
        tiny_norb(tmp_path, verify=True).write_cache()
    with pytest.raises(DataError, match=r"training-cat\.mat\.gz cannot be used: its sha256"):
        tiny_norb(tmp_path, verify=True).check_available()
    monkeypatch.setattr(smallnorb_module, "ROWS", ROWS)  # as if these were the real files
    with pytest.raises(DataError, match=r"factors take \[2, 3, 3, 2\] values, expected \[5, 9"):
        tiny_norb(tmp_path).check_available()
    monkeypatch.undo()
    gzipped = folder / (FILES["dat"][1] + ".gz")
    gzipped.write_bytes(gzipped.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"testing-dat\.mat\.gz cannot be used: it unpacks to"):
        tiny_norb(tmp_path).check_available()
    for path in folder.glob("*.gz"):
        path.unlink()
    write_smallnorb(tmp_path)
    info_values = values[:ROWS, 1:].astype(np.int32)
    info_values[3, 2] = 3  # an odd azimuth
    write_binary_matrix(folder / FILES["info"][0], info_values)
    with pytest.raises(DataError, match=r"training-info\.mat cannot be used: it holds values"):
        tiny_norb(tmp_path).check_available()
    write_smallnorb(tmp_path)
    np.save(cache := tmp_path / "smallnorb_64x64_v1.npy", np.zeros((3, 64, 64), np.uint8))
    with pytest.raises(DataError, match=r"v1\.npy cannot be used: .*\(3, 64, 64\), expected"):
        tiny_norb(tmp_path).check_available()
    cache.write_bytes(b"junk")
    with pytest.raises(DataError, match=r"v1\.npy cannot be used: .*Delete it and it is made"):
        tiny_norb(tmp_path).images()


# Tiny Cars3D: 3 mesh files, named out of numeric order on disk.
CAR_NAMES = ["car_010_mesh.mat", "car_002_mesh.mat", "car_007_mesh.mat"]  # objects 2, 0, 1


def mesh(obj: int) -> np.ndarray:
    """'im' [128, 128, 3, 24, 4]: view (azimuth a, elevation e) white above row 32, below it
    (10 a, 60 e, 80 obj + 20)."""
    im = np.empty((128, 128, 3, 24, 4), np.uint8)
    im[:, :, 0] = (10 * np.arange(24))[:, None]
    im[:, :, 1] = (60 * np.arange(4))[None, :]
    im[:, :, 2] = 80 * obj + 20
    im[:32] = 255
    return im


def write_cars(data_dir: Path) -> Path:
    (folder := data_dir / "cars").mkdir(parents=True, exist_ok=True)
    for name in CAR_NAMES:
        im = mesh(sorted(CAR_NAMES).index(name))
        scipy.io.savemat(folder / name, {"im": im, "mask": im[:, :, 0]}, do_compression=True)
    return folder


def test_cars3d_factors_images_and_cache(tmp_path):
    write_cars(tmp_path)
    source = Cars3D(tmp_path, download=False, num_objects=3)
    source.check_available()
    assert source.factor_names == ("elevation", "azimuth", "object") and source.is_grid
    assert source.factor_sizes == (4, 24, 3) and len(source) == 288
    images = source.images()
    assert images.shape == (288, 3, 64, 64) and images.dtype == torch.uint8
    classes = source.factors_of(np.arange(288))  # row-major in (elevation, azimuth, object)
    assert (classes[:5] == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0], [0, 1, 1]]).all()
    colour = images[:, :, 48, 10].long().numpy()
    assert (colour == classes[:, [1, 0, 2]] * [10, 60, 80] + [0, 0, 20]).all()
    assert (images[:, :, 4, 32] == 255).all()  # upright: the white band is at the top
    view = Image.fromarray(np.ascontiguousarray(mesh(1)[:, :, :, 5, 2]))
    view.thumbnail((64, 64), LANCZOS)
    index = source.index_of(np.array([[2, 5, 1]]))  # elevation 2, azimuth 5, object 1
    assert (images[index[0]].permute(1, 2, 0).numpy() == np.asarray(view)).all()
    picks = source.sample_factors(50, np.random.default_rng(0))
    assert torch.equal(source.images_of(picks), images[source.index_of(picks)])
    for name in CAR_NAMES:  # the cache is read; the mesh files are only counted
        (tmp_path / "cars" / name).write_bytes(b"")
    assert torch.equal(Cars3D(tmp_path, download=False, num_objects=3).images(), images)


def test_cars3d_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"cars3d data set is not available \(download is off"):
        Cars3D(tmp_path, download=False).check_available()  # the message: the offline test
    folder = write_cars(tmp_path)
    with pytest.raises(DataError, match=r"cars cannot be used: it holds 3 \*_mesh.mat files, "
                                        r"expected 183"):  # fmt: skip
        Cars3D(tmp_path, download=False).check_available()
    scipy.io.savemat(folder / "car_007_mesh.mat", {"images": np.zeros(3, np.uint8)})
    with pytest.raises(DataError, match=r"car_007_mesh\.mat cannot be used: it has no 'im'"):
        Cars3D(tmp_path, download=False, num_objects=3).check_available()
    scipy.io.savemat(folder / "car_007_mesh.mat", {"im": mesh(1)[..., :3]})
    with pytest.raises(DataError, match=r"007_mesh\.mat cannot .*'im' is uint8 \(128, 128, 3, 24,"
                                        r" 3\), expected uint8"):  # fmt: skip
        Cars3D(tmp_path, download=False, num_objects=3).check_available()
    (folder / "car_007_mesh.mat").write_bytes(b"not a MATLAB file at all, nor anything else")
    with pytest.raises(DataError, match=r"007_mesh\.mat cannot be used: it is not a readable"):
        Cars3D(tmp_path, download=False, num_objects=3).check_available()


OFFLINE = [(SmallNORB, ["smallnorb", "/small_norb", *ALL_FILES, "cs.nyu.edu/~ylclab/data/norb"]),
           (Cars3D, ["cars3d", "/cars", "183 files car_NNN_mesh", "nips2015-analogy"])]  # fmt: skip


@pytest.mark.parametrize(("cls", "words"), OFFLINE)
def test_offline_download_fails_fast_and_leaves_nothing(tmp_path, monkeypatch, cls, words):
    monkeypatch.setattr(smallnorb_module, "URL", UNREACHABLE)
    monkeypatch.setattr(cars3d_module, "ARCHIVE_URL", UNREACHABLE + "x.tar.gz")
    started = time.monotonic()
    with pytest.raises(DataError, match="the download failed") as info:
        cls(tmp_path).check_available()
    assert time.monotonic() - started < 10
    assert all(w in str(info.value) for w in words) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def publish_smallnorb(tmp_path: Path) -> tuple:
    """The six .mat.gz files in a folder served by file:// URLs."""
    write_smallnorb(tmp_path / "server", gz=True)
    url = (tmp_path / "server/small_norb").as_uri() + "/"
    return (smallnorb_module, "URL", url), SmallNORB, {"rows": ROWS}, "sha256", ALL_GZ


def publish_cars3d(tmp_path: Path) -> tuple:
    """The archive: data/cars/ and a file beside it that is not kept."""
    write_cars(tree := tmp_path / "tree/data")
    (tree / "shapes48.mat").write_bytes(b"x")
    with tarfile.open(archive := tmp_path / "archive.tar.gz", "w:gz") as tar:
        tar.add(tree, arcname="data")
    url = archive.as_uri()
    return (cars3d_module, "ARCHIVE_URL", url), Cars3D, {"num_objects": 3}, "md5", CAR_NAMES


@pytest.mark.parametrize("publish", [publish_smallnorb, publish_cars3d])
def test_download_checks_the_sums_and_keeps_the_folder(tmp_path, monkeypatch, publish):
    url, cls, kwargs, digest, files = publish(tmp_path)
    monkeypatch.setattr(*url)
    with pytest.raises(DataError, match=rf"download failed: ValueError: .*published {digest}"):
        cls(data := tmp_path / "data", **kwargs).check_available()
    assert list(data.iterdir()) == []
    source = cls(data, verify=False, **kwargs)
    assert source.images().shape == (len(source), *source.image_shape)
    assert sorted(p.name for p in data.iterdir()) == [source.folder.name, source.cache_path.name]
    assert sorted(p.name for p in source.folder.iterdir()) == sorted(files)


CLI = [("smallnorb", [f"+data.source.rows={ROWS}", "data.source.verify=false"]),
       ("cars3d", ["+data.source.num_objects=3"])]  # fmt: skip


@pytest.mark.parametrize(("name", "overrides"), CLI)
def test_trains_through_the_cli(cli, tmp_path, name, overrides):
    (write_smallnorb if name == "smallnorb" else write_cars)(tmp_path / "data")
    run_dir, result = cli(f"data={name}", *overrides, "data.source.download=false")
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_metrics(run_dir)["status"] == "completed"
    assert (tmp_path / "data" / f"{name}_64x64_v1.npy").is_file()
