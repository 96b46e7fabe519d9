"""Which jobs of a sweep can share a stack: those whose configs differ only in what a member
may have of its own (the seed, β and its schedule, the objective's weights). Everything else
(architecture, data, batch size, optimizer, step count, ...) must be equal."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Keys a member may set for itself: the seed and what follows it (data order, ε, figures,
# evaluation draws), β and its schedule, and the weights of the objectives' terms.
MEMBER_KEYS = (
    "seed", "beta", "beta_schedule", "data.seed", "evaluation.seed", "figures.seed",
    "reproduce", "tags", "resume", "ckpt_path", "allow_unsafe_checkpoints", "paths",
)  # fmt: skip
WEIGHTS = ("gamma", "alpha", "lambda_od", "lambda_d", "c_max", "c_steps",
           "quantization_weight", "commitment_weight", "lambda_mi", "lambda_hessian")  # fmt: skip
MEMBER_KEYS += tuple(f"model.{w}" for w in WEIGHTS) + tuple(f"model.objective.{w}" for w in WEIGHTS)


def shared_settings(cfg: DictConfig) -> dict[str, Any]:
    """The job's config as flat ``{dotted key: value}`` with ``MEMBER_KEYS`` (and every value
    interpolated from one, such as the figure callback's seed) replaced by placeholders, and
    paths too, so a job's own folder is no difference."""
    unresolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for key in list(unresolved.get("paths") or {}):
        unresolved.paths[key] = f"<paths.{key}>"
    for key in MEMBER_KEYS:
        if key != "paths" and OmegaConf.select(unresolved, key, default=None) is not None:
            OmegaConf.update(unresolved, key, f"<{key}>", force_add=True)
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if prefix.rstrip(".") in MEMBER_KEYS:
            return
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix.rstrip(".")] = node

    walk(OmegaConf.to_container(unresolved, resolve=True), "")
    return flat


def stack_key(cfg: DictConfig) -> str:
    """Equal for jobs that may share a stack."""
    text = json.dumps(shared_settings(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def difference(a: DictConfig, b: DictConfig) -> str:
    """The shared setting in which two jobs differ, as ``key (a vs b)``: the least nested one
    (``arch.latent_dim``, not the ``arch.decoder.latent_dim`` that follows it)."""
    sa, sb = shared_settings(a), shared_settings(b)
    for key in sorted(set(sa) | set(sb), key=lambda k: (k.count("."), k)):
        if sa.get(key) != sb.get(key):
            return f"{key} ({sa.get(key, 'unset')} vs {sb.get(key, 'unset')})"
    return "nothing"


def group(keys: list[str], max_stack: int) -> list[list[int]]:
    """Job indices in stacks: jobs of equal key together, in sweep order, at most
    ``max_stack`` a stack."""
    if max_stack < 1:
        raise ValueError(f"hydra.launcher.max_stack must be at least 1, got {max_stack}")
    by_key: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_key.setdefault(key, []).append(i)
    return [
        jobs[start : start + max_stack]
        for jobs in by_key.values()
        for start in range(0, len(jobs), max_stack)
    ]
