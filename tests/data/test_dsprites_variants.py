"""Color, noisy and scream dSprites: the definitions, checked against plain recomputations, the
seeded per-image nuisance, the painting file's errors, and a short training run of each."""

from __future__ import annotations

import io
import pickle
import time

import numpy as np
import PIL.Image
import pytest
import torch

from vaelab.data import DataError, dsprites_file, dsprites_variants
from vaelab.data.dsprites import ProceduralDSprites
from vaelab.data.dsprites_file import FILE_NAMES, DSpritesFile
from vaelab.data.dsprites_variants import ColorDSprites, NoisyDSprites, ScreamDSprites

from . import formats

INDICES = np.array([0, 737279, 123456, 400000, 98765, 5000, 654321, 31])
M64 = 2**64 - 1
GAMMA = 0x9E3779B97F4A7C15


def splitmix(x: int) -> int:
    """SplitMix64's finaliser on a Python int, written out independently."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def word(seed: int, i: int, j: int) -> int:
    """``w_ij`` of the module docstring."""
    z = splitmix((splitmix(seed % 2**64) + (i + 1) * GAMMA) & M64)
    return splitmix((z + (j + 1) * GAMMA) & M64)


def u(seed: int, i: int, j: int) -> float:
    return (word(seed, i, j) >> 11) / 2**53


@pytest.fixture
def painting(tmp_path) -> np.ndarray:
    """A random 100 x 90 RGB 'painting' saved losslessly as ``scream.jpg`` (PIL reads the
    content, not the name); ``thumbnail((350, 274))`` leaves an image this small as it is."""
    array = np.random.default_rng(7).integers(0, 256, (100, 90, 3), dtype=np.uint8)
    PIL.Image.fromarray(array).save(tmp_path / "scream.jpg", format="PNG")
    return array


@pytest.fixture
def sources(tmp_path, painting) -> dict:
    cache = tmp_path / "cache"
    return {
        "color": ColorDSprites(cache),
        "noisy": NoisyDSprites(cache),
        "scream": ScreamDSprites(cache, data_dir=tmp_path, download=False),
    }


@pytest.fixture(scope="module")
def masks() -> np.ndarray:
    """Base dSprites masks of ``INDICES`` (rendered for these rows only), bool ``[n, 64, 64]``."""
    return ProceduralDSprites().images(INDICES)[:, 0].numpy() > 0


def test_shapes_factors_and_attributes(sources):
    base = ProceduralDSprites()
    for source in sources.values():
        images = source.images(INDICES)
        assert images.shape == (len(INDICES), 3, 64, 64) and images.dtype == torch.uint8
        assert source.image_shape == (3, 64, 64) and len(source) == 737280
        assert source.streamed and not source.binary and source.has_factors
        assert tuple(source.factor_names) == tuple(base.factor_names)
        assert tuple(source.factor_sizes) == tuple(base.factor_sizes)
        np.testing.assert_array_equal(source.labels(INDICES), base.factors_of(INDICES))
        classes = source.labels(INDICES[:3])
        assert torch.equal(source.images_of(classes), images[:3])
        assert source.images(np.array([], dtype=np.int64)).shape == (0, 3, 64, 64)
        with pytest.raises(IndexError):
            source.images(np.array([737280]))
        pickled = pickle.dumps(source)  # as into loader workers: no masks, no crops
        assert len(pickled) < 10_000
        assert torch.equal(pickle.loads(pickled).images(INDICES[:2]), images[:2])
    assert not (sources["color"].base.cache_path).exists()  # only the rows asked for rendered


def test_color_is_the_mask_times_a_colour(sources, masks):
    images = sources["color"].images(INDICES).numpy()
    for n, i in enumerate(INDICES):
        colour = [round(255 * (0.5 + 0.5 * u(0, int(i), j))) for j in range(3)]
        expected = masks[n][None] * np.array(colour, np.uint8)[:, None, None]
        np.testing.assert_array_equal(images[n], expected)
        assert all(127 <= c <= 255 for c in colour)


def test_noisy_is_a_white_sprite_on_uniform_noise(sources, masks):
    images = sources["noisy"].images(INDICES).numpy()
    sprite = np.broadcast_to(masks[:, None], images.shape)
    assert (images[sprite] == 255).all()
    background = images[~sprite]
    assert background.min() == 0 and background.max() == 255
    assert background.mean() == pytest.approx(127.5, abs=1)
    counts = np.bincount(background, minlength=256)  # round(255 n): ends have half the mass
    assert counts[1:255].min() > 0.8 * len(background) / 255
    for n, c, row, col in [(0, 0, 0, 0), (3, 2, 63, 63), (5, 1, 10, 37), (7, 0, 40, 3)]:
        if masks[n, row, col]:
            continue
        e = 4096 * c + 64 * row + col
        k = (word(0, int(INDICES[n]), e // 4) >> (16 * (e % 4))) & 0xFFFF
        assert images[n, c, row, col] == round(255 * (k + 0.5) / 2**16)


def test_scream_is_a_shifted_crop_inverted_on_the_sprite(sources, masks, painting):
    images = sources["scream"].images(INDICES).numpy().astype(np.float32)
    height, width = painting.shape[:2]
    crops = np.lib.stride_tricks.sliding_window_view(painting, (64, 64), axis=(0, 1))
    crops = crops.astype(np.float32)  # [H - 63, W - 63, 3, 64, 64]
    for n, i in enumerate(INDICES.tolist()):
        mask = masks[n]
        background = np.where(mask, 255 - images[n], images[n])  # undo the inversion
        # Find the crop: 2 * background - crop = 255 s is constant per channel there only.
        residual = 2 * background[None, None] - crops
        spread = residual[..., ~mask].std(-1).sum(-1)
        row, col = np.unravel_index(spread.argmin(), spread.shape)
        assert (row, col) == (int(u(0, i, 0) * (height - 64)), int(u(0, i, 1) * (width - 64)))
        assert row < height - 64 and col < width - 64
        shift = np.array([u(0, i, j) for j in (2, 3, 4)])
        found = residual[row, col][:, ~mask].mean(-1) / 255  # rounding errors average out
        np.testing.assert_allclose(found, shift, atol=0.002)
        b = (crops[row, col].astype(np.float64) / 255 + shift[:, None, None]) / 2
        expected = np.where(mask, 1 - b, b) * 255
        assert np.abs(images[n] - expected).max() <= 0.5 + 1e-4  # rounded to the nearest


@pytest.mark.parametrize("kind", ["color", "noisy", "scream"])
def test_nuisance_is_a_function_of_seed_and_index(tmp_path, sources, kind):
    source = sources[kind]
    first = source.images(np.array([5, 100, 70000, 7]))
    again = source.images(np.array([7, 9999, 5]), chunk=2)  # other batch, other chunks
    assert torch.equal(first[[3, 0]], again[[0, 2]])
    crossing = np.arange(1000, 1070)  # longer than a colouring block of 64
    whole = source.images(crossing)
    assert torch.equal(whole[65:67], source.images(crossing[65:67]))
    assert torch.equal(whole, type(source)(**vars_of(source)).images(crossing))  # a fresh one
    other = type(source)(**vars_of(source, seed=1)).images(crossing)
    # Another seed, other nuisance (two colours can agree by chance: 1 in 2 million).
    assert (other != whole).flatten(1).any(1).float().mean() > 0.95
    if kind == "color":  # same sprites, other colours
        assert torch.equal(other > 0, whole > 0)
        colours = whole.flatten(2).amax(2)  # [n, 3]: every image its own colour
        assert len(torch.unique(colours, dim=0)) == len(crossing)
    else:  # other indices: other noise / crops where neither image has its sprite
        both = (ProceduralDSprites().images(crossing[:2])[:, 0] == 0).all(0)
        assert (whole[0][:, both] != whole[1][:, both]).float().mean() > 0.5


def vars_of(source, **changes) -> dict:
    args = {"cache_dir": source.base.cache_path.parent, "seed": source.seed}
    if isinstance(source, ScreamDSprites):
        args |= {"data_dir": source.path.parent, "download": False}
    return args | changes


def test_reference_words_match_the_vectorised_hash():
    indices = np.array([0, 1, 737279, 2**40])
    for seed in (0, 1, -3, 2**63 + 5):
        words = dsprites_variants.hash_words(seed, indices, 7)
        assert [[int(w) for w in row] for row in words] == [
            [word(seed, int(i), j) for j in range(7)] for i in indices
        ]


def test_masks_come_from_deepminds_file_read_once(tmp_path, monkeypatch):
    sizes = (3, 2, 3, 2, 2)

    class TinyProcedural(ProceduralDSprites):
        factor_sizes = sizes

    class TinyColor(ColorDSprites):
        base_class = TinyProcedural
        factor_sizes = sizes

    monkeypatch.setattr(DSpritesFile, "factor_sizes", sizes)
    formats.write_dsprites_npz(tmp_path / FILE_NAMES[0], sizes)  # image i: pixel (i//64, i%64)
    reads = []
    read_npz = dsprites_file.read_npz
    monkeypatch.setattr(dsprites_file, "read_npz", lambda *a: reads.append(a) or read_npz(*a))
    source = TinyColor(tmp_path)
    for indices in ([5, 70, 1], [71, 0]):
        images = source.images(np.array(indices))
        rows, cols = np.nonzero(images.amax(1).numpy() > 0)[1:]
        assert rows.tolist() == [i // 64 for i in indices]
        assert cols.tolist() == [i % 64 for i in indices]
    assert len(reads) == 2  # latents_classes checked once, imgs decompressed once
    everything = source.images()
    assert everything.shape == (72, 3, 64, 64)
    assert torch.equal(everything, source.images(np.arange(72), chunk=5))


def test_missing_scream_names_folder_file_and_source(tmp_path):
    with pytest.raises(DataError) as info:
        ScreamDSprites(tmp_path, download=False).check_available()
    message = str(info.value)
    assert "scream_dsprites" in message and str(tmp_path) in message and "download is off"
    assert "scream.jpg" in message and "upload.wikimedia.org" in message and "\n" not in message
    with pytest.raises(ValueError, match="needs data_dir"):
        ScreamDSprites()


def test_offline_download_fails_fast_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(dsprites_variants, "SCREAM_URL", "http://127.0.0.1:9/scream.jpg")
    started = time.monotonic()
    with pytest.raises(DataError, match=r"the download failed: URLError") as info:
        ScreamDSprites(data_dir=tmp_path / "data").images(np.array([0]))
    assert time.monotonic() - started < 10
    assert "scream.jpg" in str(info.value) and "\n" not in str(info.value)
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("good", [True, False])
def test_download_moves_only_a_readable_image_into_place(tmp_path, monkeypatch, good):
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (80, 90), (200, 10, 10)).save(buffer, format="JPEG")
    body = buffer.getvalue() if good else b"<html>rate limited</html>"
    requests = []
    monkeypatch.setattr(
        dsprites_variants.urllib.request,
        "urlopen",
        lambda request: requests.append(request) or io.BytesIO(body),
    )
    source = ScreamDSprites(data_dir=tmp_path)
    if good:
        assert source.images(np.array([3])).shape == (1, 3, 64, 64)
        assert [p.name for p in tmp_path.iterdir()] == ["scream.jpg"]
        assert requests[0].get_header("User-agent").startswith("vaelab")
    else:
        with pytest.raises(DataError, match=r"download failed: DataError.*not a readable image"):
            source.check_available()
        assert list(tmp_path.iterdir()) == []


def test_painting_is_shrunk_like_disentanglement_lib(tmp_path):
    path = tmp_path / "scream.jpg"
    PIL.Image.new("RGB", (700, 600), (10, 200, 30)).save(path, format="JPEG")
    painting = dsprites_variants.read_painting(path)  # fits in 350 x 274, aspect kept
    assert painting.shape == (274, 320, 3) and painting.dtype == np.uint8
    assert np.abs(painting.astype(int) - [10, 200, 30]).max() <= 3


def test_corrupt_or_small_scream_names_the_file(tmp_path):
    path = tmp_path / "scream.jpg"
    path.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"scream\.jpg cannot be used: it is not a readable"):
        ScreamDSprites(data_dir=tmp_path, download=False).check_available()
    PIL.Image.new("RGB", (60, 200)).save(path, format="JPEG")
    with pytest.raises(DataError, match=r"scream\.jpg cannot be used: it is 60x200 pixels"):
        ScreamDSprites(data_dir=tmp_path).check_available()


@pytest.mark.programs
@pytest.mark.parametrize("variant", ["color_dsprites", "noisy_dsprites", "scream_dsprites"])
def test_trains_through_the_cli(cli, tmp_path, variant):
    (tmp_path / "data").mkdir()
    PIL.Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (120, 100, 3), dtype=np.uint8)
    ).save(tmp_path / "data" / "scream.jpg", format="JPEG")
    run_dir, result = cli(f"data={variant}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "metrics.json").is_file()


@pytest.mark.programs
def test_cli_reports_a_missing_painting_in_one_paragraph_with_status_2(cli):
    _, result = cli("data=scream_dsprites", "data.source.download=false")
    assert result.returncode == 2, result.stderr[-3000:]
    line = next(x for x in result.stderr.splitlines() if x.startswith("error:"))
    assert "The scream_dsprites data set is not available (download is off)" in line
    assert "scream.jpg" in line and "upload.wikimedia.org" in line
