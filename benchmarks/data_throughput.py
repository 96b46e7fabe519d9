"""Images per second delivered by ImageDataModule's train_dataloader vs. a bare loop that
only indexes a uint8 tensor, and the peak RSS of setting up all of dSprites. Prints figures;
never fails on time.

    python benchmarks/data_throughput.py [--images 200000] [--batches 2000] [--skip-rss]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vaelab.data import ImageDataModule
from vaelab.data.dsprites import ProceduralDSprites

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def rate(batches, limit: int) -> tuple[float, int]:
    """Images per second over at most ``limit`` batches of an iterable (after one warm-up)."""
    it = iter(batches)
    next(it)
    count, started = 0, time.perf_counter()
    for i, batch in enumerate(it):
        count += len(batch)
        if i + 1 >= limit:
            break
    return count / (time.perf_counter() - started), count


def bare(images: torch.Tensor, batch_size: int, limit: int):
    """Random index batches gathered from the tensor by torch indexing, nothing else."""
    for _ in range(limit + 1):
        yield images[torch.randint(0, len(images), (batch_size,))]


def bare_numpy(images: torch.Tensor, batch_size: int, limit: int):
    """The same with numpy's gather on a view of the tensor (what the loader does on a CPU)."""
    array, rng = images.numpy(), np.random.default_rng(0)
    for _ in range(limit + 1):
        yield torch.from_numpy(array[rng.integers(0, len(array), batch_size)])


def throughput(n_images: int, limit: int) -> None:
    started = time.perf_counter()
    dm = ImageDataModule(ProceduralDSprites(DATA_DIR), subset=n_images, seed=0)
    dm.setup()
    print(f"setup of {n_images} dSprites images: {time.perf_counter() - started:.1f} s")
    for batch_size in (64, 256):
        dm.batch_size = batch_size
        loader, n = rate(dm.train_dataloader(), limit)
        loop, _ = rate(bare(dm.images, batch_size, limit), limit)
        loop_np, _ = rate(bare_numpy(dm.images, batch_size, limit), limit)
        print(
            f"batch {batch_size:4d}: train_dataloader {loader:11,.0f} img/s | bare loop: "
            f"torch indexing {loop:11,.0f}, numpy gather {loop_np:11,.0f} img/s ({n} images)"
        )


def setup_all() -> None:
    """Child process: set up every dSprites image and report this process's peak RSS."""
    started = time.perf_counter()
    dm = ImageDataModule(ProceduralDSprites(DATA_DIR), seed=0)
    dm.setup()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    data = dm.images.numel() / 2**30
    print(
        f"setup of all {len(dm.images):,} dSprites images: {time.perf_counter() - started:.1f} s, "
        f"peak RSS {peak:.2f} GiB for {data:.2f} GiB of images"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--setup-all", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup_all:
        return setup_all()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    throughput(args.images, args.batches)
    if not args.skip_rss:
        subprocess.run([sys.executable, __file__, "--setup-all"], check=False)


if __name__ == "__main__":
    main()
