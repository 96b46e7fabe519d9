"""Training throughput of vaelab's whole stack against a bare PyTorch loop.

Also the cost of procedural dSprites. Prints figures and a markdown table; never fails on time.

vaelab: Trainer + VAEModule + ImageDataModule with the default callbacks (checkpointing,
progress bar, LR monitor, training speed, random state) and CSV logging, composed from conf/
like ``python src/train.py`` (validation off: it is not training). bare: the same networks,
batch, Adam and β-VAE loss in a plain loop over the same uint8 images, x / 255 per batch.
Both run in this process, alternating blocks (vaelab, bare, vaelab, bare, ...) after warm-up;
the rate of each is images / seconds summed over its blocks, and the ratio is the median of
the per-pair ratios.

    python benchmarks/train_throughput.py [--tiny] [--rounds 3] [--seconds 4] [--skip-dsprites]
        [--cases mlp:64,conv:256] [--override '~callbacks.progress' ...]
        [--precision 32-true bf16-mixed] [--compile false true reduce-overhead]
        [--data-device cpu cuda]

On a GPU the default measures every combination of precision (32-true, bf16-mixed), compile
(without, with: torch's default mode; or a mode by name, e.g. reduce-overhead's CUDA graphs)
and place of the images (data.device=cpu, cuda); on a CPU only 32-true, uncompiled, images on
the CPU.

Writes benchmarks/results/<machine>.json (machine: e.g. cpu-2core-x86_64).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from vaelab.allocator import keep_freed_memory
from vaelab.compile import MODES, compile_mode
from vaelab.console import route_lightning_logs
from vaelab.cuda_probe import ask_for_gpus_once
from vaelab.training import build_module, build_trainer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CASES = (("conv", 64), ("conv", 256), ("mlp", 64))  # (arch, batch)
COMPILE_SETTINGS = {"false": False, "true": True}  # --compile's words; a mode stays a word
COMPILED = {False: "no", True: "yes"}  # the table's column


def machine_name() -> str:
    if DEVICE.type == "cuda":
        gpu = torch.cuda.get_device_name().lower().replace("nvidia", "").strip()
        return "gpu-" + "-".join(gpu.split())
    return f"cpu-{os.cpu_count()}core-{platform.machine()}"


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def compose_cfg(arch: str, batch: int, images: int, size: str, out_dir: Path, extra=()):
    overrides = [
        f"arch={arch}",
        f"size={size}",
        f"data.batch_size={batch}",
        f"data.subset={images}",
        "data.val_fraction=0.01",
        "data.test_fraction=0.01",
        "trainer=auto",
        "trainer.limit_val_batches=0",
        "trainer.enable_model_summary=false",
        "evaluation=none",
        f"paths.output_dir={out_dir}",
        *extra,
    ]
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("train", overrides=overrides)


class Clock(L.Callback):
    """Wall time from the end of batch ``warmup`` to the end of batch ``warmup + steps``
    (``seconds``, also its ``figure``)."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps, self.seen = warmup, steps, 0
        self.started = self.seconds = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen += 1
        if self.seen in (self.warmup, self.warmup + self.steps):
            sync()
            now = time.perf_counter()
            self.started, self.seconds = (
                (now, 0.0)
                if self.seen == self.warmup
                else (
                    self.started,
                    now - self.started,
                )
            )

    @property
    def figure(self) -> float:
        return self.seconds


def vaelab_block(
    cfg, module, datamodule, warmup: int, steps: int, window=Clock
) -> tuple[Any, L.Trainer]:
    """The ``window``'s figure (``Clock``: seconds) for ``steps`` training steps of a fresh
    Trainer after ``warmup`` steps, and the Trainer; it writes into a folder of its own under
    ``paths.output_dir``, as a new run would (a reused one makes Lightning warn that it
    replaces the logs there)."""
    cfg = copy.deepcopy(cfg)
    cfg.paths.output_dir = tempfile.mkdtemp(prefix="block-", dir=cfg.paths.output_dir)
    cfg.trainer.max_steps = warmup + steps
    trainer = build_trainer(cfg)
    measured = window(warmup, steps)
    trainer.callbacks.append(measured)
    trainer.fit(module, datamodule=datamodule)
    return measured.figure, trainer


