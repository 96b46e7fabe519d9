"""``hydra/launcher=stacked``: a stack's members are the models their configs train alone
(losses and weights, every objective), their folders are what single runs write, and a
killed stack resumes to the uninterrupted result."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vaelab.nets import ConvDecoder, ConvEncoder
from vaelab.stacked.nets import StackedNet

from .conftest import ROOT, TINY, read_metrics

# SGD, as the DDP test: Adam's first steps are about lr · sign(gradient), which turns the
# float rounding of a grouped convolution (the stack) against K plain ones into lr-sized
# weight differences; SGD keeps a difference the size of the rounding. And SGD, unlike
# Adam, would show a loss averaged over the members instead of summed (a 1/K gradient).
SAME = [
    *[o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.val_check"))],
    "trainer.max_steps=24", "trainer.val_check_interval=12",
    "optimizer._target_=torch.optim.SGD", "optimizer.lr=1e-5", "~callbacks.progress",
]  # fmt: skip
RTOL = 5e-5


def sweep(folder: Path, *overrides: str, stacked: bool,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    launcher = ["hydra/launcher=stacked"] if stacked else []
    cmd = [sys.executable, "src/train.py", "-m", *launcher, *SAME, *overrides,
           f"hydra.sweep.dir={folder}"]  # fmt: skip
    env = {**os.environ, "VAELAB_DATA_DIR": str(folder.parent / "data"), **(env or {})}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def jobs(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.glob("*/metrics.json"))


def train_log(job: Path) -> list[dict[str, float]]:
    rows = csv.DictReader((job / "csv" / "metrics.csv").open())
    return [{k: float(v) for k, v in r.items() if k.startswith("train/") and v}
            for r in rows if r.get("train/loss")]  # fmt: skip


def stack_log(folder: Path) -> str:
    return "".join(p.read_text() for p in folder.glob(".stacks/*/train.log"))


def weights(job: Path) -> dict[str, torch.Tensor]:
    ckpt = job / "checkpoints" / "last.ckpt"  # a single run's on a GPU holds CUDA tensors
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def assert_same_runs(stack: Path, single: Path, count: int) -> None:
    pairs = list(zip(jobs(stack), jobs(single), strict=True))
    assert len(pairs) == count
    for a, b in pairs:
        assert a.name == b.name
        log_a, log_b = train_log(a), train_log(b)
        assert len(log_a) == len(log_b) == 24
        for row_a, row_b in zip(log_a, log_b, strict=True):
            row_b.pop("train/images_per_sec", None)  # the speed: the stack's is its own
            assert row_a == pytest.approx(row_b, rel=RTOL, abs=1e-5), a.name
        ma, mb = read_metrics(a), read_metrics(b)
        assert ma["status"] == mb["status"] == "completed" and ma["step"] == mb["step"] == 24
        assert ma["config_hash"] == mb["config_hash"]  # the same config, run either way
        for key in ("val/elbo", "test/elbo", "test/loss"):
            if key in mb["metrics"]:
                assert ma["metrics"][key] == pytest.approx(mb["metrics"][key], rel=RTOL)
        wa, wb = weights(a), weights(b)
        assert set(wa) == set(wb)
        for k in wb:
            assert torch.allclose(wa[k], wb[k], atol=5e-5), (a.name, k)
        assert (a / ".hydra" / "overrides.yaml").read_text() == (
            b / ".hydra" / "overrides.yaml"
        ).read_text()


@pytest.mark.parametrize("channels_last", [True, False])
def test_a_looped_stack_of_conv_nets_computes_bit_for_bit_what_each_net_does(channels_last: bool):
    """Each member's slice of the stacked weights keeps its net's strides (NHWC, and the
    layout a size-1 dimension's stride tells the convolution), so oneDNN runs the same
    kernels: outputs and weight gradients equal to the bit."""
    torch.manual_seed(0)
    encoders = [ConvEncoder((1, 32, 32), channels_last=channels_last) for _ in range(2)]
    decoders = [ConvDecoder((1, 32, 32), channels_last=channels_last) for _ in range(2)]
    stacked = StackedNet(encoders, vectorized=False), StackedNet(decoders, vectorized=False)
    x = torch.rand(2, 8, 1, 32, 32)
    mu, logvar = stacked[0](x)
    logits = stacked[1](mu)
    (logits.square().sum() + logvar.sum()).backward()
    for k in range(2):
        mu_k, logvar_k = encoders[k](x[k])
        logits_k = decoders[k](mu_k)
        (logits_k.square().sum() + logvar_k.sum()).backward()
        assert torch.equal(mu[k], mu_k) and torch.equal(logits[k], logits_k)
        for stack, net in zip(stacked, (encoders[k], decoders[k]), strict=True):
            for name, param in net.named_parameters():
                assert stack.params[name.replace(".", "__")][k].stride() == param.stride(), name
                assert torch.equal(stack.params[name.replace(".", "__")].grad[k], param.grad)


@pytest.mark.parametrize("vectorize", ["auto", "true"])  # on a CPU: conv nets looped, vmapped
def test_a_stack_of_four_equals_the_four_single_runs(tmp_path: Path, vectorize: str):
    # figures during training (each member's, into its folder) leave the training unchanged
    grid = ["beta=1,4", "seed=0,1", "callbacks.figures.every_n_steps=12"]
    result = sweep(tmp_path / "stack", *grid, f"hydra.launcher.vectorize={vectorize}", stacked=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Launching 4 jobs as 1 stack(s)" in result.stdout + result.stderr
    assert "the 4 members' losses in one vmapped call" in stack_log(tmp_path / "stack")
    result = sweep(tmp_path / "single", *grid, stacked=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_runs(tmp_path / "stack", tmp_path / "single", 4)
    for a, b in zip(jobs(tmp_path / "stack"), jobs(tmp_path / "single"), strict=True):
        drawn = sorted(p.name for p in (a / "figures" / "progress").iterdir())
        assert drawn == sorted(p.name for p in (b / "figures" / "progress").iterdir())
        assert "traversal_step0000012.png" in drawn and "samples_step0000024.png" in drawn
    # the members did differ: different seeds and β give different models
    first, last = jobs(tmp_path / "stack")[0], jobs(tmp_path / "stack")[-1]
    assert not torch.allclose(weights(first)["encoder.fc_mu.weight"],
                              weights(last)["encoder.fc_mu.weight"])  # fmt: skip
    assert train_log(first)[-1]["train/loss"] < train_log(first)[0]["train/loss"] - 50


@pytest.mark.parametrize(
    "grid",
    [
        ["model=factor_vae", "model.gamma=10,40", "seed=0,1"],  # its discriminators stacked too
        ["model=beta_tcvae", "beta=1,6"],
        ["model=dip_vae", "model.variant=ii", "model.lambda_od=1,10"],
        ["model=dip_vae", "seed=0,1"],  # equal settings: one vmapped loss
        ["model=annealed_vae", "model.c_max=5,25"],
        ["model=ae", "seed=0,1"],
        # decay on weights only (SGD's here), elementwise clipping (at 0.1 · P = 0.1 per
        # element, so it does clip), each member's own codebook
        ["model=qlae", "model.commitment_weight=0.01,0.1", "model.optimization.clip_value=1e-4"],
        # the Hessian probes from each member's stream, through its own decoder
        ["model=tripod", "seed=0,1", "model.lambda_hessian=1.0"],
        ["model=ada_gvae", "seed=0,1"],  # pairs, drawn and averaged per member
    ],
    ids=[
        "factor_vae",
        "beta_tcvae",
        "dip_vae",
        "dip_vae_seeds",
        "annealed_vae",
        "ae",
        "qlae",
        "tripod",
        "ada_gvae",
    ],
)
def test_every_objective_trains_stacked_as_alone(tmp_path: Path, grid: list[str]):
    result = sweep(tmp_path / "stack", *grid, stacked=True)
    assert result.returncode == 0, result.stderr[-3000:]
    # one vmapped loss where the objective allows it and the members' settings are equal
    # (β may differ: it comes from each member's schedule); else the losses one by one
    batched = grid in (["model=beta_tcvae", "beta=1,6"], ["model=dip_vae", "seed=0,1"],
                       ["model=ae", "seed=0,1"])  # fmt: skip
    how = "in one vmapped call" if batched else "member by member"
    assert f"members' losses {how}" in stack_log(tmp_path / "stack")
    result = sweep(tmp_path / "single", *grid, stacked=False)
    assert result.returncode == 0, result.stderr[-3000:]
    count = 4 if grid[0] == "model=factor_vae" else 2
    assert_same_runs(tmp_path / "stack", tmp_path / "single", count)


def test_a_member_whose_loss_is_not_finite_fails_and_the_others_train_as_alone(tmp_path: Path):
    """In the vmapped loss the failed member's slice is still computed (its backward gets a
    zero gradient times inf); the other member must not feel it."""
    result = sweep(tmp_path / "stack", "beta=1,inf", stacked=True)
    assert result.returncode == 1
    assert "the 2 members' losses in one vmapped call" in stack_log(tmp_path / "stack")
    healthy, failed = jobs(tmp_path / "stack")
    assert read_metrics(failed)["status"] == "failed"
    assert "the training loss became inf at step 0" in read_metrics(failed)["error"]
    assert "The other members of its stack trained on" in read_metrics(failed)["error"]
    result = sweep(tmp_path / "single", "beta=1", stacked=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (alone,) = jobs(tmp_path / "single")
    assert read_metrics(healthy)["status"] == "completed"
    assert read_metrics(healthy)["metrics"]["val/elbo"] == pytest.approx(
        read_metrics(alone)["metrics"]["val/elbo"], rel=RTOL
    )
    assert all(torch.allclose(weights(healthy)[k], w, atol=5e-5)
               for k, w in weights(alone).items())  # fmt: skip


def test_ctrl_c_in_a_stack_says_where_the_same_command_resumes(tmp_path: Path):
    """It was exit 2 (Lightning's SystemExit(1) read as bad input) with no word of the
    checkpoint."""
    grid = ["seed=0,1", "callbacks.model_checkpoint.every_n_train_steps=5"]
    ctrl_c = ["+hydra.callbacks.killer._target_=tests.killer.KillStackAfterCheckpoint",
              "+hydra.callbacks.killer.step=5",
              "+hydra.callbacks.killer.signal=SIGINT"]  # fmt: skip
    result = sweep(tmp_path / "s", *grid, *ctrl_c, stacked=True, env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 130, result.stderr[-3000:]
    (ckpt,) = (tmp_path / "s").glob(".stacks/*/checkpoints/last.ckpt")
    assert result.stderr.strip().splitlines()[-1] == (
        f"interrupted: training stopped at step 5; the same command resumes it from {ckpt} (step 5)"
    )
    assert [read_metrics(j)["status"] for j in jobs(tmp_path / "s")] == ["interrupted"] * 2
    result = sweep(tmp_path / "s", *grid, stacked=True)  # the same command again
    assert result.returncode == 0, result.stderr[-3000:]
    assert [read_metrics(j)["start_step"] for j in jobs(tmp_path / "s")] == [5, 5]


def test_ctrl_c_in_a_stacks_test_pass_leaves_its_members_interrupted(tmp_path: Path):
    """It ended silently with exit 1, the members' metrics.json saying ``running``."""
    ctrl_c = ["+hydra.callbacks.killer._target_=tests.killer.KillStackAfterCheckpoint",
              "+hydra.callbacks.killer.step=0", "+hydra.callbacks.killer.signal=SIGINT",
              "+hydra.callbacks.killer.stage=test"]  # fmt: skip
    result = sweep(tmp_path / "s", "seed=0,1", *ctrl_c, stacked=True, env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 130, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith("interrupted: training stopped at")
    assert [read_metrics(j)["status"] for j in jobs(tmp_path / "s")] == ["interrupted"] * 2


LONG = [
    "trainer.max_steps=75",  # killed at 40 (mid-epoch 2); resumed across epoch 3 and 2 validations
    "trainer.val_check_interval=25",
    "callbacks.model_checkpoint.every_n_train_steps=5",
    "trainer.deterministic=true",
]
COMPARED = ("train/loss", "train/recon", "train/kl", "val/elbo", "val/loss", "test/elbo")


@pytest.mark.parametrize("model", ["beta_vae", "factor_vae"])
def test_a_killed_stack_resumes_to_the_uninterrupted_result(tmp_path: Path, model: str):
    grid = [f"model={model}", "seed=0,1", *LONG]
    env = {"PYTHONPATH": str(ROOT)}  # for tests.killer
    whole = tmp_path / "whole"
    assert sweep(whole, *grid, stacked=True).returncode == 0
    killed = tmp_path / "killed"
    kill = ["+hydra.callbacks.killer._target_=tests.killer.KillStackAfterCheckpoint",
            "+hydra.callbacks.killer.step=40"]  # fmt: skip
    result = sweep(killed, *grid, *kill, stacked=True, env=env)
    assert result.returncode == -9, result.stderr[-3000:]
    assert [read_metrics(j)["status"] for j in jobs(killed)] == ["running", "running"]
    (stack_ckpt,) = killed.glob(".stacks/*/checkpoints/last.ckpt")
    assert torch.load(stack_ckpt, weights_only=True)["global_step"] == 40
    result = sweep(killed, *grid, stacked=True)  # the same command again
    assert result.returncode == 0, result.stderr[-3000:]
    for a, b in zip(jobs(killed), jobs(whole), strict=True):
        resumed, uninterrupted = read_metrics(a), read_metrics(b)
        assert resumed["resumed_from"] == str(stack_ckpt)
        assert resumed["start_step"] == 40 and resumed["step"] == 75
        assert {k: resumed["metrics"][k] for k in COMPARED} == {
            k: uninterrupted["metrics"][k] for k in COMPARED
        }
        assert all(torch.equal(weights(a)[k], w) for k, w in weights(b).items())
    # and once more: every job completed, so each is skipped
    result = sweep(killed, *grid, stacked=True)
    assert result.returncode == 0
    assert result.stdout.count("completed run of this config: skipped") == 2


def test_stacks_split_by_max_stack_and_by_shared_settings_and_feed_report_and_eval(
    tmp_path: Path,
):
    folder = tmp_path / "sweep"
    grid = ["seed=0,1,2", "arch.latent_dim=4,6", "hydra.launcher.max_stack=2",
            "trainer.max_steps=6"]  # fmt: skip
    result = sweep(folder, *grid, stacked=True)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "Launching 6 jobs as 4 stack(s) of at most 2" in out  # 3 + 3, in stacks of 2 and 1
    assert "train in separate stacks: they differ in arch.latent_dim (4 vs 6)" in out
    assert len(list(folder.glob(".stacks/*/checkpoints/last.ckpt"))) == 4
    assert all(read_metrics(j)["stack"]["members"] in (1, 2) for j in jobs(folder))
    for job in jobs(folder):  # each job's own log: its stack, its evaluation and its result
        own = (job / "train.log").read_text()
        assert "trained as member" in own and f"run folder {job}" in own
        assert own.count("trained as member") == 1  # the other members' lines are not in it
    report = subprocess.run([sys.executable, "src/report.py", str(folder)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    assert (folder / "results.csv").read_text().count("\n") == 7  # a header and 6 jobs
    job = jobs(folder)[0]
    evaluated = subprocess.run(
        [sys.executable, "src/eval.py", f"run={job}", "evaluation=fast",
         "evaluation.disentanglement=[mig]", "evaluation.iwae_k=2", "evaluation.iwae_images=4",
         "evaluation.suite.num_train=100", "evaluation.suite.num_test=50"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "VAELAB_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert 0 <= read_metrics(job)["metrics"]["disent/mig"] <= 1  # the member's checkpoint read


def test_a_job_a_stack_cannot_train_exactly_is_refused_in_one_line(tmp_path: Path):
    result = sweep(tmp_path / "sweep", "seed=0,1", "trainer.gradient_clip_val=1.0", stacked=True)
    assert result.returncode == 1
    assert "2 of 2 jobs failed" in result.stderr
    for job in jobs(tmp_path / "sweep"):
        record = read_metrics(job)
        assert record["status"] == "failed"
        assert "cannot train in a stack: it sets gradient clipping" in record["error"]
        assert "drop hydra/launcher=stacked" in record["error"]


def test_a_members_images_per_second_counts_its_own_batch_not_the_stack():
    """A stack's batch is ``[K, B, C, H, W]``: each step trains every member on B images, so
    a member's images/s counts B a step (it counted K: 16x too low for 4 members of 64)."""
    from types import SimpleNamespace

    from vaelab.callbacks import TrainingSpeed
    from vaelab.stacked.module import StackedVAEModule

    trainer = SimpleNamespace(world_size=1)
    logged = []
    member = SimpleNamespace(
        images_in=StackedVAEModule.images_in, log=lambda *a, **k: logged.append(a)
    )
    single = SimpleNamespace(log=lambda *a, **k: None)
    for module, batch, expected in ((member, torch.zeros(4, 64, 1, 8, 8), 3 * 64),
                                    (single, torch.zeros(64, 1, 8, 8), 3 * 64)):  # fmt: skip
        speed = TrainingSpeed(warmup=0)
        for step in range(4):  # the first batch end starts the clock
            speed.on_train_batch_end(trainer, module, None, batch, step)
        assert speed.images == expected
    assert logged and logged[-1][0] == "train/images_per_sec"


def test_a_stack_resumed_from_nchw_adam_moments_lays_them_out_as_its_nhwc_weights(
    tmp_path: Path,
):
    """A stack killed under ``arch.channels_last=false`` (as before NHWC, 2026-12-06) and
    resumed under the default: its Adam moments take the stacked NHWC weights' strides."""
    folder = tmp_path / "s"
    grid = [*TINY, "seed=0,1", "trainer.max_steps=8", "~callbacks.progress",
            "hydra/launcher=stacked",
            f"hydra.sweep.dir={folder}"]  # fmt: skip
    env = {**os.environ, "VAELAB_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "src/train.py", "-m", *grid, *extra], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=600)  # fmt: skip

    def conv_moments(path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(moment, its weight) for the stacked 4-d conv weights with more than 1 channel."""
        saved = torch.load(path, map_location="cpu", weights_only=True)
        weights = [w for w in saved["state_dict"].values() if w.dim() == 5 and w.shape[2] > 1]
        states = saved["optimizer_states"][0]["state"].values()
        moments = [t for s in states for k, t in s.items() if k.startswith("exp_avg")]
        return [(m, w) for w in weights for m in moments if m.shape == w.shape]

    killed = run(
        "arch.channels_last=false",
        "+hydra.callbacks.killer.step=4",
        "+hydra.callbacks.killer._target_=tests.killer.KillStackAfterCheckpoint",
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    (ckpt,) = folder.glob(".stacks/*/checkpoints/last.ckpt")
    before = conv_moments(ckpt)
    assert before and all(m.is_contiguous() and w.is_contiguous() for m, w in before)  # NCHW
    resumed = run()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [read_metrics(j)["resumed_from"] for j in jobs(folder)] == [str(ckpt)] * 2
    after = conv_moments(ckpt)
    assert len(after) == len(before)
    assert all(not w.is_contiguous() and m.stride() == w.stride() for m, w in after)


@pytest.mark.parametrize(
    ("setting", "said"),
    [("max_stack=0", "hydra.launcher.max_stack=0: the most models one stack trains, a whole "
                     "number >= 1"),
     ("vectorize=maybe", "hydra.launcher.vectorize='maybe': auto, true or false")],
)  # fmt: skip
def test_a_bad_launcher_setting_is_one_paragraph_before_any_folder(tmp_path: Path, setting, said):
    """max_stack=0 was a traceback from the stacks' grouping; vectorize=maybe came inside
    Hydra's "Error in call to target ..." wrapper."""
    result = sweep(tmp_path / "stack", "seed=0,1", f"hydra.launcher.{setting}", stacked=True)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {said}"), result.stderr[-3000:]
    assert not (tmp_path / "stack").exists()
