"""`lorawiz report` as a library call (the page written atomically, replacing only its own) and the loss plot a run
writes at its end (a PNG that is the run's own file; a failure is a warning, never an error)."""

from __future__ import annotations

import logging

import pytest
from PIL import Image

from lorawiz.errors import LorawizError
from lorawiz.ownership import REPORT_HEADER, foreign_entries
from lorawiz.run_report import LOSS_PLOT, write_loss_plot, write_report
from lorawiz.views.report_figures import LOSS_PNG_SOFTWARE
from tests.unit.test_run_history import write_run

HISTORY = [{"step": s, "loss": 2.0 / s, "learning_rate": 1e-4} for s in range(1, 6)] + [
    {"step": 5, "eval_loss": 0.5}, {"step": 5, "train_loss": 1.0, "train_runtime": 2.0}]


def test_the_report_is_written_with_its_mark_and_replaces_only_its_own(tmp_path):
    runs = [write_run(tmp_path / "a"), write_run(tmp_path / "b")]
    out = tmp_path / "report.html"
    done = write_report(runs, out, generated="now")
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == REPORT_HEADER and done.bytes_written == len(text.encode())
    assert [run.name for run in done.runs] == ["a", "b"]
    write_report(runs[:1], out)  # its own page: replaced
    assert "<title>lorawiz report: a</title>" in out.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_a_file_lorawiz_report_did_not_write_is_kept(tmp_path):
    run = write_run(tmp_path / "a")
    mine = tmp_path / "notes.html"
    mine.write_text("<!DOCTYPE html><p>my notes</p>\n")
    with pytest.raises(LorawizError, match="already exists and lorawiz report did not write it") as error:
        write_report([run], mine)
    assert mine.read_text() == "<!DOCTYPE html><p>my notes</p>\n" and "-o" in error.value.hint


@pytest.mark.parametrize("where, expect", [
    ("folder", r"-o .* is a folder\."),
    ("missing", r"the folder .*missing does not exist\."),
    ("inside", r"is inside the training run .*; a report never goes into a run\."),
])
def test_an_output_that_cannot_be_the_page_is_refused_before_anything_is_read(tmp_path, where, expect):
    run = write_run(tmp_path / "a")
    out = {"folder": tmp_path, "missing": tmp_path / "missing" / "r.html", "inside": run / "report.html"}[where]
    with pytest.raises(LorawizError, match=expect):
        write_report([run], out)
    assert not (run / "report.html").exists()


def test_a_run_given_twice_is_refused(tmp_path):
    run = write_run(tmp_path / "a")
    with pytest.raises(LorawizError, match="is given twice"):
        write_report([run, tmp_path / "." / "a"], tmp_path / "r.html")


def test_the_loss_plot_is_a_png_the_run_owns(tmp_path):
    path = write_loss_plot(tmp_path, HISTORY)
    assert path == tmp_path / LOSS_PLOT
    with Image.open(path) as image:
        assert image.format == "PNG" and image.text.get("Software") == LOSS_PNG_SOFTWARE
        assert len(image.convert("L").getcolors(maxcolors=256)) > 10  # lines and text, not a blank picture
    assert foreign_entries(tmp_path) == []  # `lorawiz train --overwrite` may clear it with the run


def test_no_loss_logged_means_no_plot(tmp_path):
    assert write_loss_plot(tmp_path, [{"step": 1, "train_loss": 1.0}]) is None
    assert not (tmp_path / LOSS_PLOT).exists()


def test_a_plot_that_cannot_be_written_is_a_warning_line_not_an_error(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the run folder should be")
    with caplog.at_level(logging.WARNING, logger="lorawiz.run_report"):
        assert write_loss_plot(blocker, HISTORY) is None
    assert len(caplog.records) == 1
    assert f"could not write loss.png in {blocker}" in caplog.text and "the run itself is complete" in caplog.text
