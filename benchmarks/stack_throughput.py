"""Training K models as one stack (``hydra/launcher=stacked``) against the same K models as
separate runs, one after another: total images/s of each and their ratio. Figures only.

Both through Lightning with the run's callbacks (progress left out): the stack with
``vaelab.stacked``, each separate run with ``vaelab.training.build_trainer``. The time counted
is that of ``--steps`` steps after ``--warmup`` steps, for the stack and for each separate
run, so the separate runs' start-up (a new process, data loading) is not counted against them.

``--ops`` also counts the tensor operations of a step (one kernel launch each on a GPU, views
aside), for the stack and for the K separate models: on a GPU a small model's step costs
about its launches, so fewer operations there is what a CPU can show of a GPU gain.

    python benchmarks/stack_throughput.py [--cases mlp:64,conv:64] [--stacks 1,4,16]
        [--steps 5] [--warmup 2] [--ops] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import DEVICE, RESULTS, Clock, compose_cfg, machine_name

from vaelab.console import route_lightning_logs
from vaelab.stacked.data import StackedData
from vaelab.stacked.module import StackedVAEModule
from vaelab.stacked.training import build_stack_trainer
from vaelab.training import build_module, build_trainer

# the tutorial's MLP on MNIST-sized images (dSprites brought to 28 x 28); the conv net at 64
EXTRA = {"mlp": ["data.image_size=28", "size=base"], "conv": []}
VECTORIZE = {"auto": "auto", "true": True, "false": False}


def member(arch: str, batch: int, seed: int, images: int, out: Path):
    cfg = compose_cfg(arch, batch, images, "base", out / str(seed),
                      [*EXTRA[arch], f"seed={seed}", "~callbacks.progress",
                       "~callbacks.figures"])  # fmt: skip
    L.seed_everything(seed, verbose=False)
    datamodule = instantiate(cfg.data)
    return cfg, datamodule, build_module(cfg)


class CountOps(TorchDispatchMode):
    """Counts the tensor operations dispatched (each a kernel launch on a GPU, views aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


class OpsPerStep(Clock):
    """``Clock``'s window, counting the operations of its steps instead of timing them: its
    ``figure`` is operations a step."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen += 1
        if self.seen == self.warmup:
            self.counter = CountOps()
            self.counter.__enter__()
        elif self.seen == self.warmup + self.steps:
            self.counter.__exit__(None, None, None)
            self.ops_per_step = self.counter.count / self.steps

    @property
    def figure(self) -> float:
        return self.ops_per_step


def stacked_figure(arch: str, batch: int, k: int, args, out: Path, window=Clock) -> float:
    """The ``window``'s figure (``Clock``: seconds) for a stack of ``k`` models."""
    members = [member(arch, batch, seed, args.images, out) for seed in range(k)]
    cfg = members[0][0]
    cfg.trainer.max_steps = args.warmup + args.steps
    module = StackedVAEModule([m[2] for m in members], list(range(k)),
                              vectorize=VECTORIZE[args.vectorize])  # fmt: skip
    trainer = build_stack_trainer(cfg, out / "stack")
    measured = window(args.warmup, args.steps)
    trainer.callbacks.append(measured)
    trainer.fit(module, datamodule=StackedData([m[1] for m in members]))
    return measured.figure


def separate_figure(arch: str, batch: int, k: int, args, out: Path, window=Clock) -> float:
    """The ``window``'s figures of the same ``k`` models trained one after another, summed."""
    total = 0.0
    for seed in range(k):
        cfg, datamodule, module = member(arch, batch, seed, args.images, out)
        cfg.trainer.max_steps = args.warmup + args.steps
        trainer = build_trainer(cfg)
        measured = window(args.warmup, args.steps)
        trainer.callbacks.append(measured)
        trainer.fit(module, datamodule=datamodule)
        total += measured.figure
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="mlp:64,conv:64")
    parser.add_argument("--stacks", default="1,4,16")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--images", type=int, default=4096, help="data.subset of each member")
    parser.add_argument("--vectorize", default="auto", choices=("auto", "true", "false"))
    parser.add_argument(
        "--ops",
        action="store_true",
        help="also count the tensor operations a step (a GPU's kernel launches)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: results/)")
    args = parser.parse_args()
    route_lightning_logs()  # as a run does: without Lightning's advertisement
    rows = []
    ops = f" {'stack ops':>10} {'separate ops':>11}" if args.ops else ""
    print(f"{'arch':5} {'batch':>5} {'K':>3} {'stacked img/s':>14} {'separate img/s':>15} "
          f"{'ratio':>6}{ops}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            arch, batch = case.split(":")[0], int(case.split(":")[1])
            for k in map(int, args.stacks.split(",")):
                images = k * args.steps * batch
                stacked = images / stacked_figure(arch, batch, k, args, Path(tmp) / f"s{k}")
                separate = images / separate_figure(arch, batch, k, args, Path(tmp) / f"r{k}")
                row = {"arch": arch, "batch": batch, "models": k,
                       "stacked_images_per_s": round(stacked, 1),
                       "separate_images_per_s": round(separate, 1),
                       "ratio": round(stacked / separate, 3)}  # fmt: skip
                ops = ""
                if args.ops:  # counted in runs of their own: counting slows the steps
                    row["stacked_ops_per_step"] = stacked_figure(
                        arch, batch, k, args, Path(tmp) / f"so{k}", OpsPerStep
                    )
                    row["separate_ops_per_step"] = separate_figure(
                        arch, batch, 1, args, Path(tmp) / f"ro{k}", OpsPerStep) * k  # fmt: skip
                    counts = row["stacked_ops_per_step"], row["separate_ops_per_step"]
                    ops = f" {counts[0]:>10.0f} {counts[1]:>11.0f}"
                rows.append(row)
                print(f"{arch:5} {batch:>5} {k:>3} {stacked:>14.0f} {separate:>15.0f} "
                      f"{stacked / separate:>6.2f}{ops}", flush=True)  # fmt: skip
    record = {"machine": machine_name(), "device": str(DEVICE), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d"), "steps": args.steps, "warmup": args.warmup,
              "vectorize": args.vectorize,
              "stacks": rows}  # fmt: skip
    out = args.out or RESULTS / f"stack-{machine_name()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