class Bare:
    """The same networks, Adam and β-VAE loss, in a plain loop over shuffled index batches,
    with the variant's precision (bf16 autocast around forward and loss, sums in float32),
    compilation (``nn.Module.compile`` of both networks) and place of the images."""

    def __init__(self, cfg, images: torch.Tensor, rows: np.ndarray, batch: int) -> None:
        torch.manual_seed(0)
        self.encoder = instantiate(cfg.arch.encoder, variational=True).to(DEVICE)
        self.decoder = instantiate(cfg.arch.decoder).to(DEVICE)
        mode = compile_mode(cfg.get("compile", False))
        if mode is not None:
            self.encoder.compile(mode=mode)
            self.decoder.compile(mode=mode)
        params = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=cfg.arch.lr)
        self.bf16 = str(cfg.trainer.precision).startswith("bf16")
        self.images = images  # on the GPU with data.device=cuda, else a CPU tensor
        self.array = images.numpy() if images.device.type == "cpu" else None
        self.rows, self.batch, self.beta = rows, batch, 4.0
        self.rng, self.order, self.at = np.random.default_rng(0), np.arange(0), 0

    def next_batch(self) -> torch.Tensor:
        if self.at + self.batch > len(self.order):
            self.order, self.at = self.rng.permutation(len(self.rows)), 0
        chosen = self.rows[self.order[self.at : self.at + self.batch]]
        self.at += self.batch
        if self.array is not None:  # gathered on the CPU with numpy, as the DataModule does
            batch = torch.from_numpy(self.array[chosen]).to(DEVICE)
        else:
            batch = self.images[torch.from_numpy(chosen).to(self.images.device)]
        return batch.float().div_(255.0)

    def step(self) -> None:
        x = self.next_batch()
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=self.bf16):
            mu, logvar = self.encoder(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            logits = self.decoder(z)
            recon = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="none")
            mu, logvar = mu.float(), logvar.float()
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
            loss = recon.flatten(1).sum(1).mean() + self.beta * kl.sum(1).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def block(self, warmup: int, steps: int) -> float:
        for _ in range(warmup):
            self.step()
        sync()
        started = time.perf_counter()
        for _ in range(steps):
            self.step()
        sync()
        return time.perf_counter() - started


def checkpoint_ms(trainer: L.Trainer, out_dir: Path) -> float:
    """Milliseconds to write one checkpoint (saved every
    ``callbacks.model_checkpoint.every_n_train_steps`` steps; none falls in a block)."""
    started = time.perf_counter()
    trainer.save_checkpoint(out_dir / "timing.ckpt", weights_only=False)  # as last.ckpt is
    return 1000 * (time.perf_counter() - started)


def variant_overrides(variant: tuple[str, bool | str, str]) -> list[str]:
    precision, compiled, data_device = variant
    setting = str(compiled).lower() if isinstance(compiled, bool) else compiled
    return [f"precision={precision}", f"compile={setting}", f"data.device={data_device}"]


