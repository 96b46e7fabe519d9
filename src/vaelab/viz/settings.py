"""What the figures show, as typed settings built from the ``figures:`` config node."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

FIGURES = (
    "reconstructions_samples",  # inputs over reconstructions, and prior samples, in one PNG
    "reconstructions",
    "samples",
    "traversal",  # PNG, and a GIF when traversal.gif
    "interpolation",
    "scatter",
    "kl_per_dim",  # mean KL of each latent dimension (an AE: the variance of mu)
    "factors",  # DCI importance and MIG mutual information (data with factors only)
)
TRAVERSAL_RANGES = ("auto", "fixed", "quantiles", "fitted")
INTERPOLATION_METHODS = ("linear", "slerp")
SCATTER_METHODS = ("kl", "pca")
SPLITS = ("train", "val", "test")


def _check_choice(where: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{where} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass
class TraversalSettings:
    """``n_base`` base images, ``steps`` values per dimension over ``range`` (auto, fixed,
    quantiles, fitted), at most ``max_dims`` dimensions by decreasing KL."""

    n_base: int = 3
    steps: int = 9
    range: str = "auto"
    limits: tuple[float, float] = (-2.5, 2.5)  # fixed
    quantile: float = 0.05  # quantiles: Φ⁻¹(q) .. Φ⁻¹(1 - q)
    spread: float = 2.0  # fitted: mean ± spread · std of the codes
    max_dims: int = 10
    gif: bool = True
    frame_ms: int = 150

    def __post_init__(self) -> None:
        _check_choice("figures.traversal.range", self.range, TRAVERSAL_RANGES)


@dataclass
class InterpolationSettings:
    """``n_pairs`` rows of ``steps`` decodes along a ``linear`` or ``slerp`` path."""

    n_pairs: int = 4
    steps: int = 10
    method: str = "linear"

    def __post_init__(self) -> None:
        _check_choice("figures.interpolation.method", self.method, INTERPOLATION_METHODS)


@dataclass
class ScatterSettings:
    """Mean codes of ``n_points`` images on the ``kl`` top-2 dimensions or a ``pca`` plane,
    coloured by the label ``color_by`` (null: the first label that varies)."""

    n_points: int = 1000
    method: str = "kl"
    color_by: str | None = None

    def __post_init__(self) -> None:
        _check_choice("figures.scatter.method", self.method, SCATTER_METHODS)


@dataclass
class FactorSettings:
    """Heat maps from ``num_points`` images drawn from the ground-truth source."""

    num_points: int = 2000


@dataclass
class FigureSettings:
    """Every figure's settings; ``include`` names the figures to make (see ``FIGURES``)."""

    n_images: int = 16  # images in the reconstruction figure
    n_samples: int = 32
    seed: int = 0
    split: str = "test"
    include: tuple[str, ...] = FIGURES
    traversal: TraversalSettings = field(default_factory=TraversalSettings)
    interpolation: InterpolationSettings = field(default_factory=InterpolationSettings)
    scatter: ScatterSettings = field(default_factory=ScatterSettings)
    factors: FactorSettings = field(default_factory=FactorSettings)

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | FigureSettings | None) -> FigureSettings:
        """Settings from a (DictConfig or dict) node; missing keys keep their defaults."""
        if node is None:
            return cls()
        if isinstance(node, FigureSettings):
            return node
        return _build(cls, _plain(node), "figures")

    def __post_init__(self) -> None:
        _check_choice("figures.split", self.split, SPLITS)
        if isinstance(self.include, str):  # figures.include=samples: one figure, not letters
            self.include = (self.include,)
        unknown = sorted(set(self.include) - set(FIGURES))
        if unknown:
            raise ValueError(f"figures.include: unknown {unknown}; choose from {list(FIGURES)}")


def _plain(node: Mapping[str, Any]) -> dict[str, Any]:
    try:
        from omegaconf import DictConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf comes with hydra
        return dict(node)
    return (
        OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    )


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """``cls(**values)`` with nested dataclasses built too; an unknown key is a ValueError."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = known[name].default_factory if callable(known[name].default_factory) else None
        if default is not None and isinstance(value, Mapping):
            value = _build(type(default()), value, f"{where}.{name}")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
