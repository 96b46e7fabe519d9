"""Shared helpers: run the real CLI on tiny settings, compose configs like Hydra does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["WANDB_MODE"] = "offline"
os.environ.pop("WANDB_API_KEY", None)

# A few steps of the small conv net on 512 dSprites images.
TINY = [
    "trainer=cpu",
    "size=small",
    "data.subset=512",
    "data.batch_size=16",
    "data.eval_batch_size=64",
    "data.val_fraction=0.1",
    "data.test_fraction=0.1",
    "trainer.max_steps=6",
    "trainer.val_check_interval=3",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "callbacks.model_checkpoint.every_n_train_steps=3",
    "figures.n_images=4",
    "evaluation=none",
    "figures.include=[reconstructions_samples,samples,traversal,interpolation,scatter]",
]


def run_cli(
    run_dir: Path, *overrides: str, script: str = "train.py"
) -> subprocess.CompletedProcess:
    """``python src/<script> hydra.run.dir=<run_dir> <overrides>``, captured."""
    cmd = [sys.executable, str(ROOT / "src" / script), f"hydra.run.dir={run_dir}", *overrides]
    env = {**os.environ, "VAELAB_DATA_DIR": str(run_dir.parent / "data")}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture
def cli(tmp_path: Path):
    """Run the training CLI with TINY settings plus the given overrides in a fresh folder."""

    def _run(*overrides: str, name: str = "run", tiny: bool = True):
        run_dir = tmp_path / name
        result = run_cli(run_dir, *(TINY if tiny else []), *overrides)
        return run_dir, result

    return _run


@pytest.fixture
def run_copy(trained: Path, tmp_path: Path) -> Path:
    """A copy of the test module's ``trained`` run folder, to break or evaluate."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``make mutants`` (run inside ``mutants/``), run a mutant's tests fastest first,
    by mutmut's recorded durations: a killed mutant then costs its fastest failing test,
    not every slower test that pytest's file order puts before it. Elsewhere: no change."""
    stats = Path("mutmut-stats.json")
    if "MUTANT_UNDER_TEST" not in os.environ or not stats.is_file():
        return
    seconds = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: seconds.get(item.nodeid, float("inf")))
