"""Each data set read from tiny files in its real format, through the real loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaelab.data import DataError, ImageDataModule
from vaelab.data.celeba import CelebA
from vaelab.data.cifar10 import CIFAR10
from vaelab.data.digits import Digits
from vaelab.data.dsprites import ProceduralDSprites
from vaelab.data.dsprites_file import FILE_NAMES, DSpritesFile
from vaelab.data.mnist import MNIST, FashionMNIST
from vaelab.data.shapes3d import Shapes3D

from . import formats

DSPRITES_SIZES = (3, 2, 3, 2, 2)
SHAPES_SIZES = (2, 2, 3, 2, 2, 3)


class TinyShapes3D(Shapes3D):
    factor_sizes = SHAPES_SIZES


class TinyDSpritesFile(DSpritesFile):
    factor_sizes = DSPRITES_SIZES


@pytest.mark.parametrize(("cls", "folder"), [(MNIST, "MNIST"), (FashionMNIST, "FashionMNIST")])
def test_mnist_idx_files(tmp_path, cls, folder):
    formats.write_mnist(tmp_path, folder)
    source = cls(tmp_path, download=False, verify=False)
    source.check_available()
    images = source.images()
    assert images.shape == (16, 1, 28, 28) and images.dtype == torch.uint8
    assert images[:, 0, 0, 0].tolist() == list(range(16))  # train, then test
    assert source.labels()[:, 0].tolist() == [i % 10 for i in range(16)]
    assert not source.has_factors and source.label_names
    test = cls(tmp_path, split="test", download=False, verify=False)
    assert test.images()[:, 0, 0, 0].tolist() == [12, 13, 14, 15]
    with pytest.raises(DataError, match="train files hold 12 images, expected 60000"):
        cls(tmp_path, download=False, verify=True).images()


def test_mnist_through_the_datamodule_padded_to_32(tmp_path):
    formats.write_mnist(tmp_path)
    source = MNIST(tmp_path, download=False, verify=False)
    dm = ImageDataModule(
        source, batch_size=4, image_size=32, fit="pad", val_fraction=0.2, test_fraction=0.2
    )
    dm.setup()
    assert dm.images.shape == (16, 1, 32, 32)
    assert (dm.images[:, 0, 12:20, 12:20] == 200).all()  # the 8x8 square moved by 2 pixels
    assert dm.images[:, 0, :2].sum() == 0 and dm.images[:, 0, 2, 2].tolist() == list(range(16))
    labels = dm.split_labels("val")
    assert (labels[:, 0] == dm.split_indices["val"] % 10).all()
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (4, 1, 32, 32) and batch.dtype == torch.uint8


def test_missing_mnist_names_folder_files_and_source(tmp_path):
    with pytest.raises(DataError) as info:
        MNIST(tmp_path, download=False).check_available()
    message = str(info.value)
    assert "mnist" in message and str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "yann.lecun.com" in message
    assert "\n" not in message


def test_truncated_idx_file_is_a_data_error(tmp_path):
    formats.write_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="cannot be read"):
        MNIST(tmp_path, download=False, verify=False).images()


def test_cifar10_pickled_batches(tmp_path):
    formats.write_cifar10(tmp_path)
    source = CIFAR10(tmp_path, download=False, verify=False)
    images = source.images()
    assert images.shape == (18, 3, 32, 32) and images.dtype == torch.uint8
    assert images[:, 0, 5, 5].tolist() == list(range(18))
    assert (images[:, 1] == 7).all() and (images[:, 2, 0, 0] == 255 - torch.arange(18)).all()
    assert source.labels()[:, 0].tolist() == [i % 10 for i in range(18)]
    assert source.classes[3] == "class3"
    dm = ImageDataModule(
        source, batch_size=4, image_size=64, channels=3, val_fraction=0.2, test_fraction=0.2
    )
    dm.setup()
    assert dm.images.shape == (18, 3, 64, 64)


def test_cifar10_checksums_are_checked(tmp_path):
    formats.write_cifar10(tmp_path)
    with pytest.raises(DataError, match=r"data_batch_1 cannot be used: its md5 sum"):
        CIFAR10(tmp_path, download=False, verify=True).check_available()
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match=r"not available.*test_batch.*cs.toronto.edu"):
        CIFAR10(tmp_path, download=False).check_available()


def test_celeba_folder_cropped_and_resized(tmp_path):
    attrs = formats.write_celeba(tmp_path)
    source = CelebA(tmp_path, download=False, verify=False)
    assert len(source) == 5
    images = source.images()
    assert images.shape == (5, 3, 64, 64) and images.dtype == torch.uint8
    grey = images.float().mean((1, 2, 3))  # the crop is the bright square: uniform images
    assert torch.allclose(grey, 40 * torch.arange(5).float() + 20, atol=3)
    assert (source.labels() == attrs).all()
    assert source.label_names == tuple(formats.CELEBA_ATTRS)
    assert torch.equal(source.images(np.array([3, 1])), images[[3, 1]])
    with pytest.raises(DataError, match=r"list_attr_celeba.txt cannot be used: its md5 sum"):
        CelebA(tmp_path, download=False, verify=True).check_available()


def test_celeba_unreadable_image_names_the_file(tmp_path):
    formats.write_celeba(tmp_path)
    (tmp_path / "celeba" / "img_align_celeba" / "000002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"000002\.jpg cannot be used"):
        CelebA(tmp_path, download=False, verify=False).images()


def test_digits_are_real_offline_data():
    source = Digits()
    images = source.images()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.uint8
    assert images.max() == 255 and images.min() == 0
    assert sorted(np.unique(source.labels())) == list(range(10))
    dm = ImageDataModule(source, image_size=16, val_fraction=0.1, test_fraction=0.1)
    dm.setup()
    assert dm.images.shape == (1797, 1, 16, 16)


def test_shapes3d_grid(tmp_path):
    formats.write_shapes3d(tmp_path / "3dshapes.h5", SHAPES_SIZES)
    source = TinyShapes3D(tmp_path)
    source.check_available()
    assert len(source) == 144 and source.has_factors
    images = source.images()
    assert images.shape == (144, 3, 64, 64) and images.dtype == torch.uint8
    assert images[:, 0, 0, 0].tolist() == list(range(144)) and (images[:, 1, 40] == 90).all()
    classes = source.sample_factors(30, np.random.default_rng(0))
    assert images_equal(source.images_of(classes), images[source.index_of(classes)])
    assert (source.labels(np.array([5])) == source.factors_of(np.array([5]))).all()


def images_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a, b)


def test_shapes3d_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"shapes3d.*Looked in .*3dshapes.h5.*3d-shapes"):
        TinyShapes3D(tmp_path).check_available()
    path = tmp_path / "3dshapes.h5"
    formats.write_shapes3d(path, SHAPES_SIZES, shuffle=True)
    with pytest.raises(DataError, match=r"3dshapes\.h5 cannot be used: .*row-major"):
        TinyShapes3D(tmp_path).check_available()
    formats.write_shapes3d(path, (2, 2, 3, 2, 2, 2))
    with pytest.raises(DataError, match=r"'images' is uint8 \(96, 64, 64, 3\), expected"):
        TinyShapes3D(tmp_path).check_available()
    import h5py

    with h5py.File(path, "w") as f:
        f["imgs"] = np.zeros((2, 2), np.uint8)
    with pytest.raises(DataError, match=r"keys \['imgs'\], expected 'images'"):
        TinyShapes3D(tmp_path).check_available()
    path.write_bytes(b"truncated")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        TinyShapes3D(tmp_path).check_available()


@pytest.mark.parametrize("kind", ["npz", "hdf5"])
def test_dsprites_file(tmp_path, kind):
    writer = formats.write_dsprites_npz if kind == "npz" else formats.write_dsprites_hdf5
    writer(tmp_path / FILE_NAMES[kind == "hdf5"], DSPRITES_SIZES)
    source = TinyDSpritesFile(tmp_path)
    images = source.images()
    assert images.shape == (72, 1, 64, 64) and images.dtype == torch.uint8
    assert set(images.unique().tolist()) == {0, 255}
    rows = np.array([40, 3, 71])
    assert torch.equal(source.images(rows), images[rows])
    assert images[40, 0, 0, 40] == 255 and source.factor_names == (
        "shape",
        "scale",
        "orientation",
        "pos_x",
        "pos_y",
    )


def test_dsprites_file_errors(tmp_path):
    with pytest.raises(DataError, match=r"Looked in .*dsprites_ndarray_co1sh3sc6or40x32y32"):
        TinyDSpritesFile(tmp_path).check_available()
    path = tmp_path / FILE_NAMES[0]
    formats.write_dsprites_npz(path, DSPRITES_SIZES, imgs=np.zeros((5, 64, 64), np.uint8))
    with pytest.raises(DataError, match=r"\.npz cannot be used: imgs is uint8 \(5, 64, 64\)"):
        TinyDSpritesFile(tmp_path).check_available()
    np.savez(path, images=np.zeros(3))
    with pytest.raises(DataError, match=r"keys \['images'\], expected imgs"):
        TinyDSpritesFile(tmp_path).check_available()
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="cannot be read"):
        TinyDSpritesFile(tmp_path).check_available()


class TinyProcedural(ProceduralDSprites):
    factor_sizes = DSPRITES_SIZES


def test_procedural_dsprites_reads_the_real_file_when_present(tmp_path, monkeypatch):
    monkeypatch.setattr(DSpritesFile, "factor_sizes", DSPRITES_SIZES)
    formats.write_dsprites_npz(tmp_path / FILE_NAMES[0], DSPRITES_SIZES)
    data = TinyProcedural(tmp_path)
    data.check_available()
    assert torch.equal(data.images(), TinyDSpritesFile(tmp_path).images())
    assert not (tmp_path / data.cache_name).exists()  # nothing rendered or cached
    rendered = TinyProcedural(tmp_path, use_file=False).images(np.array([0]))
    assert not torch.equal(rendered, data.images(np.array([0])))
