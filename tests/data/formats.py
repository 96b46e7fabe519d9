"""Writers of tiny files in each data set's real on-disk format, for the loader tests."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

CELEBA_ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Smiling", "Young"]


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (LeCun's MNIST format) of a uint8 array: magic 0x08, ndim, big-endian dims."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 12, n_test: int = 4) -> None:
    """Images whose first pixel is their index in train-then-test order; label = index % 10."""
    raw = root / folder / "raw"
    for prefix, n, offset in (("train", n_train, 0), ("t10k", n_test, n_train)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0] = np.arange(offset, offset + n)
        images[:, 10:18, 10:18] = 200
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(offset, offset + n) % 10)


def write_cifar10(root: Path, per_batch: int = 3) -> None:
    """Five train batches and a test batch; image i has red = i, green = 7, blue = 255 - i."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        idx = np.arange(k * per_batch, (k + 1) * per_batch)
        planes = np.stack([idx, np.full_like(idx, 7), 255 - idx], 1)  # [n, 3]
        data = np.repeat(planes[:, :, None], 1024, axis=2).reshape(-1, 3072).astype(np.uint8)
        batch = {"batch_label": name, "data": data, "labels": list(idx % 10)}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))


def _table(path: Path, header: list[str] | None, rows: list[list]) -> None:
    lines = [] if header is None else [str(len(rows)), " ".join(header)]
    lines += [" ".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def write_celeba(root: Path, n: int = 5) -> np.ndarray:
    """A ``celeba/`` folder like torchvision's: aligned 178x218 JPEGs (a bright centre square
    on black, grey level 40 * i) and the five list files. Returns the attributes (0/1)."""
    folder = root / "celeba"
    images = folder / "img_align_celeba"
    images.mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        pixels = np.zeros((218, 178, 3), np.uint8)
        pixels[35:183, 15:163] = 40 * i + 20  # the centre 148x148 square
        Image.fromarray(pixels).save(images / name, quality=95)
    attrs = (np.arange(n)[:, None] + np.arange(len(CELEBA_ATTRS))[None]) % 2
    _table(folder / "list_eval_partition.txt", None, [[m, i % 3] for i, m in enumerate(names)])
    _table(folder / "identity_CelebA.txt", None, [[m, 100 + i] for i, m in enumerate(names)])
    _table(
        folder / "list_bbox_celeba.txt",
        ["image_id", "x_1", "y_1", "width", "height"],
        [[m, 95, 71, 226, 313] for m in names],
    )
    marks = ["lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y"]
    marks += ["leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y"]
    _table(folder / "list_landmarks_align_celeba.txt", marks, [[m, *range(10)] for m in names])
    signs = [[m, *(2 * a - 1)] for m, a in zip(names, attrs, strict=True)]
    _table(folder / "list_attr_celeba.txt", CELEBA_ATTRS, signs)
    return attrs


def write_shapes3d(path: Path, sizes: tuple[int, ...], shuffle: bool = False) -> np.ndarray:
    """A 3dshapes.h5 of the full grid of ``sizes``: labels are the real kind of float values
    (hues in [0, 1), scales 0.75..1.25, shapes 0..3, orientations -30..30); image i holds
    i % 256 and i // 256 in its first two pixels. Returns the label rows."""
    grids = np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")
    classes = np.stack([g.ravel() for g in grids], 1)
    scales = [1 / sizes[0], 1 / sizes[1], 1 / sizes[2], 0.5 / max(sizes[3] - 1, 1), 1.0, 60.0]
    offsets = [0.0, 0.0, 0.0, 0.75, 0.0, -30.0]
    labels = classes * np.array(scales) + np.array(offsets)
    n = len(classes)
    images = np.zeros((n, 64, 64, 3), np.uint8)
    images[:, 0, 0, 0], images[:, 0, 1, 0] = np.arange(n) % 256, np.arange(n) // 256
    images[:, 32:, :, 1] = 90
    if shuffle:
        order = np.random.default_rng(0).permutation(n)
        images, labels = images[order], labels[order]
    with h5py.File(path, "w") as f:
        f["images"], f["labels"] = images, labels
    return labels


def dsprites_arrays(sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """0/1 images whose row ``i // 64``, column ``i % 64`` is set, and latents_classes with
    the constant color column first."""
    grids = np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")
    classes = np.stack([np.zeros(grids[0].size, np.int64)] + [g.ravel() for g in grids], 1)
    n = len(classes)
    imgs = np.zeros((n, 64, 64), np.uint8)
    imgs[np.arange(n), np.arange(n) // 64, np.arange(n) % 64] = 1
    return imgs, classes


def write_dsprites_npz(path: Path, sizes: tuple[int, ...], **overrides) -> None:
    imgs, classes = dsprites_arrays(sizes)
    arrays = dict(
        imgs=imgs,
        latents_classes=classes,
        latents_values=classes.astype(np.float64),
        metadata=np.array({"description": "tiny"}, dtype=object),
    )
    np.savez_compressed(path, **{**arrays, **overrides})


def write_dsprites_hdf5(path: Path, sizes: tuple[int, ...]) -> None:
    imgs, classes = dsprites_arrays(sizes)
    with h5py.File(path, "w") as f:
        f["imgs"], f["latents/classes"] = imgs, classes
        f["latents/values"] = classes.astype(np.float64)
