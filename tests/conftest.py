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
# Under pytest-xdist (make test) a worker runs on every core: one torch thread per worker and
# per program it starts, rather than as many threads as cores in each (measured on 2 cores:
# 434 s for the suite instead of 467 s).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
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
    run_dir: Path, *overrides: str, script: str = "train.py", process: bool = True
) -> subprocess.CompletedProcess:
    """``python src/<script> hydra.run.dir=<run_dir> <overrides>``, captured; with
    ``process=False`` the same program's ``main()`` runs in this process (``run_program``)."""
    args = [f"hydra.run.dir={run_dir}", *overrides]
    env = {"VAELAB_DATA_DIR": str(run_dir.parent / "data")}
    if not process:
        return run_program(script, args, env)
    cmd = [sys.executable, str(ROOT / "src" / script), *args]
    return subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


PROGRAMS = {"train.py": "vaelab.cli.train", "eval.py": "vaelab.cli.eval",
            "compare.py": "vaelab.cli.compare"}  # fmt: skip


def run_program(script: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python src/<script> <args>`` without a new interpreter: the program's own ``main()``
    with that command line, from the clone's root, with ``env`` added to the environment;
    its output, log lines and exit status are captured as a subprocess's would be. What the
    run changes in this process (the environment, the folder, the logging) is restored.
    Saves the ~5 s of imports a new process costs; programs that must be a process of their
    own (killed, DDP, W&B, a terminal, code on PYTHONPATH) use ``run_cli(process=True)``."""
    import importlib
    import io
    import traceback
    from contextlib import redirect_stderr, redirect_stdout

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from vaelab.console import logging_restored

    main = importlib.import_module(PROGRAMS[script]).main
    import torch

    out, err, status = io.StringIO(), io.StringIO(), 0
    environ, argv, cwd = os.environ.copy(), sys.argv[:], os.getcwd()
    # trainer.deterministic=true switches torch's deterministic algorithms on for the process
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        os.environ.update(env)
        sys.argv = [str(ROOT / "src" / script), *args]
        os.chdir(ROOT)
        with logging_restored(), redirect_stdout(out), redirect_stderr(err):
            try:
                main()
            except SystemExit as exit_:
                code = exit_.code
                status = code if isinstance(code, int) else int(code is not None)
                if isinstance(code, str):
                    print(code, file=sys.stderr)
            except Exception:
                traceback.print_exc()
                status = 1
    finally:
        os.chdir(cwd)
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environ)
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
        torch.use_deterministic_algorithms(deterministic)
    return subprocess.CompletedProcess([script, *args], status, out.getvalue(), err.getvalue())


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture
def cli(tmp_path: Path):
    """Run the training CLI with TINY settings plus the given overrides in a fresh folder."""

    def _run(*overrides: str, name: str = "run", tiny: bool = True, process: bool = False):
        run_dir = tmp_path / name
        result = run_cli(run_dir, *(TINY if tiny else []), *overrides, process=process)
        return run_dir, result

    return _run


@pytest.fixture
def run_copy(trained: Path, tmp_path: Path) -> Path:
    """A copy of the test module's ``trained`` run folder, to break or evaluate."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


# Tests that train, sweep, evaluate or install through vaelab's programs; marked `programs`,
# which `make test-fast` leaves out (pytest -m "not programs") for quick iterations.
PROGRAM_TESTS = (
    "tests/test_api.py",
    "tests/test_bad_inputs.py",
    "tests/test_cli.py",
    "tests/test_console.py",
    "tests/test_devices.py",
    "tests/test_eval.py",
    "tests/test_eval_udr.py",
    "tests/test_gpu.py",
    "tests/test_gpu_check.py",
    "tests/test_install.py",
    "tests/test_reliability.py",
    "tests/test_reproduce.py",
    "tests/test_reused_folders.py",
    "tests/test_slurm.py",
    "tests/test_sweep.py",
    "tests/test_tutorial.py",
    "tests/test_untrusted_files.py",
    "tests/objectives/test_ddp_batch_statistics.py",
    "tests/viz/test_cli_figures.py",
    "tests/viz/test_compare.py::test_the_experiment_runs_through_its_cli",
    "tests/viz/test_compare.py::test_ctrl_c_in_compare_is_one_line_and_status_130",
    "tests/viz/test_compare.py::test_bad_input_to_compare_leaves_no_run_folder",
    "tests/viz/test_compare.py::test_without_an_experiment_compare_takes_ae_vs_vae_and_refuses_a_sweep",
    "tests/data/test_downloads.py::test_cli_reports_missing_data_in_one_paragraph_with_status_2",
    "tests/data/test_mpi3d.py::test_cli_trains_on_a_subset_read_through_the_memory_map",
    "tests/data/test_smallnorb_cars3d.py::test_trains_through_the_cli",
    "tests/data/test_own_data.py::test_own_images_and_factors_train_and_are_evaluated",
    "tests/data/test_own_data.py::test_bad_own_data_exits_2_with_one_paragraph_before_training",
    "tests/objectives/test_qlae.py::test_a_tiny_run_trains_writes_metrics_and_figures_and_resumes",
    "tests/objectives/test_tripod.py::test_a_tiny_run_trains_writes_metrics_and_figures_and_resumes",
    "tests/objectives/test_ada_gvae.py::test_ada_gvae_trains_through_the_cli",
)


QUICK = "VAELAB_MUTANTS_QUICK"  # seconds: a first pass leaves out each mutant's slower tests
QUICK_SURVIVORS = Path("quick-survivors.txt")  # what that pass could not kill, for the full run
_LEFT_OUT = pytest.StashKey[bool]()  # this session's quick pass left tests out


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks ``PROGRAM_TESTS`` as ``programs``. Under
    ``make mutants`` (run inside ``mutants/``), runs a mutant's tests fastest first, by
    mutmut's recorded durations: a killed mutant then costs its fastest failing test, not
    every slower test that pytest's file order puts before it. With ``VAELAB_MUTANTS_QUICK=s``
    a mutant runs only its tests recorded at most ``s`` seconds (all of them if none is); a
    mutant that survives them is written to ``quick-survivors.txt`` to be run on every test."""
    for item in items:
        if item.nodeid.startswith(PROGRAM_TESTS):
            item.add_marker(pytest.mark.programs)
    stats = Path("mutmut-stats.json")
    if "MUTANT_UNDER_TEST" not in os.environ or not stats.is_file():
        return
    seconds = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: seconds.get(item.nodeid, float("inf")))
    if QUICK not in os.environ or "__mutmut_" not in os.environ["MUTANT_UNDER_TEST"]:
        return
    limit = float(os.environ[QUICK])
    fast = [item for item in items if seconds.get(item.nodeid, float("inf")) <= limit]
    if fast and len(fast) < len(items):  # sorted above: the slow ones are the rest
        config.hook.pytest_deselected(items=items[len(fast) :])
        items[:] = fast
        config.stash[_LEFT_OUT] = True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Records a mutant that survived a quick pass which left tests out (see above)."""
    if exitstatus == 0 and session.config.stash.get(_LEFT_OUT, False):
        with QUICK_SURVIVORS.open("a") as survivors:
            survivors.write(os.environ["MUTANT_UNDER_TEST"] + "\n")


@pytest.fixture
def other_process():
    """A live process of this host that is not this one."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()
