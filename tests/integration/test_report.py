"""Real tiny training runs: each leaves loss.png beside its outputs (the run's own file), and `lorawiz report`
turns two of them into one page with their curves overlaid."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lorawiz.ownership import REPORT_HEADER, check_run_replaceable, foreign_entries
from lorawiz.views.report_figures import LOSS_PNG_SOFTWARE
from tests.conftest import subprocess_env
from tests.unit.views.test_report_html import Checker, figures


def lorawiz(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorawiz", *args], capture_output=True, text=True,
                          env=subprocess_env(CI="true"), cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data):
    """Two 4-step runs of builtin:tiny: one evaluated every 2 steps, one with a higher rate and no evaluation."""
    home = tmp_path_factory.mktemp("home")
    train, val = data
    common = ["train", "--model", "builtin:tiny", "--data", str(train), "--max-steps", "4", "--set", "logging_steps=1"]
    for name, extra in (("lr-2e-4", ["--val-data", str(val), "--set", "eval_steps=2"]),
                        ("lr-1e-3", ["--learning-rate", "1e-3", "--set", "eval_strategy=no"])):
        done = lorawiz(*common, *extra, "--output-dir", name, cwd=home)
        assert done.returncode == 0, done.stdout + done.stderr
    return home, [home / "lr-2e-4", home / "lr-1e-3"]


def test_each_run_leaves_its_loss_plot_as_its_own_file(runs):
    for run in runs[1]:
        with Image.open(run / "loss.png") as image:
            assert image.format == "PNG" and image.text.get("Software") == LOSS_PNG_SOFTWARE
            assert len(image.convert("L").getcolors(maxcolors=256)) > 10  # drawn, not blank
        assert foreign_entries(run) == []
        check_run_replaceable(run)  # `lorawiz train --overwrite` still replaces the run


def test_report_overlays_the_two_runs_on_one_page(runs):
    home, (evaluated, fast) = runs
    done = lorawiz("report", evaluated.name, fast.name, "-o", "compare.html", cwd=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wrote compare.html" in done.stdout and "2 run(s)" in done.stdout
    html = (home / "compare.html").read_text(encoding="utf-8")
    assert html.startswith(REPORT_HEADER)
    shown = figures(html)
    assert {"loss", "learning_rate", "grad_norm", "tokens_per_s", "memory_gib"} <= set(shown)
    assert "lr-2e-4: train loss" in shown["loss"] and "lr-2e-4: eval loss" in shown["loss"]
    assert "lr-1e-3: train loss" in shown["loss"] and "lr-1e-3: eval loss" not in shown["loss"]
    assert "lr-1e-3 logged no evaluation loss" in html
    diff = re.search(r'<section id="differences">.*?</section>', html, re.DOTALL).group()
    assert "<td>learning_rate</td><td>2e-4</td><td>0.001</td>" in diff
    assert "recommender:" in html and "lorawiz.yaml (the resolved configuration" in html  # the plan, the config
    checker = Checker()
    checker.feed(html)
    assert checker.fetching == []
