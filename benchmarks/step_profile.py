"""Where a training step's time goes, by ``torch.profiler``. Figures only.

A case is a single run (vaelab's whole stack, composed as ``python src/train.py`` composes
it, progress bar left out) or a stack of K models (``hydra/launcher=stacked``, as
``benchmarks/stack_throughput.py`` builds it). For each, over ``--steps`` steps after
``--warmup``, first timed alone, then profiled:

- ms a step, unprofiled (the profiler itself slows the host);
- on a GPU, the ms of GPU work a step (kernels, copies, memsets) and its share of the step:
  well under 1, the GPU waits for the host;
- a step's kernel launches and CUDA graph replays; its synchronizations with the GPU, its
  ``.item()`` / ``.tolist()`` calls (a wait when the tensor is on the GPU; Adam's step counts
  are CPU tensors) and its copies (a wait when to the host);
- the host operators that take the most time: torch.profiler's table, printed.

    python benchmarks/step_profile.py [--cases conv:256,stack:mlp:64:16]
        [--override compile=reduce-overhead ...] [--steps 20] [--warmup 10] [--out FILE]

A single case may add overrides of its own: ``conv:256:arch.channels_last=false``.

On a GPU the single runs default to ``precision=bf16-mixed data.device=cuda
compile=reduce-overhead`` (the fastest of make bench's table on an H100) and the cases to
``conv:256,conv:256:arch.channels_last=false,stack:mlp:64:1,stack:mlp:64:16,stack:conv:64:16``:
the figures of issue 14's aims, the conv net with NCHW weights (NHWC's gain on a GPU), and a
stack of one MLP, which ran at 0.49 of the MLP alone on an H100 (what grows from 1 to 16
members is the stack's own cost); on a CPU to a tiny MLP alone and in a stack of 2. The JSON
is written after each case, so a run stopped at its time limit keeps the cases it finished.
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
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack_throughput as stacks
import train_throughput as tt

from vaelab.console import route_lightning_logs
from vaelab.cuda_probe import ask_for_gpus_once
from vaelab.training import build_module

GPU = tt.DEVICE.type == "cuda"
ACTIVITIES = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if GPU else [])]
LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")
GRAPH_REPLAYS = ("cudaGraphLaunch",)
SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
ITEMS = ("aten::_local_scalar_dense",)  # .item(), .tolist(), bool(): a wait if on the GPU
COPIES = ("cudaMemcpy", "cudaMemcpyAsync")  # a wait if to the host, or from pageable memory
TABLE_ROWS = 25


class ProfiledSteps(tt.Clock):
    """``Clock``'s window of steps, run under ``torch.profiler``; its ``figure`` is the
    window itself (``profiler``, ``seconds``, ``steps``)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen += 1
        if self.seen == self.warmup:
            tt.sync()
            self.profiler = profile(activities=ACTIVITIES)
            self.profiler.__enter__()
            self.started = time.perf_counter()
        elif self.seen == self.warmup + self.steps:
            tt.sync()
            self.seconds = time.perf_counter() - self.started
            self.profiler.__exit__(None, None, None)

    @property
    def figure(self) -> ProfiledSteps:
        return self


def summary(window: ProfiledSteps) -> dict:
    """The profiled window's figures a step (see the module's docstring)."""
    rows = window.profiler.key_averages()
    steps = window.steps
    calls = {row.key: row.count for row in rows}

    def per_step(names: tuple[str, ...]) -> dict[str, float]:
        return {n: round(calls[n] / steps, 2) for n in names if calls.get(n)}

    # the GPU's rows: kernels, copies, memsets; not the user annotations (record_function
    # ranges such as Optimizer.step or a compiled region), which span kernels counted already
    device_us = sum(row.self_device_time_total for row in rows
                    if row.device_type != DeviceType.CPU
                    and not getattr(row, "is_user_annotation", False))  # fmt: skip
    host = sorted((r for r in rows if r.device_type == DeviceType.CPU),
                  key=lambda r: r.self_cpu_time_total, reverse=True)  # fmt: skip
    return {
        "profiled_ms_per_step": round(1000 * window.seconds / steps, 3),
        "gpu_work_ms_per_step": round(device_us / 1000 / steps, 3) if GPU else None,
        "launches_per_step": round(sum(calls.get(n, 0) for n in LAUNCHES) / steps, 1),
        "graph_replays_per_step": round(sum(calls.get(n, 0) for n in GRAPH_REPLAYS) / steps, 1),
        "syncs_per_step": per_step(SYNCS),
        "items_per_step": per_step(ITEMS),
        "copies_per_step": per_step(COPIES),
        "top_host_ops": [
            {
                "op": r.key,
                "self_ms_per_step": round(r.self_cpu_time_total / 1000 / steps, 3),
                "calls_per_step": round(r.count / steps, 2),
            }
            for r in host[:12]
        ],
    }


