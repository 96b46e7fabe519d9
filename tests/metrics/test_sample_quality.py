"""FID and KID through torchmetrics on known answers with the small feature network: a set
against itself, noise that raises both, FID's closed form, KID's unbiased MMD² on seeded subsets
by hand, grey images as RGB, float samples as uint8, the prior samples' batches and seed, the
Evaluator's prior samples, the settings' checks; and the Inception network's loading path:
torch-fidelity missing, offline, a missing, unsafe, truncated, unreadable or foreign weights
file, and a weights file given by path."""

from __future__ import annotations

import logging
import pickle
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from tests.data.test_datamodule import make as numbered_data
from tests.test_module import module as mlp_module
from vaelab.errors import ConfigError
from vaelab.evaluate import Evaluator
from vaelab.metrics.sample_quality import PixelFeatures, SampleQuality, to_uint8_rgb

WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS}"


def squares(n: int = 200, side: int = 32, seed: int = 0) -> torch.Tensor:
    """Grey images of one white square each (side 4 to 8 pixels, anywhere)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, side, side, dtype=torch.uint8)
    corners, sizes = (
        torch.randint(0, side - 8, (n, 2), generator=g),
        torch.randint(4, 9, (n,), generator=g),
    )
    for image, (row, col), size in zip(images, corners.tolist(), sizes.tolist(), strict=True):
        image[:, row : row + size, col : col + size] = 255
    return images


def pixel_quality(**settings) -> SampleQuality:
    return SampleQuality(**{"features": PixelFeatures(), "kid_subset_size": 100, "kid_subsets": 20,
                            **settings})  # fmt: skip


def test_a_set_against_itself_has_fid_0_and_kid_about_0():
    x = squares()
    got = pixel_quality().compare(x, x)
    assert got["fid"] == pytest.approx(0.0, abs=1e-6)
    # KID's unbiased MMD² on random subsets of each copy scatters around 0
    assert abs(got["kid"]) < 1e-3 and got["kid_std"] < 1e-3


def test_fid_and_kid_grow_with_added_noise():
    x, g = squares(), torch.Generator().manual_seed(1)
    quality, values = pixel_quality(), []
    for sigma in (20, 60, 150):
        noisy = (x + sigma * torch.randn(x.shape, generator=g)).round().clamp(0, 255)
        values.append(quality.compare(x, noisy.to(torch.uint8)))
    assert 0.05 < values[0]["fid"] < values[1]["fid"] < values[2]["fid"]
    assert 1e-3 < values[0]["kid"] < values[1]["kid"] < values[2]["kid"]


def test_pixel_features_are_pooled_pixels_and_grey_images_enter_as_rgb():
    grey = torch.zeros(2, 1, 16, 16, dtype=torch.uint8)
    grey[:, 0, :8, :8] = 255  # the top-left quadrant white
    rgb = to_uint8_rgb(grey)
    assert rgb.shape == (2, 3, 16, 16) and (rgb == grey).all()
    features = SampleQuality(features=PixelFeatures(size=2)).features_of(grey)
    assert features.dtype == torch.float64 and features.shape == (2, PixelFeatures(2).num_features)
    assert features[0].tolist() == [1.0, 0.0, 0.0, 0.0] * 3
    # samples in [0, 1] are rounded to uint8: x = 0.5 is 127.5 -> 128
    assert to_uint8_rgb(torch.full((1, 3, 2, 2), 0.5)).unique().tolist() == [128]
    # the default, evaluation.fid.features={_target_:...PixelFeatures}: 8 x 8 cells of 4 x 4
    image = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    image[..., :4, :4] = 255
    features = SampleQuality(features=PixelFeatures()).features_of(image)
    assert PixelFeatures().num_features == 192 and features.shape == (1, 192)
    assert features[0].tolist() == ([1.0] + [0.0] * 63) * 3


def test_float_samples_become_uint8_levels_rounded_and_clipped():
    levels = to_uint8_rgb((torch.arange(256) / 255).reshape(1, 1, 16, 16))
    assert levels.dtype == torch.uint8 and levels.shape == (1, 3, 16, 16)
    assert (levels == torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)).all()
    # a decoder's mean outside [0, 1] is clipped, not wrapped around
    outside = torch.tensor([-0.5, -0.001, 1.001, 1.5]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    assert to_uint8_rgb(outside)[0, :, 0].tolist() == [[0, 0], [0, 0], [0, 0]]
    assert to_uint8_rgb(outside)[0, :, 1].tolist() == [[255, 255]] * 3


def test_images_neither_grey_nor_rgb_are_refused_naming_their_channels():
    with pytest.raises(ValueError, match="2 channels"):
        to_uint8_rgb(torch.zeros(1, 2, 5, 5, dtype=torch.uint8))
    with pytest.raises(ValueError, match="4 channels"):
        SampleQuality(features=PixelFeatures()).features_of(torch.rand(3, 4, 6, 6))


def one_pixel(n: int, high: int, generator: torch.Generator) -> torch.Tensor:
    """RGB images of one pixel: under PixelFeatures(size=1) their features are the pixel / 255."""
    return torch.randint(0, high, (n, 3, 1, 1), generator=generator, dtype=torch.uint8)


def test_fid_is_the_frechet_distance_between_the_fitted_gaussians():
    g = torch.Generator().manual_seed(2)
    quality = pixel_quality(features=PixelFeatures(size=1))
    a = one_pixel(60, 200, g)
    # shifted by 40 levels: the same covariance, FID = ||mu_a - mu_b||^2 = 3 (40 / 255)^2 (up
    # to PixelFeatures' float32)
    assert quality.compare(a, a + 40)["fid"] == pytest.approx(3 * (40 / 255) ** 2, rel=1e-6)
    b = (torch.rand(80, 3, 1, 1, generator=g) ** 2 * 255).round().to(torch.uint8)
    fa, fb = (quality.features_of(x).numpy() for x in (a, b))
    ca, cb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    closed = ((fa.mean(0) - fb.mean(0)) ** 2).sum() + np.trace(
        ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real
    )
    assert quality.compare(a, b)["fid"] == pytest.approx(closed, rel=1e-9)
    assert quality.compare(b, a)["fid"] == pytest.approx(closed, rel=1e-9)


def kid_by_hand(real: torch.Tensor, fake: torch.Tensor, m: int, subsets: int, seed: int):
    """KID (Bińkowski et al. 2018) in numpy: the unbiased MMD² under k(a, b) = (aᵀb / d + 1)³
    of ``subsets`` pairs of random ``m``-subsets, drawn by torch.randperm from ``seed`` as
    torchmetrics draws them; their mean and standard deviation."""
    x, y, d = real.numpy(), fake.numpy(), real.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T / d + 1) ** 3

    def mmd(a: np.ndarray, b: np.ndarray) -> float:
        within = k(a, a).sum() - np.trace(k(a, a)) + k(b, b).sum() - np.trace(k(b, b))
        return within / (m * (m - 1)) - 2 * k(a, b).mean()

    values = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(subsets):
            i, j = torch.randperm(len(x))[:m].numpy(), torch.randperm(len(y))[:m].numpy()
            values.append(mmd(x[i], y[j]))
    return float(np.mean(values)), float(np.std(values))


def test_kid_is_the_unbiased_polynomial_mmd_over_seeded_random_subsets():
    real, fake = squares(30, side=16, seed=3), squares(40, side=16, seed=4)
    quality = pixel_quality(features=PixelFeatures(size=2), kid_subset_size=10, kid_subsets=7)
    fr, ff = quality.features_of(real), quality.features_of(fake)
    got = quality.compare(real, fake, seed=5)
    assert (got["kid"], got["kid_std"]) == pytest.approx(kid_by_hand(fr, ff, 10, 7, 5), rel=1e-9)
    assert got["kid_std"] > 0 and quality.compare(real, fake, seed=5) == got
    assert quality.compare(real, fake, seed=6)["kid"] != got["kid"]
    # fewer images in either set than kid_subset_size: subsets of the smaller set's size
    whole = pixel_quality(features=PixelFeatures(size=2), kid_subset_size=1000, kid_subsets=3)
    for a, b, fa, fb in ((real, fake, fr, ff), (fake, real, ff, fr)):
        got = whole.compare(a, b, seed=6)
        assert (got["kid"], got["kid_std"]) == pytest.approx(kid_by_hand(fa, fb, 30, 3, 6))
    # two sets no larger than a subset: every subset is the whole set, KID is exact
    got = whole.compare(real, fake[:30])
    exact = kid_by_hand(fr, ff[:30], 30, 1, 0)[0]
    assert got["kid"] == pytest.approx(exact, rel=1e-9) and got["kid_std"] < 1e-12


def test_prior_samples_come_in_batches_from_one_generator_seeded_with_seed():
    images, calls = squares(30, side=16), []

    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        calls.append(n)
        return torch.rand(n, 1, 16, 16, generator=generator)

    quality = pixel_quality(features=PixelFeatures(size=2), num_samples=25, batch_size=10,
                            kid_subset_size=10, kid_subsets=5)  # fmt: skip
    got = quality(sample, images, seed=3)
    assert calls == [10, 10, 5]
    g = torch.Generator().manual_seed(3)
    by_hand = torch.cat([torch.rand(n, 1, 16, 16, generator=g) for n in (10, 10, 5)])
    assert got == quality.compare(images, by_hand, seed=3)
    assert quality(sample, images, seed=3) == got
    other = quality(sample, images, seed=4)
    assert other["fid"] != got["fid"] and other["kid"] != got["kid"]


def test_settings_name_the_feature_network_and_its_weights():
    assert SampleQuality(features="inception").settings()["features"] == "inception"
    assert SampleQuality(features=2048).describe_features() == "inception"  # the same network
    assert SampleQuality(features=768).describe_features() == "inception-768"
    assert SampleQuality(weights="inception.pth").settings()["weights"] == "inception.pth"
    pixels = SampleQuality(features=PixelFeatures(), weights="inception.pth").settings()
    assert pixels["features"] == "vaelab.metrics.sample_quality.PixelFeatures(size=8)"
    assert pixels["weights"] is None  # no Inception: its weights play no part


def test_the_evaluator_measures_its_seeded_prior_samples_against_test_images():
    model, data = mlp_module(side=8), numbered_data()
    quality = SampleQuality(features=PixelFeatures(size=4), num_samples=20, kid_subset_size=10,
                            kid_subsets=5)  # fmt: skip
    evaluator = Evaluator(iwae_k=0, disentanglement=[], seed=7, fid=quality)
    values = evaluator(model, data).values
    test = data.split_images("test")
    by_hand = quality.compare(test, model.sample(20, torch.Generator().manual_seed(7)), seed=7)
    assert values == {f"test/{k}": v for k, v in by_hand.items()}
    assert values["test/fid"] > 0 and evaluator(model, data).values == values  # seeded
    assert evaluator.settings()["fid"] == {
        "num_samples": 20, "features": "vaelab.metrics.sample_quality.PixelFeatures(size=4)",
        "weights": None, "kid_subset_size": 10, "kid_subsets": 5, "batch_size": 100,
    }  # fmt: skip
    assert Evaluator().settings()["fid"] is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"features": 100}, "`evaluation.fid.features` must be inception"),
     ({"features": "pixels"}, "one of Inception's layers 64, 192, 768, 2048"),
     ({"num_samples": 1}, "`evaluation.fid.num_samples` must be a whole number >= 2"),
     ({"num_samples": 2.5}, "`evaluation.fid.num_samples` must be a whole number >= 2"),
     ({"kid_subset_size": 1}, "`evaluation.fid.kid_subset_size` must be a whole number >= 2"),
     ({"kid_subsets": 0}, "`evaluation.fid.kid_subsets` must be a whole number >= 1"),
     ({"kid_subsets": "100"}, "`evaluation.fid.kid_subsets` must be a whole number >= 1"),
     ({"batch_size": 0}, "`evaluation.fid.batch_size` must be a whole number >= 1"),
     ({"batch_size": True}, "`evaluation.fid.batch_size` must be a whole number >= 1")],
)  # fmt: skip
def test_bad_settings_are_a_config_error(settings: dict, message: str):
    with pytest.raises(ConfigError, match=message.replace("`", ".")):
        SampleQuality(**settings).check_available()


def test_the_smallest_settings_are_accepted_and_measure():
    quality = SampleQuality(features=PixelFeatures(size=1), num_samples=2, kid_subset_size=2,
                            kid_subsets=1, batch_size=1)  # fmt: skip
    quality.check_available()
    got = quality(lambda n, g: torch.rand(n, 3, 4, 4, generator=g), squares(2, side=16))
    assert got["fid"] > 0 and got["kid_std"] == 0.0  # one subset


def without_internet(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    """An empty torch hub cache in ``folder``, and downloads sent to a closed local port: the
    weights' download fails whether or not this machine has internet. The weights' path."""
    monkeypatch.setenv("TORCH_HOME", str(folder / "torch"))
    for proxy in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen reads the proxies again
    return folder / "torch" / "hub" / "checkpoints" / WEIGHTS


def test_without_torch_fidelity_inception_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    with pytest.raises(ConfigError) as error:
        SampleQuality().check_available()
    message = str(error.value)
    assert "torch-fidelity" in message and "pip install" in message
    assert "evaluation.fid=null" in message


def test_offline_inception_says_what_is_missing_where_to_put_it_and_the_alternatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    offline = without_internet(monkeypatch, tmp_path)
    caplog.set_level(logging.INFO, logger="vaelab.metrics.sample_quality")
    with pytest.raises(ConfigError) as error:
        SampleQuality().check_available()  # torchmetrics' own loading path: torch.hub's download
    message = str(error.value)
    assert "\n" not in message and "downloading them failed (<urlopen error" in message
    assert f"the Inception v3 weights that torchmetrics uses, {WEIGHTS}" in message
    assert f"download {URL} (91 MB) and put it at {offline} " in message
    assert "evaluation.fid.weights=<file>" in message and "evaluation.fid=null" in message
    assert "evaluation.fid.features={_target_:vaelab.metrics.sample_quality.PixelFeatures}" in (
        message
    )
    assert not offline.exists()
    # the download was announced with where the weights go
    assert any(str(offline) in record.getMessage() for record in caplog.records)


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory) -> Path:
    """A weights file of torch-fidelity's format: the network with its random initial weights
    (the real ones cannot be downloaded here)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fidelity

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fidelity, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda *a: None)
        network = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("inception") / "inception.pth"
    torch.save(network.state_dict(), path)
    return path


