"""Devices, precision and speed: DDP sharding and its equality with one process, bf16 on the
CPU with float32 sums, torch.compile, and the throughput benchmark's JSON."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from vaelab.compile import compile_networks
from vaelab.data.loader import ShuffledBatches
from vaelab.module import reparameterize
from vaelab.nets import ConvDecoder, ConvEncoder
from vaelab.objectives.base import Objective, VAEOutput
from vaelab.training import build_module, build_trainer

from .conftest import ROOT, TINY, read_metrics
from .test_config import compose_train

# ---- sharding --------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_are_disjoint_equal_and_together_the_one_process_batches(world_size: int):
    one = list(ShuffledBatches(100, 12, shuffle=True, seed=5, drop_last=True))
    ranks = [
        list(ShuffledBatches(100, 12, True, 5, drop_last=True, rank=r, world_size=world_size))
        for r in range(world_size)
    ]
    assert {len(r) for r in ranks} == {len(one)} == {8}
    for i, batch in enumerate(one):
        shards = [r[i] for r in ranks]
        assert {len(s) for s in shards} == {12 // world_size}
        np.testing.assert_array_equal(np.concatenate(shards), batch)
    seen = np.concatenate([np.concatenate(r) for r in ranks])
    assert len(np.unique(seen)) == len(seen)  # disjoint across ranks and batches


def test_a_sharded_sampler_resumes_at_the_same_global_batch():
    sampler = ShuffledBatches(100, 12, True, 5, drop_last=True, rank=1, world_size=2)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.resume_at(2, 3)
    assert [b.tolist() for b in sampler] == [b.tolist() for b in whole[3:]]


def test_uneven_shards_are_refused():
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        ShuffledBatches(100, 9, True, drop_last=True, rank=0, world_size=2)
    with pytest.raises(ValueError, match="drop_last"):
        ShuffledBatches(100, 8, True, drop_last=False, rank=0, world_size=2)


def test_sharded_eps_is_the_slice_of_one_draw_for_the_global_batch():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    torch.manual_seed(0)
    whole = reparameterize(torch.zeros(8, 3), torch.zeros(8, 3))
    torch.manual_seed(0)
    assert torch.equal(reparameterize(mu, logvar, shard=(1, 2)), whole[4:])


# ---- DDP on the CPU against one process -------------------------------------------------

# SGD, not Adam: Adam's first steps are about lr * sign(gradient), which turns float-rounding
# differences in near-zero gradients into lr-sized weight differences; SGD keeps them tiny.
SAME_DATA = [
    "data.batch_size=32",
    "trainer.max_steps=6",
    "optimizer._target_=torch.optim.SGD",
    "optimizer.lr=1e-5",
    "~callbacks.progress",
]
RTOL = 5e-5  # float32 sums over 4,096 pixels in a different order (batch 16 vs 32 kernels)


PARTS = {"model=beta_tcvae": ("train/mi", "train/tc", "train/dwkl"),
         "model=dip_vae model.variant=ii": ("train/dip_penalty",)}  # fmt: skip


def train_log(run_dir: Path, model: str = "model=beta_vae") -> list[dict[str, float]]:
    rows = csv.DictReader((run_dir / "csv" / "metrics.csv").open())
    keys = ("train/loss", "train/recon", "train/kl", *PARTS.get(model, ()))
    return [{k: float(r[k]) for k in keys} for r in rows if r.get("train/loss")]


# β-TCVAE's q(z) estimate and DIP-VAE's Cov[mu] are statistics of the global batch, gathered
# across the ranks with gradients; they must equal one process's too.
@pytest.mark.parametrize(
    "model", ["model=beta_vae", "model=beta_tcvae", "model=dip_vae model.variant=ii"]
)
def test_ddp_cpu_logs_and_learns_the_same_as_one_process(cli, model: str):
    ddp, result = cli(*SAME_DATA, *model.split(), "trainer=ddp_cpu", name="ddp", process=True)
    assert result.returncode == 0, result.stderr[-3000:]
    one, result = cli(*SAME_DATA, *model.split(), name="one")
    assert result.returncode == 0, result.stderr[-3000:]
    logs = [train_log(ddp, model), train_log(one, model)]
    assert len(logs[0]) == len(logs[1]) == 6
    assert logs[0][-1]["train/loss"] < logs[0][0]["train/loss"] - 50  # it does learn
    for a, b in zip(*logs, strict=True):  # abs: MI and TC are ~0 at the start, sums of ±
        assert a == pytest.approx(b, rel=RTOL, abs=1e-5)
    metrics = [read_metrics(r)["metrics"] for r in (ddp, one)]
    assert metrics[0]["val/elbo"] == pytest.approx(metrics[1]["val/elbo"], rel=RTOL)
    assert metrics[0]["test/elbo"] == pytest.approx(metrics[1]["test/elbo"], rel=RTOL)
    ckpts = [torch.load(r / "checkpoints" / "last.ckpt", weights_only=True) for r in (ddp, one)]
    weights = [c["state_dict"] for c in ckpts]
    assert all(torch.allclose(weights[0][k], weights[1][k], atol=5e-5) for k in weights[0])
    loader = [c["loops"]["fit_loop"]["state_dict"]["combined_loader"] for c in ckpts]
    assert loader[0] == loader[1] == [{"epoch": 0, "batches_done": 6}]


def test_ddp_cpu_prints_each_progress_line_once(cli):
    """Two ranks, one set of log lines: `training from step`, `validating`, `testing`."""
    run_dir, result = cli("trainer=ddp_cpu", "trainer.max_steps=4", "trainer.val_check_interval=2",
                          "evaluation=none", name="ddp_lines", process=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout + result.stderr
    for line in ("training from step 0 to 4", "validating at step 2", "testing at step 4"):
        assert printed.count(line) == 1, (line, printed[-3000:])
    assert (run_dir / "train.log").read_text().count("training from step 0 to 4") == 1


# ---- precision ---------------------------------------------------------------------------


def test_kl_and_likelihood_sums_stay_float32_under_bf16_autocast():
    encoder = ConvEncoder((1, 64, 64), [16, 16, 32, 32], 128, 6)
    decoder = ConvDecoder((1, 64, 64), [16, 16, 32, 32], 128, 6)
    x = torch.rand(4, 1, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mu, logvar = encoder(x)
        logits = decoder(mu)
        assert logits.dtype == mu.dtype == torch.bfloat16  # autocast is on
        out = VAEOutput(mu=mu, logvar=logvar, z=mu, logits=logits)
        parts = Objective()(x, out, beta=4.0)
    for name in ("loss", "recon", "kl", "kl_per_dim"):
        assert parts[name].dtype == torch.float32, name


def test_bf16_mixed_trains_on_the_cpu_through_the_cli(cli):
    run_dir, result = cli("precision=bf16-mixed", "~callbacks.progress")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed"
    assert np.isfinite(metrics["metrics"]["train/loss"])
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 6  # plain types only, as every vaelab checkpoint


# ---- torch.compile -----------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile on the CPU needs a C++ compiler (inductor)",
)
@pytest.mark.parametrize("setting", [True, "reduce-overhead"])  # on a CPU: no CUDA graphs
def test_compile_trains_a_few_steps(tmp_path: Path, setting):
    cfg = compose_train(*TINY, "arch=mlp", "data.batch_size=32", tmp=tmp_path)
    datamodule = instantiate(cfg.data, source={"cache_dir": str(tmp_path / "data")})
    module = compile_networks(build_module(cfg), setting)
    assert type(module.encoder).__name__ == "MLPEncoder"  # compiled in place: same names
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        log_every_n_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 3
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert all(k.startswith(("encoder.", "decoder.")) for k in module.state_dict())
    assert not any("_orig_mod" in k for k in module.state_dict())


# ---- the benchmark -----------------------------------------------------------------------


def test_the_throughput_benchmark_writes_its_json_at_tiny_size(tmp_path: Path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--tiny"]
    result = subprocess.run(
        [*cmd, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    assert {"machine", "device", "throughput", "dsprites"} <= set(record)
    cases = [(c["arch"], c["batch"], c["precision"], c["compile"]) for c in record["throughput"]]
    assert cases == [
        ("conv", 64, "32-true", False),
        ("conv", 256, "32-true", False),
        ("mlp", 64, "32-true", False),
    ]
    assert {c["data_device"] for c in record["throughput"]} == {"cpu"}
    for case in record["throughput"]:
        assert case["vaelab_images_per_s"] > 0 and case["bare_images_per_s"] > 0
        assert case["ratio"] == pytest.approx(float(np.median(case["block_ratios"])), abs=1e-4)
        assert case["ratio_of_totals"] > 0
    assert {"generate_s", "generate_peak_rss_gib", "load_s"} <= set(record["dsprites"])
    assert "| vaelab / bare (median of pairs) |" in result.stdout
    printed = result.stdout + result.stderr  # as a run prints: no advertisement, no warning
    assert "Tip" not in printed and "is not empty" not in printed and "weights_only" not in printed

    # The GPU table's variants, where a CPU can run them: bf16 autocast (MLP only: bf16
    # convolutions are slow on CPUs without bf16 instructions).
    bf16 = ["--cases", "mlp:64", "--precision", "bf16-mixed", "--skip-dsprites"]
    result = subprocess.run(
        [*cmd, *bf16, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (case,) = json.loads(out.read_text())["throughput"]
    assert (case["arch"], case["precision"], case["compile"]) == ("mlp", "bf16-mixed", False)
    assert case["vaelab_images_per_s"] > 0 and case["bare_images_per_s"] > 0


def test_the_step_overhead_benchmark_prints_one_row_per_variant():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "step_overhead.py")]
    args = ["--rounds", "1", "--steps", "3", "--images", "2048"]
    result = subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    rows = [line for line in lines if line.startswith("| ") and "ms/step" not in line]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows] == [
        "default stack",
        "no progress bar",
        "no callbacks, no progress bar",
    ]
    for row in rows:
        vaelab, bare, overhead = (float(v) for v in row.strip("| ").split(" | ")[1:])
        assert vaelab > 0 and bare > 0 and overhead == pytest.approx(vaelab - bare, abs=0.02)


def test_the_compile_setting_names_the_mode_each_network_is_compiled_in(tmp_path: Path):
    cfg = compose_train(*TINY, "arch=mlp", tmp=tmp_path)
    for setting, mode in [(False, None), (None, None), (True, "default"),
                          ("reduce-overhead", "reduce-overhead")]:  # fmt: skip
        module, modes = build_module(cfg), {}
        for name in ("encoder", "decoder"):
            getattr(module, name).compile = lambda mode, _n=name, _m=modes: _m.update({_n: mode})
        compile_networks(module, setting)
        assert modes == ({} if mode is None else {"encoder": mode, "decoder": mode})


@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile on the CPU needs a C++ compiler (inductor)",
)
def test_with_cuda_graphs_only_calls_with_gradients_are_compiled(tmp_path: Path):
    """reduce-overhead: a call under no_grad (validation, figures, evaluation) runs eagerly,
    where CUDA graphs would free its outputs at the next call; a training call compiles."""
    from torch._dynamo.utils import counters

    cfg = compose_train(*TINY, "arch=mlp", tmp=tmp_path)
    module = compile_networks(build_module(cfg), "reduce-overhead")
    x = torch.rand(4, *cfg.arch.image_shape)
    torch._dynamo.reset()
    counters.clear()
    with torch.no_grad():
        eager = module.encoder(x)
    assert counters["frames"]["ok"] == 0  # nothing compiled
    compiled = module.encoder(x)
    assert counters["frames"]["ok"] >= 1
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(eager, compiled, strict=True))


# ---- the GPU probe ---------------------------------------------------------------------


@pytest.mark.skipif(
    not torch.cuda._is_compiled() or torch.cuda.is_available(),
    reason="needs a CUDA build of torch on a machine without a GPU",
)
def test_training_without_a_gpu_does_not_ask_nvml_at_every_step(monkeypatch, tmp_path):
    """Lightning's import has torch ask NVML whether CUDA is there, and torch's Adam asks at
    every step; a Trainer built on a machine without a GPU asks it once."""
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # as Lightning's import leaves it
    asked = []
    ask = torch.cuda._raw_device_count_nvml
    monkeypatch.setattr(torch.cuda, "_raw_device_count_nvml", lambda: asked.append(1) or ask())
    cfg = compose_train(*TINY, "trainer.max_steps=20", "trainer.val_check_interval=20",
                        tmp=tmp_path)  # fmt: skip
    module, datamodule = build_module(cfg), instantiate(cfg.data)
    trainer = build_trainer(cfg)
    while_built = len(asked)  # Lightning's own questions and ours, as the Trainer is built
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 20
    assert while_built > 0  # the patched probe is the one torch calls
    assert len(asked) == while_built  # without ask_for_gpus_once: 20 more, one a step
