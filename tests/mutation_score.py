"""The mutation score per package from mutmut's results (``make mutants``).

    .venv/bin/python tests/mutation_score.py

killed = killed or timed out (the tests noticed); the score is killed / (killed + survived)
over the mutants that some selected test runs ("no tests" and "not run" are listed apart).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

DETECTED = {"killed", "timeout"}


def package(name: str) -> str:
    """vaelab.objectives.beta_tcvae.x_f__mutmut_3 -> vaelab.objectives (vaelab.schedules, ...)"""
    return ".".join(name.split(".")[:2])


def main() -> None:
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        status = "killed" if status in DETECTED else status
        counts[package(name)][status] += 1
        if status == "survived":
            survivors.append(name)
    print(f"{'package':<20}{'killed':>8}{'survived':>10}{'no tests':>10}{'not run':>9}{'score':>7}")
    for pkg, c in sorted(counts.items()):
        judged = c["killed"] + c["survived"]
        score = f"{c['killed'] / judged:.0%}" if judged else "-"
        print(f"{pkg:<20}{c['killed']:>8}{c['survived']:>10}{c['no tests']:>10}"
              f"{c['not checked']:>9}{score:>7}")  # fmt: skip
    print(f"\n{len(survivors)} survivors (mutmut show <name>):")
    for name in survivors:
        print(f"  {name}")


if __name__ == "__main__":
    main()