def test_a_weights_file_is_loaded_by_torchmetrics_and_takes_grey_images(random_inception: Path):
    quality = SampleQuality(features=64, weights=str(random_inception), batch_size=2)
    quality.check_available()
    # the stem alone (layer 64) on two tiny grey images: uint8 RGB reaches the network
    features = quality.features_of(torch.zeros(2, 1, 16, 16, dtype=torch.uint8))
    assert features.shape == (2, 64) and features.isfinite().all()
    assert quality.settings()["features"] == "inception-64"
    assert quality.settings()["weights"] == str(random_inception)


def test_a_missing_unsafe_unreadable_or_foreign_weights_file_is_said(tmp_path: Path):
    def refused(name: str) -> str:
        with pytest.raises(ConfigError) as error:
            SampleQuality(weights=str(tmp_path / name)).check_available()
        assert "\n" not in str(error.value) and "evaluation.fid=null" in str(error.value)
        assert f"{URL} (91 MB)" in str(error.value)  # where the right file comes from
        return str(error.value)

    assert f"evaluation.fid.weights={tmp_path / 'none.pth'} is not a file" in refused("none.pth")
    (tmp_path / "code.pth").write_bytes(pickle.dumps(print, protocol=2))  # names a function
    assert "code.pth cannot be used: it holds Python objects besides tensors" in refused("code.pth")
    (tmp_path / "exploit.pth").write_bytes(b"cos\nsystem\n(S'echo 0'\ntR.")  # os.system("echo 0")
    assert "exploit.pth cannot be used: it holds Python objects" in refused("exploit.pth")
    (tmp_path / "text.pth").write_text("not weights\n")
    assert "text.pth cannot be used: it is not a file of tensors" in refused("text.pth")
    torch.save({"fc.weight": torch.zeros(64, 64)}, tmp_path / "whole.pth")
    (tmp_path / "partial.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:5000])
    with pytest.raises(Exception) as raw:  # a download cut short
        torch.load(tmp_path / "partial.pth", weights_only=True)
    assert not isinstance(raw.value, pickle.UnpicklingError)
    reason = f"partial.pth cannot be used: it cannot be read ({type(raw.value).__name__})"
    assert reason in refused("partial.pth")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    assert (
        "other.pth cannot be used: its tensors are not those of torch-fidelity's Inception v3"
    ) in refused("other.pth")


def test_an_unsafe_weights_file_is_refused_even_where_torch_is_told_to_load_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch.load's default: unsafe
    (tmp_path / "code.pth").write_bytes(pickle.dumps(print, protocol=2))
    with pytest.raises(ConfigError, match=r"code\.pth cannot be used: it holds Python objects"):
        SampleQuality(weights=str(tmp_path / "code.pth")).check_available()


def test_a_weights_file_that_fails_to_load_is_said_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import torchmetrics.image.fid

    def unreadable(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(torchmetrics.image.fid, "NoTrainInceptionV3", unreadable)
    path = tmp_path / "inception.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)  # tensors only: past the safety check
    with pytest.raises(ConfigError) as error:
        SampleQuality(weights=str(path)).check_available()
    message = str(error.value)
    assert f"{path} cannot be used" in message and "Input/output error" in message
    assert f"{URL} (91 MB)" in message and "evaluation.fid=null" in message