def single_runner(arch: str, batch: int, overrides: list[str], args, out: Path):
    """A function ``window, name -> figure`` of fresh Trainers fitting one module of ``arch``
    at ``batch`` with ``args.override`` and then ``overrides`` (compiled once, if at all)."""
    extra = ["~callbacks.progress", "~callbacks.figures", *args.override, *overrides]
    out.mkdir(parents=True, exist_ok=True)
    cfg = tt.compose_cfg(arch, batch, args.images, args.size, out, extra)
    L.seed_everything(0, verbose=False)
    datamodule, module = instantiate(cfg.data), build_module(cfg)

    def run(window, name: str):
        figure, _ = tt.vaelab_block(cfg, module, datamodule, args.warmup, args.steps, window)
        return figure

    return run


def measure(case: str, args, out: Path) -> dict:
    """The figures of one case: ``arch:batch[:override...]`` (a single run) or
    ``stack:arch:batch:K``."""
    kind, *spec = case.split(":") if case.startswith("stack:") else ["single", *case.split(":")]
    overrides = spec[2:] if kind == "single" else []
    if kind == "stack":
        arch, batch, k = spec[0], int(spec[1]), int(spec[2])

        def run(window, name: str):
            return stacks.stacked_figure(arch, batch, k, args, out / name, window)
    else:
        arch, batch, k = spec[0], int(spec[1]), 1
        run = single_runner(arch, batch, overrides, args, out)

    seconds = run(tt.Clock, "timed")
    window = run(ProfiledSteps, "profiled")
    print(f"\n== {case}: {1000 * seconds / args.steps:.2f} ms a step; host operators by "
          f"self CPU time (profiled, {args.steps} steps)", flush=True)  # fmt: skip
    print(window.profiler.key_averages().table(sort_by="self_cpu_time_total",
                                               row_limit=TABLE_ROWS), flush=True)  # fmt: skip
    if GPU:
        print(f"== {case}: by GPU time", flush=True)
        print(window.profiler.key_averages().table(sort_by="self_device_time_total",
                                                   row_limit=TABLE_ROWS), flush=True)  # fmt: skip
    ms = 1000 * seconds / args.steps
    figures = summary(window)
    busy = figures["gpu_work_ms_per_step"]
    return {"case": case, "kind": kind, "arch": arch, "batch": batch, "models": k,
            "overrides": overrides,
            "ms_per_step": round(ms, 3),
            "images_per_s": round(k * batch / (ms / 1000), 1),
            "gpu_busy_share": round(busy / ms, 3) if busy is not None else None,
            **figures}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_cases = ("conv:256,conv:256:arch.channels_last=false,stack:mlp:64:1,"
                     "stack:mlp:64:16,stack:conv:64:16" if GPU
                     else "mlp:16,stack:mlp:16:2")  # fmt: skip
    parser.add_argument("--cases", default=default_cases)
    parser.add_argument("--override", nargs="*", default=None,
                        help="Hydra overrides of the single runs")  # fmt: skip
    parser.add_argument("--steps", type=int, default=20 if GPU else 5)
    parser.add_argument("--warmup", type=int, default=10 if GPU else 3)
    parser.add_argument("--images", type=int, default=4096, help="data.subset of each run")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: results/)")
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:  # the window opens at the end of step `warmup`
        parser.error("--warmup and --steps must be at least 1")
    if args.override is None:
        args.override = (["precision=bf16-mixed", "data.device=cuda", "compile=reduce-overhead"]
                         if GPU else ["data.image_size=16"])  # fmt: skip
    args.size = "base" if GPU else "small"
    args.vectorize = "auto"  # stacks as hydra/launcher=stacked builds them
    if not GPU:  # the stacks' members: as the single runs, tiny
        stacks.EXTRA["mlp"] = ["data.image_size=16", "size=small"]
    route_lightning_logs()  # as a run does: without Lightning's advertisement
    ask_for_gpus_once()
    torch.set_float32_matmul_precision("high")  # as make bench measures
    rows = []
    record = {"machine": tt.machine_name(), "device": str(tt.DEVICE), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d"), "steps": args.steps, "warmup": args.warmup,
              "single_overrides": args.override, "profiles": rows}  # fmt: skip
    out = args.out or tt.RESULTS / f"profile-{tt.machine_name()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(c for c in args.cases.split(",") if c):
            rows.append(measure(case, args, Path(tmp) / str(i)))
            out.write_text(json.dumps(record, indent=2) + "\n")  # kept if a later case is cut
    print("\n| case | ms/step | images/s | GPU busy | launches | graph replays | syncs | "
          ".item() | copies |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        busy = "-" if r["gpu_busy_share"] is None else f"{r['gpu_busy_share']:.2f}"
        counts = [sum(r[k].values()) for k in ("syncs_per_step", "items_per_step",
                                               "copies_per_step")]  # fmt: skip
        print(f"| {r['case']} | {r['ms_per_step']:.2f} | {r['images_per_s']:,.0f} | {busy} | "
              f"{r['launches_per_step']:g} | {r['graph_replays_per_step']:g} | "
              + " | ".join(f"{c:g}" for c in counts) + " |")  # fmt: skip
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
