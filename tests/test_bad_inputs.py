"""The catalogue of bad inputs, through the CLI: exit status 2, one clear message, and no run
folder that claims success."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import ROOT, run_cli
from .metrics.test_sample_quality import without_internet
from .test_untrusted_files import Marker

# overrides (with {tmp} for the test's folder), words the message must contain
BAD_INPUTS = [
    ("beta=-1", "`beta` must be >= 0"),
    ("beta=abc", "`beta` must be a number, got 'abc'"),
    ("arch.latent_dim=0", "`arch.latent_dim` must be >= 1"),
    ("arch.latent_dim=2.5", "`arch.latent_dim` must be a whole number"),
    ("optimizer.lr=0", "`optimizer.lr` must be > 0"),
    ("optimizer.lr=-0.1", "`optimizer.lr` must be > 0"),
    ("data.batch_size=0", "`data.batch_size` must be >= 1"),
    ("data.batch_size=-64", "`data.batch_size` must be >= 1"),
    ("data.subset=50", "is larger than the ~49 training images"),
    ("data.subset=0", "`data.subset` must be null"),
    ("data.val_fraction=0.9", "`data.val_fraction` must be a fraction"),
    ("data.image_size=50", "must be a multiple of 16"),
    ("data.image_size=8", "must be a multiple of 16"),
    ("data.likelihood=poisson", "`data.likelihood` must be one of bernoulli, gaussian"),
    ("data.likelihood=Gaussian", "got 'Gaussian' (names are lower case)"),
    ("model=beta_tcvae model.estimator=MSS", "`model.estimator` must be one of mws, mss"),
    ("trainer.nan_policy=Skip", "`trainer.nan_policy` must be one of stop, skip, got 'Skip'"),
    ("data.fit=PAD", "`data.fit` must be one of resize, pad, got 'PAD' (names are lower case)"),
    ("arch=conv arch.channels_last=no", "`arch.channels_last` must be true or false, got 'no'"),
    ("model=vae beta=4", "model=vae is the β = 1 VAE"),
    ("model=ae beta=2", "model=ae has no KL term"),
    ("model=factor_vae model.gamma=-10", "`model.gamma` must be >= 0"),
    ("model=beta_tcvae model.estimator=exact", "`model.estimator` must be one of mws, mss"),
    ("model=annealed_vae model.c_steps=0", "`model.c_steps` must be >= 1"),
    ("model=annealed_vae model.c_max=-5", "`model.c_max` must be >= 0"),
    ("model=annealed_vae beta=4", "set model.gamma=4 instead"),
    ("model=annealed_vae beta_schedule=linear", "a linear β schedule would do nothing"),
    ("model=dip_vae model.variant=iii", "`model.variant` must be one of i, ii"),
    ("model=dip_vae model.lambda_od=-1", "`model.lambda_od` must be >= 0"),
    ("beta_schedule=linear beta_schedule.steps=0", "`beta_schedule.steps` must be >= 1"),
    ("beta_schedule=cyclical beta_schedule.ratio=1.5", "`beta_schedule.ratio` must be <= 1"),
    ("beta_schedule=cyclical trainer.max_steps=-1", "needs trainer.max_steps > 0"),
    ("trainer.nan_policy=sometimes", "`trainer.nan_policy` must be one of stop, skip"),
    ("compile=fast", "`compile` must be true, false or a torch.compile mode (default, "
                     "reduce-overhead, max-autotune, max-autotune-no-cudagraphs"),
    # Hydra's composition errors, each as one paragraph
    ("model=nope", "model=nope names no config: the options of `model` are ada_gvae, ae,"),
    ("arch=transformer", "the options of `arch` are conv, mlp"),
    ("model=betavae", "Did you mean beta_vae?"),
    ("experiment=nosuch", "experiment=nosuch names no config"),  # optional once: ignored
    ("debug=fsat", "the options of `debug` are fast. Did you mean fast?"),
    ("trainer.max_step=20", "trainer.max_step is not a key of the config. Did you mean "
                            "trainer.max_steps? A key of your own is added with a leading +"),
    ("+model=vae", "choose another without the +: model=vae."),
    ("hydra.searchpath=[file://{tmp}/my_conf] experiment=mine",
     "model=betavae, chosen in the defaults of the config experiment/mine (override /model: "
     "betavae), names no config"),
    ("experiment=null", "experiment=null: a config group takes the name of one of its options, "
                        "not null. To run without one, leave `experiment` out"),
    # a group given a value that is no option's name (not null, and 64 is not a precision alias)
    ("precision=64", "precision=64 names no option: the options of `precision` are 16-mixed, "
                     "32-true, bf16-mixed (or for short 32, 16, bf16)."),
    ("model=1", "model=1 names no option: the options of `model` are ada_gvae, ae,"),
    ("model=null", "model=null: `model` takes the name of one of its options, not null, and a "
                   "run cannot do without one: the options of `model` are ada_gvae"),
    # a group a run needs, removed (was a traceback from training)
    ("~model", "~model removes the config group `model`, and a training run cannot do without "
               "one: leave ~model out to keep its default (model=beta_vae)"),
    ("~data", "~data removes the config group `data`, and a training run cannot do without one"),
    ("~trainer", "~trainer removes the config group `trainer`"),
    ("precision=null", "precision=null: a config group takes the name of one of its options, "
                       "not null. To run without one, leave `precision` out, or write ~precision"),
    # an experiment of the user's without `# @package _global_` (was ignored: 20000 steps;
    # debug=fast keeps a run that is not refused short)
    ("hydra.searchpath=[file://{tmp}/my_conf] experiment=nopkg debug=fast",
     "experiment=nopkg ({tmp}/my_conf/experiment/nopkg.yaml) cannot be used: its first line "
     "must be `# @package _global_`, as in conf/experiment/*.yaml. Without it, its settings "
     "(trainer) land under a key `experiment:`"),
    ("hydra.sweeper.params.bta=1", "`hydra.sweeper.params` is null in the config, and Hydra "
                                   "cannot set a key inside it. A sweep's values are given"),
    ("data=factors data.path=~/shapes/images", "The shell does not expand ~ after `=`: write "
                                               "data.path=$HOME/shapes/images"),
    ("hydra/launcher=ray", "pip install hydra-ray-launcher"),
    ("ckpt_path=/no/such/file.ckpt", "is not a file"),
    ("ckpt_path={tmp}/0_beta_vae_beta=4_seed=0/checkpoints/last.ckpt",  # quoted for Hydra
     "{tmp}/0_beta_vae_beta=4_seed=0/checkpoints/last.ckpt is not a file"),
    ("+note=a=b", "cannot be parsed (Hydra's grammar: https://hydra.cc/docs/advanced/override_"
                  "grammar/basic/). A value that holds `=` is quoted: \"+note='a=b'\"."),
    ("ckpt_path={tmp}/corrupt.ckpt", "cannot be read as a checkpoint"),
    ("ckpt_path={tmp}/notes.ckpt", "{tmp}/notes.ckpt cannot be read as a checkpoint"),
    ("ckpt_path={tmp}/other_arch.ckpt", "was trained with a different architecture"),
    ("data=mnist data.source.download=false paths.data_dir={tmp}/empty",
     "Looked in {tmp}/empty/MNIST/raw for train-images-idx3-ubyte"),
    ("hydra.run.dir=/proc/vaelab/run", "the output folder /proc/vaelab/run cannot be written"),
    # settings that used to fail only after training, in the figures or the last batch
    ("figures.interpolation.method=cubic",
     "figures.interpolation.method must be one of linear, slerp, got 'cubic'"),
    ("figures.traversal.range=wide", "figures.traversal.range must be one of auto, fixed"),
    ("figures.include=[samples,heatmap]", "figures.include: unknown ['heatmap']"),
    ("callbacks.figures.every_n_steps=-5",
     "callbacks.figures.every_n_steps=-5: null or 0 (off), or a whole number >= 1"),
    ("data.subset=0.00002", "the training split has 13 images of dsprites"),
    ("evaluation.disentanglement=[mig,udr]",
     "`evaluation.disentanglement` names unknown metrics ['udr']; choose from mig, dci"),
    ("evaluation=full +evaluation.suite.num_codes=5",
     "`evaluation.suite` has unknown settings ['num_codes']"),
    ("evaluation=fast evaluation.suite.num_train=0",  # failed after training, in numpy
     "evaluation.suite.num_train=0: it must be a whole number >= 10 (codes to fit on)"),
    ("evaluation=full evaluation.suite.batch_size=1",
     "evaluation.suite.batch_size=1: it must be a whole number >= 2 (a variance within each batch"),
    ("evaluation=fast evaluation.suite.jobs=0",
     "evaluation.suite.jobs=0 is not a number of worker processes"),
    ("evaluation=full evaluation.suite.jobs=many", "-1 for one per CPU core"),
    ("evaluation=full evaluation.suite.dci_es_trees=0",
     "evaluation.suite.dci_es_trees=0: a DCI-ES probe is a random forest of at least one tree"),
    ("data.subset=0.001 data.batch_size=1024", "fewer than one batch of data.batch_size=1024"),
    ("evaluation=full evaluation.fid.features=100", "`evaluation.fid.features` must be inception"),
    ("evaluation=full evaluation.fid.num_samples=1",
     "`evaluation.fid.num_samples` must be a whole number >= 2"),
    ("evaluation=udr", "`evaluation` builds a UDREvaluation, which cannot run at the end of "
                       "training"),
    # keys a class does not take: Hydra's block, as one paragraph and exit 2
    ("+data.colour=red", "the data (`data`) cannot be built from the config"),
    ("+model.objective.temperature=2", "the model (`model`, `arch`, `beta_schedule`, `optimizer`) "
                                       "cannot be built"),
    ("+trainer.gpus_per_node=2", "the trainer (`trainer`, `callbacks`, `logger`) cannot be built"),
    # values no check used to look at
    ("beta_schedule=linear beta_schedule.start=-1", "`beta_schedule.start` must be >= 0"),
    ("trainer.val_check_interval=0", "`trainer.val_check_interval` must be > 0"),
    # Lightning's counts, which failed as "'<' not supported between instances of 'str' and 'int'"
    ("trainer.max_steps=abc", "`trainer.max_steps` must be a whole number >= 0, or -1 for no "
                              "limit, got 'abc': the training steps."),
    ("trainer.max_steps=-5", "`trainer.max_steps` must be a whole number >= 0, or -1 for no limit"),
    ("trainer.log_every_n_steps=abc", "`trainer.log_every_n_steps` must be a whole number >= 1, "
                                      "got 'abc'"),  # was a traceback from inside fit
    ("+trainer.max_epochs=abc", "`trainer.max_epochs` must be a whole number >= 0, or -1"),
    ("trainer.limit_val_batches=abc", "`trainer.limit_val_batches` must be null (all), a whole "
                                      "number of batches >= 0 or a fraction in [0, 1], got 'abc'"),
    ("callbacks.model_checkpoint.every_n_train_steps=abc",
     "`callbacks.model_checkpoint.every_n_train_steps` must be a whole number >= 0, got 'abc'"),
    ("seed=4294967296", "`seed` must be <= 4294967295"),
    ("arch.latent_dim=1000000000", "`arch.latent_dim` must be <= 65536"),
    # corrupt and foreign data files
    ("paths.data_dir={tmp}/garbage_cache", "dsprites_procedural_v1.npy cannot be used: it is not "
                                           "a .npy/.npz array file"),
    ("paths.data_dir={tmp}/truncated_cache", "dsprites_procedural_v1.npy cannot be used: it cannot "
                                             "be read"),
    ("paths.data_dir={tmp}/object_cache", "dsprites_procedural_v1.npy cannot be used: it holds "
                                          "Python objects"),
    ("ckpt_path={tmp}/crafted.ckpt", "holds a `io.open` object"),
]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "corrupt.ckpt").write_bytes(b"PK\x03\x04 this is not a whole checkpoint")
    (tmp / "notes.ckpt").write_text("a text file given as the checkpoint\n")
    torch.save({"state_dict": {"encoder.fc1.weight": torch.zeros(3, 3)}}, tmp / "other_arch.ckpt")
    (tmp / "empty").mkdir()
    (tmp / "my_conf" / "experiment").mkdir(parents=True)  # a user's experiment, misspelt
    (tmp / "my_conf" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: betavae\n"
    )
    (tmp / "my_conf" / "experiment" / "nopkg.yaml").write_text("trainer:\n  max_steps: 20\n")
    cache = "dsprites_procedural_v1.npy"
    for folder in ("garbage_cache", "truncated_cache", "object_cache"):
        (tmp / folder).mkdir()
    (tmp / "garbage_cache" / cache).write_text("not an array\n")
    with open(tmp / "truncated_cache" / cache, "wb") as f:  # the header of all 737,280 images
        header = {"descr": "|u1", "fortran_order": False, "shape": (737_280, 64, 64)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(bytes(4096))  # and one image's worth of them
    np.save(tmp / "object_cache" / cache, np.array([{"image": 0}]), allow_pickle=True)
    torch.save({"state_dict": {}, "payload": Marker(tmp / "marker")}, tmp / "crafted.ckpt")
    return tmp


def test_the_catalogue_has_at_least_25_cases():
    assert len(BAD_INPUTS) >= 25


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_exits_2_with_its_message(files: Path, overrides: str, message: str):
    run_dir = files / "runs" / re.sub(r"[^A-Za-z0-9_.-]", "_", overrides)[:60]
    args = [o.replace("{tmp}", str(files)) for o in overrides.split()]
    result = run_cli(run_dir, "trainer=cpu", "evaluation=none", *args, process=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message.replace("{tmp}", str(files)) in result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()  # refused: no folder (nor an empty one) is left behind


def test_a_refused_config_is_said_before_torch_or_lightning_load(tmp_path: Path):
    """The schema check reads no module that loads torch, Lightning or scikit-learn (5-6 s
    of a refusal on 2 cores); they load for a valid config only."""
    heavy = ("torch", "lightning", "sklearn")
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('loaded:', [m for m in {heavy!r} if m in sys.modules]))\n"
        "from vaelab.cli.train import main\n"
        "main()\n"
    )
    args = [f"hydra.run.dir={tmp_path / 'run'}", "beta=-3", "evaluation.disentanglement=[mig]"]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "`beta` must be >= 0" in result.stderr
    assert "loaded: []" in result.stdout


def test_fid_without_the_inception_weights_stops_before_training(tmp_path: Path, monkeypatch):
    offline, run_dir = without_internet(monkeypatch, tmp_path), tmp_path / "run"
    result = run_cli(run_dir, "trainer=cpu", "evaluation=full", process=False)
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr.strip()
    assert message.startswith("error: FID and KID (evaluation.fid) need the Inception v3 weights")
    assert f"put it at {offline} " in message and len(message.splitlines()) == 1
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "checkpoints").exists()


def test_a_bad_split_fraction_is_said_without_a_batch_size_against_a_negative_split(tmp_path):
    """data.test_fraction=1.5 first read "`data.batch_size`=64 is larger than the ~-1044
    training images": the fractions are checked before the batch is compared with the split."""
    run_dir = tmp_path / "run"
    result = run_cli(run_dir, "trainer=cpu", "evaluation=none", "data.subset=2048",
                     "data.test_fraction=1.5", process=False)  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "`data.test_fraction` must be a fraction in (0, 0.5), got 1.5." in result.stderr
    assert "batch_size" not in result.stderr and "Traceback" not in result.stderr
    assert not run_dir.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a CUDA GPU")
@pytest.mark.parametrize(
    ("trainer", "instead"),
    [("gpu", "trainer=cpu, or trainer=auto to take a GPU where there is one."),
     ("ddp", "trainer=ddp_cpu for DDP across CPU processes.")],
)  # fmt: skip
def test_a_gpu_trainer_without_a_gpu_says_there_is_none(tmp_path, trainer: str, instead: str):
    """Was "No supported gpu backend found!. Check the keys given for it"."""
    run_dir = tmp_path / "run"
    result = run_cli(run_dir, f"trainer={trainer}", "evaluation=none", "debug=fast",
                     "arch=mlp", process=False)  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == (
        f"error: trainer={trainer} needs a CUDA GPU, and none is visible here "
        f"(torch.cuda.is_available() is False): train on the CPU with {instead}"
    )
    assert not run_dir.exists()
