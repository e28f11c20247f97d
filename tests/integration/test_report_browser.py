"""`lorawiz report`'s page in a real headless Chromium (bench/report_browser.py's checks, on two run folders as
lorawiz writes them): drawn, both runs' lines visible, and not one request made by the page. Skipped where no
Chromium is installed (Debian: apt-get install -y chromium)."""

from __future__ import annotations

import pytest

from bench.report_browser import check_page, control_requests, find_chromium
from lorawiz.run_report import write_report
from tests.unit.test_run_history import RECORDS, write_run

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install -y chromium)")


def test_the_report_renders_offline_in_chromium_and_fetches_nothing(tmp_path):
    page = tmp_path / "report.html"
    lower = [{k: v * 0.5 if k in ("loss", "eval_loss", "tokens_per_s") and isinstance(v, float) else v
              for k, v in r.items()} for r in RECORDS]  # the second run's lines apart, so that both show
    write_report([write_run(tmp_path / "r8"), write_run(tmp_path / "r16", lower)], page)
    found = check_page(CHROMIUM, page, tmp_path)
    assert found.get("checks"), found.get("error")
    assert all(found["checks"].values()), found
    assert found["page_requests"] == [] and found["static_references"] == []


def test_the_network_check_catches_a_page_that_fetches():
    """The detector itself: a page with an <img> and a stylesheet from the web shows both requests."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as work:
        assert control_requests(CHROMIUM, Path(work)) == ["http://cdn.example.org/a.css", "https://example.com/x.png"]
