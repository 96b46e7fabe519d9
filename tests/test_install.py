"""vaelab installed from its wheel, used outside the clone: the wheel is built here (no
network), installed into a fresh virtual environment whose other packages are this
environment's, and its programs run from an empty folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT

SMALL = [
    "data=digits",
    "arch=mlp",
    "size=small",
    "data.image_size=8",
    "trainer=cpu",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "evaluation=none",
    "figures.include=[samples]",
]


CONFIG_GROUPS = sorted(
    p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and p.name != "hydra"
)


def run(cmd: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin/`` of a virtual environment holding vaelab's wheel (built from a copy of the
    sources, so the clone gets no build/ folder) and seeing this environment's packages."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"
    copy = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "conf", source / "conf", ignore=copy)
    shutil.copytree(ROOT / "src" / "vaelab", source / "src" / "vaelab", ignore=copy)
    shutil.copytree(ROOT / "src" / "hydra_plugins", source / "src" / "hydra_plugins", ignore=copy)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", source], tmp)
    (wheel,) = (tmp / "dist").glob("vaelab-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp)
    python = venv / "bin" / "python"
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp)
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site.stdout.strip()) / "vaelab_test_deps.pth").write_text("\n".join(sorted(here)) + "\n")
    run([*pip, "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], tmp)
    return venv / "bin"


@pytest.fixture
def elsewhere(tmp_path: Path) -> tuple[Path, dict]:
    """An empty folder outside the clone and an environment without the clone's paths."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VAELAB_DATA_DIR")}
    return tmp_path, env


def test_the_installed_package_reads_its_own_configs_not_the_clones(installed, elsewhere):
    cwd, env = elsewhere
    code = "import vaelab, vaelab.cli; print(vaelab.__file__); print(vaelab.cli.config_path())"
    out = run([installed / "python", "-c", code], cwd, env).stdout.split()
    assert not Path(out[0]).is_relative_to(ROOT) and out[1] == "pkg://vaelab.conf"


def test_vaelab_train_from_another_folder_with_the_users_own_experiment(installed, elsewhere):
    cwd, env = elsewhere
    mine = cwd / "my_conf" / "experiment" / "mine.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("# @package _global_\ndefaults:\n  - override /model: vae\nseed: 7\n")
    run([installed / "vaelab-train", *SMALL, "experiment=mine"], cwd,
        {**env, "VAELAB_CONFIG_PATH": "my_conf"})  # fmt: skip
    (folder,) = (cwd / "outputs" / "runs").glob("*/*_vae")
    record = json.loads((folder / "metrics.json").read_text())
    assert record["status"] == "completed" and record["step"] == 4
    assert "seed: 7" in (folder / ".hydra" / "config.yaml").read_text()
    # the same folder of configs given on the command line, a sweep of two, and its report
    sweep = cwd / "sweep"
    swept = run([installed / "vaelab-train", "-m", *SMALL, "hydra.searchpath=[file://my_conf]",
         "experiment=mine", "seed=1,2", f"hydra.sweep.dir={sweep}"], cwd, env)  # fmt: skip
    assert f"report: vaelab-report {sweep}" in swept.stdout  # the program's name, not src/
    report = run([installed / "vaelab-report", sweep], cwd, env)
    assert "beta" in report.stdout and (sweep / "report.md").is_file()
    evaluated = run([installed / "vaelab-eval", f"run={folder}", "evaluation=fast",
                     "evaluation.iwae_k=4", "evaluation.iwae_images=16"], cwd, env)  # fmt: skip
    assert (folder / "evaluation" / "fast.json").is_file(), evaluated.stdout[-2000:]


def test_vaelab_compare_from_another_folder(installed, elsewhere):
    cwd, env = elsewhere
    run([installed / "vaelab-compare", "experiment=ae_vs_vae", "trainer.max_steps=4",
         "callbacks.model_checkpoint.every_n_train_steps=4", "evaluation=none",
         "trainer.val_check_interval=2", "hydra.run.dir=cmp"], cwd, env)  # fmt: skip
    assert (cwd / "cmp" / "figures" / "ae_vs_vae.png").is_file()


@pytest.mark.parametrize("program", ["vaelab-train", "vaelab-eval"])
def test_help_is_vaelabs_own(installed, elsewhere, program):
    cwd, env = elsewhere
    text = run([installed / program, "--help"], cwd, env).stdout
    assert text.startswith(f"{program}: ") and "powered by Hydra" not in text
    groups = ["evaluation"] if program == "vaelab-eval" else CONFIG_GROUPS
    for group in groups:
        options = sorted(f.stem for f in (ROOT / "conf" / group).glob("*.yaml"))
        line = next(ln for ln in text.splitlines() if group in ln and options[0] in ln)
        assert all(option in line for option in options), (group, line)