def compare(
    arch: str, batch: int, variant: tuple[str, bool | str, str], args, out_dir: Path
) -> dict:
    extra = [*variant_overrides(variant), *args.override]
    cfg = compose_cfg(arch, batch, args.images, args.size, out_dir, extra)
    L.seed_everything(0, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    module = build_module(cfg)
    bare = Bare(cfg, datamodule.images, datamodule._positions["train"], batch)
    started = time.perf_counter()  # size the blocks from the bare loop's warm-up speed
    bare.block(args.warmup, 0)
    per_step = (time.perf_counter() - started) / args.warmup
    steps = max(args.min_steps, round(args.seconds / per_step))
    times = {"vaelab": [], "bare": []}
    for _ in range(args.rounds):
        seconds, trainer = vaelab_block(cfg, module, datamodule, args.warmup, steps)
        times["vaelab"].append(seconds)
        times["bare"].append(bare.block(args.warmup, steps))
    rates = {k: steps * batch * len(v) / sum(v) for k, v in times.items()}
    pairs = zip(times["vaelab"], times["bare"], strict=True)
    block_ratios = [b / v for v, b in pairs]  # vaelab rate / bare rate, per block pair
    every = cfg.callbacks.model_checkpoint.every_n_train_steps
    return {
        "arch": arch,
        "size": args.size,
        "batch": batch,
        "precision": variant[0],
        "compile": variant[1],
        "data_device": variant[2],
        "steps_per_block": steps,
        "rounds": args.rounds,
        "vaelab_images_per_s": round(rates["vaelab"], 1),
        "bare_images_per_s": round(rates["bare"], 1),
        # The median over block pairs: one block slowed by something else on the machine
        # moves a ratio of totals but not the median.
        "ratio": round(float(np.median(block_ratios)), 4),
        "ratio_of_totals": round(rates["vaelab"] / rates["bare"], 4),
        "block_ratios": [round(r, 4) for r in block_ratios],
        "checkpoint_ms": round(checkpoint_ms(trainer, out_dir), 1),
        "checkpoint_every_n_steps": every,
    }


def dsprites_child(mode: str, folder: str, images: int) -> None:
    """Child process: generate (render into ``folder``) or load dSprites; print a JSON line."""
    from vaelab.data import ImageDataModule
    from vaelab.data.dsprites import ProceduralDSprites

    started = time.perf_counter()
    source = ProceduralDSprites(folder, use_file=False)
    subset = None if images <= 0 else images
    ImageDataModule(source, subset=subset, seed=0).setup()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    seconds = time.perf_counter() - started
    print(json.dumps({"mode": mode, "seconds": round(seconds, 2), "peak_rss_gib": round(peak, 3)}))


def run_child(mode: str, folder: Path, images: int) -> dict:
    cmd = [sys.executable, __file__, "--dsprites-child", mode, str(folder), str(images)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def dsprites(tiny: bool) -> dict:
    """Generate into a temporary cache, then load (the repo's data/ cache when there)."""
    images = 4096 if tiny else 0  # 0: all 737,280
    with tempfile.TemporaryDirectory(
        dir=ROOT / "data" if (ROOT / "data").is_dir() else None
    ) as tmp:
        generate = run_child("generate", Path(tmp), images)
        cached = ROOT / "data" / "dsprites_procedural_v1.npy"
        folder = cached.parent if cached.exists() and not tiny else Path(tmp)
        load = None if tiny else run_child("load", folder, images)
    return {
        "images": images or 737_280,
        "generate_s": generate["seconds"],
        "generate_peak_rss_gib": generate["peak_rss_gib"],
        "load_s": load and load["seconds"],
        "load_peak_rss_gib": load and load["peak_rss_gib"],
    }


def table(result: dict) -> str:
    lines = [
        f"Training throughput on {result['machine']} ({result['device']}, torch "
        f"{result['torch']}, lightning {result['lightning']}), images/s:",
        "",
        "| arch (size) | batch | precision | compile | data on | vaelab | bare PyTorch "
        "| vaelab / bare (median of pairs) | checkpoint |",
        "|---|---:|---|---|---|---:|---:|---:|---:|",
    ]
    for c in result["throughput"]:
        lines.append(
            f"| {c['arch']} ({c['size']}) | {c['batch']} | {c['precision']} | "
            f"{COMPILED.get(c['compile'], c['compile'])} | {c['data_device']} | "
            f"{c['vaelab_images_per_s']:,.0f} | "
            f"{c['bare_images_per_s']:,.0f} | {c['ratio']:.3f} | {c['checkpoint_ms']:.0f} ms "
            f"every {c['checkpoint_every_n_steps']} steps |"
        )
    d = result["dsprites"]
    if d is not None:
        load = (
            "-"
            if d["load_s"] is None
            else f"{d['load_s']:.1f} s, peak {d['load_peak_rss_gib']:.2f} GiB"
        )
        lines += [
            "",
            f"Procedural dSprites ({d['images']:,} images): generate {d['generate_s']:.1f} s, "
            f"peak RSS {d['generate_peak_rss_gib']:.2f} GiB; load {load}.",
        ]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--dsprites-child":
        dsprites_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a ~30 s smoke run (small nets)")
    parser.add_argument("--rounds", type=int, default=3, help="vaelab/bare block pairs")
    parser.add_argument("--seconds", type=float, default=4.0, help="target seconds per block")
    parser.add_argument("--images", type=int, default=20_000, help="dSprites images used")
    parser.add_argument("--size", default="base", help="size config of the networks")
    parser.add_argument("--skip-dsprites", action="store_true")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="a Hydra override for the vaelab side, e.g. '~callbacks.progress' (repeatable)",
    )
    parser.add_argument("--cases", default=None, help="e.g. 'mlp:64,conv:64' (default: all)")
    on_gpu = DEVICE.type == "cuda"
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["32-true", "bf16-mixed"] if on_gpu else ["32-true"],
        help="precision configs to measure (default: 32-true, and bf16-mixed on a GPU)",
    )
    parser.add_argument(
        "--compile",
        nargs="+",
        choices=["false", "true", *MODES],
        default=["false", "true"] if on_gpu else ["false"],
        help="without torch.compile, with it (true: the default mode) or in a mode by name "
        "(default: false and true on a GPU, false on a CPU)",
    )
    parser.add_argument(
        "--data-device",
        nargs="+",
        default=["cpu", "cuda"] if on_gpu else ["cpu"],
        help="where the images live (default: cpu and cuda on a GPU)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/)")
    args = parser.parse_args()
    kept = keep_freed_memory()  # as the programs do (VAELAB_MALLOC=system: glibc's defaults)
    route_lightning_logs()  # as a run does: without Lightning's advertisement
    ask_for_gpus_once()  # as a Trainer does: the bare loop too asks NVML once, not per step
    args.warmup, args.min_steps = 10, 20
    if args.tiny:
        args.rounds, args.seconds, args.images, args.size = 1, 0.3, 2048, "small"
        args.warmup, args.min_steps = 3, 5
    torch.set_float32_matmul_precision("high")
    with tempfile.TemporaryDirectory() as tmp:
        chosen = CASES
        if args.cases:
            chosen = [(a, int(b)) for a, b in (c.split(":") for c in args.cases.split(","))]
        variants = [
            (precision, COMPILE_SETTINGS.get(compiled, compiled), data_device)
            for precision in args.precision
            for compiled in args.compile
            for data_device in args.data_device
        ]
        cases = [
            compare(arch, batch, variant, args, Path(tmp))
            for arch, batch in chosen
            for variant in variants
        ]
    result = {
        "machine": machine_name(),
        "device": str(DEVICE),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "tiny": args.tiny,
        "allocator": "freed memory kept (vaelab.allocator)" if kept else "default",
        "overrides": args.override,
        "throughput": cases,
        "dsprites": None if args.skip_dsprites else dsprites(args.tiny),
    }
    # A partial or modified run never replaces the machine's reference results.
    variants_changed = any(
        getattr(args, k) != parser.get_default(k) for k in ("precision", "compile", "data_device")
    )
    custom = args.override or args.cases or variants_changed
    suffix = "-tiny" if args.tiny else "-custom" if custom else ""
    out = args.out or RESULTS / f"{result['machine']}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
