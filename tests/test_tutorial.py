"""``make tutorial`` (docs/tutorial.py --quick): every section's runs, figures and page."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_tutorial_page_shows_each_sections_command_figure_and_numbers(tmp_path):
    out, work = tmp_path / "docs", tmp_path / "runs"
    out.mkdir()
    command = [sys.executable, str(ROOT / "docs" / "tutorial.py"), "--quick", "--steps", "12",
               "--dsprites-steps", "4", "--out", str(out), "--work", str(work)]  # fmt: skip
    env = {**os.environ, "VAELAB_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (out / "tutorial.md").read_text()
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(images) == 10 and len(set(images)) == 10
    assert all((out / image).stat().st_size > 1000 for image in images)
    sections = re.findall(r"^## (\d)\.", text, flags=re.M)
    assert sections == list("1234567")
    # each figure's command is shown, and it wrote the folder the figure was copied from
    for name in ("ae", "vae", "ae_vs_vae", "dsprites_beta1", "dsprites_beta8"):
        assert f"hydra.run.dir={work / name}" in text
        assert (work / name / "figures").is_dir()
    assert "python src/compare.py experiment=ae_vs_vae" in text
    assert re.search(r"test reconstruction \d+\.\d nats", text)
    assert re.search(r"\| β = 8 \| \d+\.\d \| \d+\.\d \|", text)
