"""FID and KID through torchmetrics on known answers with the small feature network: a set
against itself, noise that raises both, grey images as RGB, the Evaluator's prior samples;
and the Inception network's loading path: offline, a missing, unsafe or foreign weights file,
and a weights file given by path."""

from __future__ import annotations

import pickle
import urllib.request
from pathlib import Path

import pytest
import torch

from tests.data.test_datamodule import make as numbered_data
from tests.test_module import module as mlp_module
from vaelab.config import ConfigError
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
    return SampleQuality(features=PixelFeatures(), **{"kid_subset_size": 100, "kid_subsets": 20,
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
     ({"kid_subsets": 0}, "`evaluation.fid.kid_subsets` must be a whole number >= 1")],
)  # fmt: skip
def test_bad_settings_are_a_config_error(settings: dict, message: str):
    with pytest.raises(ConfigError, match=message.replace("`", ".")):
        SampleQuality(**settings).check_available()


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


def test_offline_inception_says_what_is_missing_where_to_put_it_and_the_alternatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    offline = without_internet(monkeypatch, tmp_path)
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
        return str(error.value)

    assert f"evaluation.fid.weights={tmp_path / 'none.pth'} is not a file" in refused("none.pth")
    (tmp_path / "code.pth").write_bytes(pickle.dumps(print, protocol=2))  # names a function
    assert "code.pth cannot be used: it holds Python objects besides tensors" in refused("code.pth")
    (tmp_path / "text.pth").write_text("not weights\n")
    assert "text.pth cannot be used: it is not a file of tensors" in refused("text.pth")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    assert "its tensors are not those of torch-fidelity's Inception v3" in refused("other.pth")
