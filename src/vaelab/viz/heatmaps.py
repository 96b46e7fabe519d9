"""Heat maps of how latents relate to ground-truth factors, from the mean codes of images
drawn uniformly from a ``GroundTruthSource``:

- DCI importance matrix R ``[D, K]``: feature importances of one boosted-tree classifier per
  factor (``vaelab.metrics.dci.importance_matrix``), columns sum to 1;
- MIG's mutual information m ``[D, K]`` = I(z_i; v_j) in nats with z_i in 20 equal bins,
  and MIG = mean_j (m_(1)j - m_(2)j) / H(v_j) in the title.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from vaelab.data.base import GroundTruthSource
from vaelab.metrics.codes import Images, sample_codes
from vaelab.metrics.dci import completeness, disentanglement, importance_matrix
from vaelab.metrics.mig import mig_from_mi
from vaelab.metrics.suite import SuiteResult
from vaelab.metrics.utils import discrete_entropy, discrete_mutual_info, discretize
from vaelab.viz.common import as_float, evaluating, save_figure


@dataclass
class FactorMatrices:
    """The matrices (latents in rows, factors in columns) and their summary scores."""

    importance: np.ndarray
    mutual_info: np.ndarray
    entropy: np.ndarray
    disentanglement: float
    completeness: float
    mig: float

    @classmethod
    def of(cls, importance: np.ndarray, mi: np.ndarray, entropy: np.ndarray) -> FactorMatrices:
        """The matrices with their D, C and MIG."""
        return cls(
            importance, mi, entropy, disentanglement(importance), completeness(importance),
            mig_from_mi(mi, entropy),
        )  # fmt: skip

    @classmethod
    def from_suite(cls, suite: SuiteResult) -> FactorMatrices | None:
        """The suite's own matrices, when it computed both DCI and MIG's (else None)."""
        if suite.importance is None or suite.mutual_info is None:
            return None
        return cls.of(suite.importance, suite.mutual_info, suite.entropy)


def factor_matrices(
    module,
    source: GroundTruthSource,
    num_points: int = 2000,
    seed: int = 0,
    images: Images | None = None,
) -> FactorMatrices:
    """Encode ``num_points`` images for fitting plus half as many held out; both matrices
    (when the end-of-run suite has them, ``FactorMatrices.from_suite`` is used instead).
    ``images``: source indices to uint8 images as the model sees them (a datamodule's
    ``source_images``, resized like the training images); None reads ``source`` as it is."""

    def encode(x: torch.Tensor) -> torch.Tensor:
        with evaluating(module):
            return module.encode(as_float(x, module.device))[0].cpu()

    rng = np.random.default_rng(seed)
    codes, factors = sample_codes(source, encode, num_points, rng, images=images)
    codes_test, factors_test = sample_codes(
        source, encode, max(1, num_points // 2), rng, images=images
    )
    importance, _, _ = importance_matrix(codes, factors, codes_test, factors_test, seed=seed)
    mi = discrete_mutual_info(discretize(codes), factors)
    return FactorMatrices.of(importance, mi, discrete_entropy(factors))


def plot_heatmap(
    ax: plt.Axes,
    matrix: np.ndarray,
    latent_names: Sequence[str],
    factor_names: Sequence[str],
    title: str,
    label: str,
) -> None:
    """``matrix [D, K]`` as an image with latents on the y axis and factors on the x axis,
    each cell annotated with its value."""
    image = ax.imshow(matrix, cmap="viridis", aspect="auto", vmin=0)
    ax.set_xticks(range(len(factor_names)), factor_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(latent_names)), latent_names, fontsize=8)
    top = matrix.max() if matrix.size and matrix.max() > 0 else 1.0
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            f"{v:.2f}",
            ha="center",
            va="center",
            fontsize=6,
            color="black" if v > 0.6 * top else "white",
        )
    ax.set_xlabel("factor")
    ax.set_ylabel("latent")
    ax.set_title(title, fontsize=9)
    plt.colorbar(image, ax=ax, label=label)


def save_factor_heatmaps(
    matrices: FactorMatrices, factor_names: Sequence[str], out_dir: str | Path
) -> list[Path]:
    """``dci_importance.png`` and ``mig_mutual_info.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    d, k = matrices.importance.shape
    latents = [f"z{i}" for i in range(d)]
    paths = []
    for name, matrix, title, label in (
        (
            "dci_importance",
            matrices.importance,
            f"DCI importance (D {matrices.disentanglement:.2f}, C {matrices.completeness:.2f})",
            "importance",
        ),
        ("mig_mutual_info", matrices.mutual_info, f"I(z_i; v_j) (MIG {matrices.mig:.2f})", "nats"),
    ):
        fig, ax = plt.subplots(figsize=(1.0 + 0.7 * k + 1.5, 1.2 + 0.35 * d))
        plot_heatmap(ax, matrix, latents, factor_names, title, label)
        fig.tight_layout()
        paths.append(save_figure(fig, out_dir / f"{name}.png"))
    return paths
