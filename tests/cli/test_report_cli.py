"""`lorawiz report` on the command line: the page written, and one line and exit 2 for a folder that is no run,
an -o that cannot be written or that lorawiz did not write; it never loads torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lorawiz.ownership import REPORT_HEADER
from tests.cli.test_imports import loaded_heavy_modules
from tests.conftest import subprocess_env
from tests.unit.test_run_history import write_run


def test_two_runs_make_one_page(cli, tmp_path):
    runs = [write_run(tmp_path / "r8"), write_run(tmp_path / "r16")]
    out = tmp_path / "compare.html"
    done = cli("report", *map(str, runs), "-o", str(out))
    assert done.exit_code == 0, done.output
    assert done.output.startswith(f"wrote {out} (") and "2 run(s)" in done.output and "2 eval file(s)" in done.output
    html = out.read_text(encoding="utf-8")
    assert html.startswith(REPORT_HEADER) and "r8" in html and "r16" in html


def test_the_default_output_is_report_html_here(cli, tmp_path, monkeypatch):
    run = write_run(tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    assert cli("report", "run").exit_code == 0
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith(REPORT_HEADER)
    assert not (run / "report.html").exists()


@pytest.mark.parametrize("case, expect", [
    ("not-a-run", "error: {tmp}/plain is not a training run: it holds no metrics.jsonl, trainer_state.json, "
                  "lorawiz.yaml or run.json."),
    ("missing-run", "error: {tmp}/nowhere does not exist."),
    ("foreign-output", "error: {tmp}/mine.html already exists and lorawiz report did not write it; it is kept."),
    ("missing-folder", "error: -o {tmp}/no/such/r.html: the folder {tmp}/no/such does not exist."),
    ("output-in-run", "error: -o {tmp}/run/r.html is inside the training run {tmp}/run; a report never goes into a "
                      "run."),
])
def test_user_errors_are_one_line_and_exit_2(cli, tmp_path, case, expect):
    write_run(tmp_path / "run")
    (tmp_path / "plain").mkdir()
    (tmp_path / "mine.html").write_text("mine")
    args = {"not-a-run": ["plain", "-o", "r.html"], "missing-run": ["nowhere", "-o", "r.html"],
            "foreign-output": ["run", "-o", "mine.html"], "missing-folder": ["run", "-o", "no/such/r.html"],
            "output-in-run": ["run", "-o", "run/r.html"]}[case]
    done = cli("report", *(str(tmp_path / a) if a != "-o" else a for a in args))
    assert done.exit_code == 2, done.output
    lines = done.output.splitlines()
    assert lines[0] == expect.format(tmp=tmp_path) and len(lines) == 2  # the message and its hint
    assert (tmp_path / "mine.html").read_text() == "mine" and not (tmp_path / "r.html").exists()


def test_an_unwritable_output_folder_is_a_user_error(tmp_path):
    from tests.integration.test_faults import as_user

    run = write_run(tmp_path / "run")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        done = subprocess.run(as_user([sys.executable, "-m", "lorawiz", "report", str(run), "-o",
                                       str(locked / "r.html")]), capture_output=True, text=True,
                              env=subprocess_env(CI="true"), timeout=120)
    finally:
        locked.chmod(0o755)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: cannot write -o {locked / 'r.html'}: no permission to write in {locked}." in done.stderr
    assert list(locked.iterdir()) == []


def test_report_loads_no_heavy_library(tmp_path):
    run = write_run(tmp_path / "run")
    assert loaded_heavy_modules("report", str(run), "-o", str(tmp_path / "r.html")) == []
    assert (tmp_path / "r.html").is_file()
