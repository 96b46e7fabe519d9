"""Run mutmut's surviving DDP-only mutants of the module against the two-process test.

    .venv/bin/python tests/mutation_ddp.py [NAME ...]   # default: every survivor of
                                                          # training_step, _mean_over_ranks, forward

mutmut maps tests to mutants inside its own process, so the mutants on the ``world_size > 1``
path (run only by ``trainer=ddp_cpu`` in a subprocess) show as survivors. This runs, for each,
tests/test_devices.py's DDP-equals-one-process test in mutmut's copy (``mutants/``, with the
entry points copied in) with that mutant switched on, and prints killed / survived (about 40 s
a killed mutant, 80 s a survivor, on 2 cores).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/test_devices.py::test_ddp_cpu_logs_and_learns_the_same_as_one_process"
DDP_ONLY = ("ǁtraining_step__", "ǁ_mean_over_ranks__", "ǁforward__")


def survivors() -> list[str]:
    out = subprocess.run([str(Path(sys.executable).with_name("mutmut")), "results"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout  # fmt: skip
    names = [line.strip().rpartition(": ")[0] for line in out.splitlines() if "survived" in line]
    return [n for n in names if n.startswith("vaelab.module.") and any(d in n for d in DDP_ONLY)]


def main() -> None:
    mutants = ROOT / "mutants"
    for script in (ROOT / "src").glob("*.py"):  # mutmut copies the package, not the scripts
        shutil.copy(script, mutants / "src" / script.name)
    names = sys.argv[1:] or survivors()
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           f"{TEST}[model=beta_tcvae]", f"{TEST}[model=beta_vae]"]  # fmt: skip
    control = subprocess.run(cmd, cwd=mutants, env={**os.environ, "MUTANT_UNDER_TEST": ""},
                             capture_output=True, text=True)  # fmt: skip
    if control.returncode:  # without a mutant the test must pass, or nothing below means much
        sys.exit(f"the test fails without any mutant:\n{control.stdout[-2000:]}")
    killed = 0
    for name in names:
        env = {**os.environ, "MUTANT_UNDER_TEST": name}
        result = subprocess.run(cmd, cwd=mutants, env=env, capture_output=True, text=True)
        status = "killed" if result.returncode else "survived"
        killed += result.returncode != 0
        print(f"{status:9} {name}", flush=True)
    print(f"{killed} of {len(names)} killed by the two-process test")


if __name__ == "__main__":
    main()
