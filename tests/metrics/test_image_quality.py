"""PSNR and SSIM of reconstructions on known answers: a perfect one, a flat image shifted by a
constant (both by hand), noise that lowers both, and the per-image average."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image import StructuralSimilarityIndexMeasure

from vaelab.metrics.image_quality import SSIM_CHUNK, reconstruction_quality


def flat(value: int, n: int = 4, side: int = 16) -> torch.Tensor:
    return torch.full((n, 1, side, side), value, dtype=torch.uint8)


def test_a_perfect_reconstruction():
    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    got = reconstruction_quality(lambda t: t, x, batch_size=4)
    # x̂ = x in float32 against x in float64: an error of ~1e-8, 150 dB and more
    assert got["psnr"] > 150 and got["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_a_flat_image_shifted_by_a_constant_by_hand():
    x, shift = flat(128), 0.1
    got = reconstruction_quality(lambda t: t + shift, x)
    assert got["psnr"] == pytest.approx(20.0, abs=1e-5)  # 10 log10(1 / 0.1²); x̂ in float32
    # no variance: SSIM is its luminance term (2 μx μy + C1) / (μx² + μy² + C1), C1 = 0.01²
    mx, my, c1 = 128 / 255, 128 / 255 + shift, 1e-4
    assert got["ssim"] == pytest.approx((2 * mx * my + c1) / (mx**2 + my**2 + c1), abs=1e-7)


def test_psnr_is_averaged_over_images_and_noise_lowers_both():
    x = torch.cat([flat(100, n=1), flat(200, n=1)])
    shifts = torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
    got = reconstruction_quality(lambda t: t + shifts, x)
    assert got["psnr"] == pytest.approx((20.0 + 40.0) / 2, abs=1e-4)
    images = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    quality = [
        reconstruction_quality(lambda t, s=s: t + s * torch.randn(t.shape, generator=gen), images)
        for s in (0.01, 0.05, 0.2)
    ]
    assert quality[0]["psnr"] > quality[1]["psnr"] > quality[2]["psnr"]
    assert quality[0]["ssim"] > quality[1]["ssim"] > quality[2]["ssim"]


def test_ssim_is_updated_in_chunks_and_equals_one_pass_over_all_images(monkeypatch):
    """40 images (not a multiple of 16): SSIM by chunks equals torchmetrics' SSIM of all of them
    at once, and no update sees more than SSIM_CHUNK images (its float64 unfolding grows with
    them: 20 MB per 64 × 64 image); the average is summed in float64."""
    images = torch.randint(0, 256, (40, 1, 24, 24), dtype=torch.uint8)
    noise = 0.1 * torch.randn(images.shape, generator=torch.Generator().manual_seed(3))
    sizes, update = [], StructuralSimilarityIndexMeasure.update

    def counted(self, preds, target):
        sizes.append(len(preds))
        return update(self, preds, target)

    monkeypatch.setattr(StructuralSimilarityIndexMeasure, "update", counted)
    got = reconstruction_quality(lambda t: t + noise[: len(t)], images, batch_size=40)
    x = images.double() / 255.0
    x_hat = (images.float() / 255.0 + noise).clamp(0.0, 1.0).double()  # as the model gives it
    whole = structural_similarity_index_measure(x_hat, x, data_range=1.0)
    assert got["ssim"] == pytest.approx(float(whole), rel=1e-12)
    assert sizes == [SSIM_CHUNK, SSIM_CHUNK, 40 - 2 * SSIM_CHUNK] and SSIM_CHUNK == 16
