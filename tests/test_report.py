"""src/report.py's numbers: mean ± std over seeds per β, on job folders in the real format."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from vaelab.report import write_report


def job(sweep: Path, name: str, overrides: list[str], record: dict) -> None:
    (sweep / name / ".hydra").mkdir(parents=True)
    (sweep / name / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (sweep / name / "metrics.json").write_text(json.dumps(record))


def test_report_gives_mean_and_std_over_seeds_and_lists_failures(tmp_path: Path):
    done = {"status": "completed", "model": "beta_vae"}
    job(tmp_path, "0_b1_s0", ["beta=1", "seed=0"], {**done, "metrics": {"disent/mig": 0.1}})
    job(tmp_path, "1_b1_s1", ["beta=1", "seed=1"], {**done, "metrics": {"disent/mig": 0.3}})
    job(tmp_path, "2_b4_s0", ["beta=4", "seed=0"], {**done, "metrics": {"disent/mig": 0.5}})
    job(tmp_path, "3_b4_s1", ["beta=4", "seed=1"], {"status": "failed", "error": "NaN at 7"})
    markdown, files = write_report(tmp_path)
    assert {f.name for f in files} >= {"results.csv", "report.md", "metrics_vs_beta.png"}
    rows = {line.split(" | ")[1]: line for line in markdown.splitlines() if "beta_vae" in line}
    assert "| 2 | – | 0.200 ± 0.100 |" in rows["1"]  # two seeds: mean 0.2, population std 0.1
    assert "| 1 | – | 0.500 ± 0.000 |" in rows["4"]  # the failed seed is not averaged in
    assert "- `3_b4_s1`: failed NaN at 7" in markdown
    assert (tmp_path / "report.md").read_text().endswith(markdown)
