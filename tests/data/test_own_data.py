"""The user's own data: factor tables that need not be grids, images from a folder or an
array file, and both through the CLI (`data=factors`, `data=images`)."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import TINY, read_metrics, run_cli
from tests.metrics.toy import STEP, ToySource, identity_encoder, mixing_encoder, noise_encoder
from vaelab.data import ImageDataModule
from vaelab.data.base import DataError
from vaelab.data.factor_table import FactorTable, TableSource
from vaelab.data.image_factors import FactorImages
from vaelab.data.image_files import ImageFiles
from vaelab.metrics.suite import METRICS, run_suite

SMALL = {"num_train": 300, "num_test": 150, "num_variance_estimate": 300, "batch_size": 8,
         "downstream_sizes": (10, 100), "fairness_per_class": 5}  # fmt: skip


class ToyTable(TableSource):
    """The toy grid's images at ``rows`` (any order, any subset, repeats allowed), their
    factors as a table."""

    name = "toy_table"

    def __init__(self, rows: np.ndarray) -> None:
        self.grid, self.rows = ToySource(), np.asarray(rows)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.grid.image_shape

    def load_table(self) -> FactorTable:
        return FactorTable(self.grid.factors_of(self.rows), self.grid.factor_names)

    def images(self, indices: np.ndarray | None = None) -> torch.Tensor:
        picked = self.rows if indices is None else self.rows[np.asarray(indices)]
        return self.grid.images(picked)


def test_whole_numbers_are_classes_and_real_values_are_binned():
    values = np.array([[3, 0.0], [7, 0.5], [3, 0.26], [11, 1.0]])
    table = FactorTable(values, ["count", "angle"], bins=4)
    np.testing.assert_array_equal(table.classes[:, 0], [0, 1, 0, 2])
    np.testing.assert_array_equal(table.classes[:, 1], [0, 2, 1, 3])  # bins of width 0.25
    assert table.sizes == (3, 4) and table.binned == ("angle",) and not table.is_grid
    empty_bin = FactorTable(np.array([[0.0], [0.1], [0.95], [1.0]]), ["x"], bins=4).classes
    np.testing.assert_array_equal(empty_bin[:, 0], [0, 0, 1, 1])  # empty bins dropped
    with pytest.raises(ValueError, match="'angle' has missing or infinite values"):
        FactorTable(np.array([[1, np.nan]]), ["count", "angle"])


def test_a_table_that_is_a_grid_gives_the_grid_sources_metrics():
    order = np.random.default_rng(0).permutation(len(ToySource()))
    table, grid = ToyTable(order), ToySource()
    assert table.is_grid and table.factor_sizes == grid.factor_sizes
    for encode in (identity_encoder, mixing_encoder()):  # codes that depend on the image alone
        on_grid = run_suite(grid, encode, 3, METRICS, **SMALL).values
        on_table = run_suite(table, encode, 3, METRICS, **SMALL).values
        for key, value in on_grid.items():
            if "/time/" not in key:
                assert on_table[key] == value, key


def test_rows_missing_from_the_grid_still_score_perfect_codes_high_and_noise_low():
    keep = np.random.default_rng(1).random(len(ToySource())) < 0.6
    table = ToyTable(np.flatnonzero(keep))
    assert not table.is_grid and len(table) == keep.sum()
    metrics = [m for m in METRICS if m != "fairness"]
    perfect = run_suite(table, identity_encoder, 0, metrics, **SMALL).values
    noise = run_suite(table, noise_encoder(), 0, metrics, **SMALL).values
    assert perfect["disent/factor_vae_eval"] == 1.0 and perfect["disent/beta_vae_eval"] == 1.0
    assert perfect["disent/dci[gbt]/d"] > 0.9 and perfect["disent/mig"] > 0.5
    assert noise["disent/factor_vae_eval"] < 0.6 and noise["disent/mig"] < 0.05
    assert noise["disent/dci[gbt]/d"] < 0.2
    with pytest.raises(ValueError, match="no image has the factor classes"):
        run_suite(table, identity_encoder, 0, ["fairness"], **SMALL)


def test_draws_on_a_partial_table_read_only_observed_images_that_share_the_held_factor():
    rows = np.flatnonzero(np.random.default_rng(2).random(len(ToySource())) < 0.5)
    table, rng = ToyTable(rows), np.random.default_rng(0)
    drawn = table.sample_factors(500, rng)
    observed = {tuple(r) for r in table.table.classes}
    assert {tuple(r) for r in drawn} <= observed
    fixed, values = rng.integers(0, 3, 500), drawn[np.arange(500), rng.integers(0, 3, 500)]
    values = np.minimum(values, np.asarray(table.factor_sizes)[fixed] - 1)
    shared = table.share_factor(drawn, fixed, values, rng)
    np.testing.assert_array_equal(shared[np.arange(500), fixed], values)
    assert {tuple(r) for r in shared} <= observed
    images = table.images(table.index_of(shared)).view(500, -1).numpy()
    expected = table.grid.factors_of(table.grid.index_of(shared))
    np.testing.assert_array_equal(images // STEP, expected)


def test_several_images_of_one_combination_are_all_drawn():
    rows = np.repeat(np.arange(len(ToySource())), 3)  # every combination three times
    table = ToyTable(rows)
    assert table.is_grid
    classes = np.zeros((300, 3), dtype=np.int64)
    picked = table.index_of(classes)
    assert set(picked.tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(table.index_of(classes), picked)  # the same draw, same images


# --- images and tables in files -----------------------------------------------------------


def write_pngs(folder: Path, n: int, size: int = 8, mode: str = "L") -> np.ndarray:
    """n images whose pixels all equal 10 * i % 250 (i-th image); returns factors [n, 2]."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = np.full((size, size) if mode == "L" else (size, size, 3), 10 * i % 250, np.uint8)
        Image.fromarray(pixels, mode).save(folder / f"img_{i:03d}.png")
    return np.stack([np.arange(n) % 4, np.arange(n) // 4 * 0.37], axis=1)


def write_csv(path: Path, header: list[str], rows) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_folder_and_csv_with_a_file_column(tmp_path: Path):
    factors = write_pngs(tmp_path / "imgs", 12)
    order = [5, 0, 11, 3, 1, 2, 4, 6, 7, 8, 9, 10]
    table = write_csv(
        tmp_path / "f.csv", ["shape", "file", "size"],
        [[factors[i, 0], f"img_{i:03d}.png", factors[i, 1]] for i in order],
    )  # fmt: skip
    source = FactorImages(ImageFiles(tmp_path / "imgs"), table)
    assert source.image_shape == (1, 8, 8) and len(source) == 12
    assert source.factor_names == ("shape", "size") and source.binned_factors == ("size",)
    images = source.images(np.arange(12))
    np.testing.assert_array_equal(images[:, 0, 0, 0].numpy(), 10 * np.array(order))
    np.testing.assert_array_equal(source.factors_of(np.arange(12))[:, 0], factors[order, 0])


@pytest.mark.parametrize("layout", ["npy_nhw", "npz_nhwc", "h5_nchw", "npy_float"])
def test_array_files_in_every_layout(tmp_path: Path, layout: str):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    grey = rgb[..., 0]
    if layout == "npy_nhw":
        np.save(tmp_path / "x.npy", grey)
        path, expected = tmp_path / "x.npy", grey[:, None]
    elif layout == "npz_nhwc":
        np.savez(tmp_path / "x.npz", images=rgb, factors=np.arange(6))
        path, expected = tmp_path / "x.npz", rgb.transpose(0, 3, 1, 2)
    elif layout == "h5_nchw":
        with h5py.File(tmp_path / "x.h5", "w") as f:
            f["images"] = rgb.transpose(0, 3, 1, 2)
            f["factors"] = np.stack([np.arange(6), np.arange(6) % 2], 1)
            f["factors"].attrs["names"] = ["a", "b"]
        path, expected = tmp_path / "x.h5", rgb.transpose(0, 3, 1, 2)
    else:
        np.save(tmp_path / "x.npy", grey / 255.0)
        path, expected = tmp_path / "x.npy", grey[:, None]
    source = ImageFiles(path)
    assert source.image_shape == expected.shape[1:] and len(source) == 6
    np.testing.assert_array_equal(source.images([4, 1]).numpy(), expected[[4, 1]])
    assert source.streamed == (path.suffix in (".npy", ".h5"))
    if layout == "h5_nchw":
        assert FactorImages(source, path).factor_names == ("a", "b")


def bad(tmp_path: Path, case: str):
    imgs = tmp_path / "imgs"
    factors = write_pngs(imgs, 6)
    table = write_csv(tmp_path / "f.csv", ["a", "b"], factors)
    if case == "rows":
        return FactorImages(ImageFiles(imgs), write_csv(tmp_path / "g.csv", ["a"], [[1]] * 5))
    if case == "named rows":  # a `file` column that leaves img_003.png out
        rows = [[f"img_{i:03d}.png", 1] for i in (0, 1, 2, 4, 5)]
        return FactorImages(ImageFiles(imgs), write_csv(tmp_path / "g.csv", ["file", "a"], rows))
    if case == "column":
        return FactorImages(ImageFiles(imgs), table, columns=["a", "colour"])
    if case == "text":
        rows = [[1, "red"]] * 6
        return FactorImages(ImageFiles(imgs), write_csv(tmp_path / "g.csv", ["a", "c"], rows))
    if case == "sizes":
        Image.fromarray(np.zeros((9, 8), np.uint8)).save(imgs / "img_100.png")
    if case == "channels":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(imgs / "img_100.png")
    if case == "empty":
        (tmp_path / "empty").mkdir()
        return ImageFiles(tmp_path / "empty")
    if case == "unreadable":
        (imgs / "img_100.png").write_bytes(b"not a png")
    if case == "names":
        np.save(tmp_path / "f.npy", factors)
        return FactorImages(ImageFiles(imgs), tmp_path / "f.npy", names=["a"])
    if case == "short line":
        (tmp_path / "g.csv").write_text("a,b\n1,2\n3\n")
        return FactorImages(ImageFiles(imgs), tmp_path / "g.csv")
    if case in ("one unknown file", "unknown files"):
        others = ["nope.png"] if case == "one unknown file" else ["nope.png", "gone.png"]
        rows = [[f"img_{i:03d}.png", 1] for i in range(6 - len(others))]
        rows += [[name, 1] for name in others]
        return FactorImages(ImageFiles(imgs), write_csv(tmp_path / "g.csv", ["file", "a"], rows))
    if case in ("two arrays", "no such array"):
        np.savez(tmp_path / "two.npz", a=np.zeros((6, 8, 8), np.uint8), b=np.zeros((6, 8, 8)))
        return ImageFiles(tmp_path / "two.npz", key="c" if case == "no such array" else None)
    return FactorImages(ImageFiles(imgs), table)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("rows", ["has 5 rows", "holds 6 images", "one row per image"]),
        ("named rows", ["has a row for 5 of the 6 images", "none names e.g. 'img_003.png'"]),
        ("column", ["['colour']", "its columns are ['a', 'b']"]),
        ("text", ["column 'c' is not numeric", "line 2", "'red'"]),
        ("sizes", ["differ in size or kind", "img_100.png is grey 8x9"]),
        ("channels", ["differ in size or kind", "img_100.png is colour 8x8"]),
        ("empty", ["holds no PNG or JPEG images"]),
        ("unreadable", ["img_100.png", "cannot be read as an image"]),
        ("names", ["2 factor columns but 1 names"]),
        ("short line", ["line 3 does not have the header's 2 columns"]),
        ("one unknown file", ["names a file that is not an image in", ": 'nope.png'."]),
        ("unknown files", ["names 2 files that are not images in", "e.g. 'nope.png'"]),
        ("two arrays", ["holds the arrays ['a', 'b'] and none is named 'images'",
                        "choose one with data.key (e.g. data.key=a)"]),
        ("no such array", ["has no array 'c' (data.key=c), only ['a', 'b']"]),
    ],
)  # fmt: skip
def test_bad_user_data_is_one_paragraph(tmp_path: Path, case: str, words: list[str]):
    source = bad(tmp_path, case)
    with pytest.raises(DataError) as info:
        source.check_available()
        source.load_table()
    message = str(info.value)
    assert all(w in message for w in words), message
    assert "\n" not in message
    assert message.count("cannot be used") <= 1 and message.count("Check the file") <= 1


