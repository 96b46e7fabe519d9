"""The fixed cost per training step of vaelab's stack over a bare PyTorch loop, in ms.

A network so small (MLP, size=small, 16x16 dSprites) that the step is mostly that fixed cost:
overhead = (vaelab ms/step) - (bare ms/step), each the fastest of ``--rounds`` alternating
blocks. Variants remove parts of the stack to attribute the cost. For a network whose bare
step takes T ms the expected vaelab/bare ratio is about T / (T + overhead).

    python benchmarks/step_overhead.py [--rounds 4] [--steps 600]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import lightning as L
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput as tt

from vaelab.console import route_lightning_logs
from vaelab.cuda_probe import ask_for_gpus_once
from vaelab.training import build_module

NO_BAR = ["~callbacks.progress", "+trainer.enable_progress_bar=false"]
VARIANTS = {  # name: Hydra overrides
    "default stack": [],
    "no progress bar": NO_BAR,
    "no callbacks, no progress bar": [
        "~callbacks",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_checkpointing=false",
    ],
}


def measure(overrides: list[str], args, out_dir: Path) -> tuple[float, float]:
    """(vaelab ms/step, bare ms/step), the fastest block of each."""
    extra = ["data.image_size=16", *overrides]
    cfg = tt.compose_cfg("mlp", 64, args.images, "small", out_dir, extra)
    L.seed_everything(0, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    module = build_module(cfg)
    bare = tt.Bare(cfg, datamodule.images, datamodule._positions["train"], 64)
    vaelab, plain = [], []
    for _ in range(args.rounds):
        seconds, _ = tt.vaelab_block(cfg, module, datamodule, 10, args.steps)
        vaelab.append(seconds)
        plain.append(bare.block(10, args.steps))
    return 1000 * min(vaelab) / args.steps, 1000 * min(plain) / args.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=600, help="timed steps per block")
    parser.add_argument("--images", type=int, default=20_000)
    args = parser.parse_args()
    route_lightning_logs()  # as a run does: without Lightning's advertisement
    ask_for_gpus_once()  # as a Trainer does: the bare loop too asks NVML once, not per step
    print("| variant | vaelab ms/step | bare ms/step | overhead ms/step |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in VARIANTS.items():
            vaelab, bare = measure(overrides, args, Path(tmp))
            print(f"| {name} | {vaelab:.2f} | {bare:.2f} | {vaelab - bare:.2f} |", flush=True)


if __name__ == "__main__":
    main()
