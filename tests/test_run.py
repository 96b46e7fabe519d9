"""``vaelab.training.run`` called directly, as sweepers and notebooks do."""

from __future__ import annotations

import json
from pathlib import Path

from hydra import compose, initialize_config_dir

from vaelab.training import run

from .conftest import CONF, TINY


def test_run_returns_the_optimized_metric_it_wrote(tmp_path: Path):
    overrides = [o for o in TINY if not o.startswith("callbacks.")]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(
            "train",
            overrides=[
                *overrides,
                f"paths.output_dir={tmp_path}",
                "callbacks=default",
                "~callbacks.progress",
                "model=vae",
                "arch=mlp",
            ],
        )
    value = run(cfg)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["status"] == "completed"
    assert value == written["metrics"]["val/elbo"] and value < 0