def float_images(path: Path, low: float, high: float, n: int = 6) -> Path:
    """``n`` float32 8x8 grey images with values spread from ``low`` to ``high``, saved as
    ``path`` (.npy, .npz or .h5)."""
    values = np.linspace(low, high, n * 64, dtype=np.float32).reshape(n, 8, 8)
    if path.suffix == ".npy":
        np.save(path, values)
    elif path.suffix == ".npz":
        np.savez(path, images=values)
    else:
        with h5py.File(path, "w") as f:
            f["images"] = values
    return path


@pytest.mark.parametrize(
    ("name", "low", "high", "words"),
    [
        ("x.npy", 0.0, 2.0, ["values from 0 to 2"]),
        ("x.npy", -0.5, 0.5, ["values from -0.5 to 0.5"]),
        ("x.npz", 0.0, 255.0, ["values from 0 to 255", "divide by 255"]),
        ("x.h5", 0.0, 1.5, ["values from 0 to 1.5"]),
        ("x.npy", np.nan, np.nan, ["NaN or infinite values"]),
    ],
)
def test_float_images_outside_0_1_are_refused_when_opened(tmp_path, name, low, high, words):
    path = float_images(tmp_path / name, low, high)
    with pytest.raises(DataError) as info:
        ImageFiles(path).check_available()
    message = str(info.value)
    assert all(w in message for w in words), message
    assert f"The data file {path} cannot be used" in message and "data.path" in message
    assert "[0, 1]" in message and "uint8" in message and "\n" not in message


def test_float_range_is_read_block_by_block_and_rounding_beyond_0_1_is_kept(tmp_path, monkeypatch):
    import vaelab.data.image_files as image_files

    monkeypatch.setattr(image_files, "SCAN_BYTES", 8 * 8 * 4)  # one image a block
    values = np.zeros((6, 8, 8), np.float32)
    values[5, 3, 3] = 1.5  # in the last block only
    np.save(tmp_path / "late.npy", values)
    with pytest.raises(DataError, match=r"values from 0 to 1\.5"):
        ImageFiles(tmp_path / "late.npy").check_available()
    values[5, 3, 3], values[0, 0, 0], values[1, 0, 0] = 1 + 1e-6, -1e-6, 0.5
    np.save(tmp_path / "rounded.npy", values)
    images = ImageFiles(tmp_path / "rounded.npy").images([0, 1, 5])
    assert images[:, 0, 0, 0].tolist() == [0, 128, 0] and images[2, 0, 3, 3] == 255


# --- through the CLI ------------------------------------------------------------------------

SUITE = [
    "evaluation=fast", "evaluation.iwae_k=4", "evaluation.iwae_images=4",
    "evaluation.quality_images=8", "evaluation.disentanglement=[mig,factor_vae]",
    "evaluation.suite.num_train=100", "evaluation.suite.num_test=50",
    "+evaluation.suite.num_variance_estimate=100", "+evaluation.suite.batch_size=8",
]  # fmt: skip


def test_own_images_and_factors_train_and_are_evaluated(tmp_path: Path):
    factors = write_pngs(tmp_path / "imgs", 80, size=16, mode="RGB")
    table = write_csv(tmp_path / "f.csv", ["shape", "size"], factors[:, :2] + [[0, 0.001]])
    run = tmp_path / "run"
    result = run_cli(
        run, *TINY, "data=factors", f"data.path={tmp_path / 'imgs'}", f"data.factors={table}",
        "data.factor_bins=5", *SUITE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_metrics(run)
    assert record["status"] == "completed"
    metrics = record["metrics"]
    assert 0 <= metrics["disent/mig"] <= 1 and "disent/factor_vae_eval" in metrics
    assert any("factor size takes real values" in note for note in record["notes"])
    plain = run_cli(tmp_path / "plain", *TINY, "data=images", f"data.path={tmp_path / 'imgs'}")
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert not any(k.startswith("disent/") for k in read_metrics(tmp_path / "plain")["metrics"])


def test_bad_own_data_exits_2_with_one_paragraph_before_training(tmp_path: Path):
    write_pngs(tmp_path / "imgs", 20)
    table = write_csv(tmp_path / "f.csv", ["a"], [[1]] * 19)
    run = tmp_path / "run"
    result = run_cli(run, *TINY, "data=factors", f"data.path={tmp_path / 'imgs'}",
                     f"data.factors={table}", "data.channels=1")  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "has 19 rows" in result.stderr and "Traceback" not in result.stderr
    assert not (run / "checkpoints").exists()
    missing = run_cli(tmp_path / "run2", *TINY, "data=images")
    assert missing.returncode == 2 and "data.path" in missing.stderr, missing.stderr[-2000:]


def test_float_images_outside_0_1_exit_2_before_training(tmp_path: Path):
    path = float_images(tmp_path / "x.npy", 0.0, 2.0, n=60)
    run = tmp_path / "run"
    result = run_cli(run, *TINY, "data=images", f"data.path={path}", "data.channels=1",
                     process=False)  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "its float images take values from 0 to 2" in result.stderr
    assert "Traceback" not in result.stderr and not (run / "checkpoints").exists()


def test_heat_maps_of_own_resized_images_without_the_evaluation(tmp_path: Path):
    factors = write_pngs(tmp_path / "imgs", 64, size=32)  # brought to data.image_size=64
    table = write_csv(tmp_path / "f.csv", ["shape", "size"], factors)
    run = tmp_path / "run"
    tiny = [o for o in TINY if not o.startswith(("size=", "figures."))]
    result = run_cli(
        run, *tiny, "arch=mlp", "data=factors", f"data.path={tmp_path / 'imgs'}",
        f"data.factors={table}", "data.channels=1", "figures.include=[factors]",
        "figures.factors.num_points=100", process=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_metrics(run)
    assert record["status"] == "completed"
    assert record["figures"] == ["figures/dci_importance.png", "figures/mig_mutual_info.png"]


def test_a_one_image_test_split_skips_only_the_interpolation(tmp_path: Path):
    path = tmp_path / "floats.npy"
    np.save(path, np.random.default_rng(0).random((50, 8, 8), dtype=np.float32))
    run = tmp_path / "run"
    tiny = [o for o in TINY if not o.startswith(("size=", "figures.", "data.val", "data.test"))]
    result = run_cli(
        run, *tiny, "arch=mlp", "data=images", f"data.path={path}", "data.channels=1",
        "data.image_size=8", "figures.n_images=4", process=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_metrics(run)
    assert record["status"] == "completed"
    figures = {Path(f).stem for f in record["figures"]}
    assert "interpolation" not in figures
    assert {"reconstructions_samples", "samples", "traversal", "latent_scatter"} <= figures
    output = result.stdout + result.stderr
    assert "interpolation skipped: the test split has 1 image and it needs two" in output


def test_data_messages_name_the_users_data_by_its_path(tmp_path: Path):
    path = float_images(tmp_path / "x.npy", 0.0, 1.0, n=50)
    source = ImageFiles(path)
    with pytest.raises(DataError) as info:
        ImageDataModule(source, batch_size=64, channels=1).check_available()
    message = str(info.value)
    assert f"the training split has 48 images of data.path={path} (data.subset=null" in message
    assert message.endswith("so no step could train; lower data.batch_size (or "
                            "data.val_fraction / data.test_fraction).")  # fmt: skip
    with pytest.raises(DataError) as info:
        ImageDataModule(source, channels=3).check_available()
    message = str(info.value)
    assert f"but the images of data.path={path} have 1 channel (grey)" in message
    table = write_csv(tmp_path / "f.csv", ["a"], [[i % 2] for i in range(50)])
    with pytest.raises(DataError) as info:
        ImageDataModule(FactorImages(source, table), channels=3).check_available()
    assert f"but the images of data.path={path} have 1 channel" in str(info.value)
