"""`inspect`'s renderer (lorawiz/views/stats.py): the figures of a real file, in Rich and in plain form."""

from __future__ import annotations

from rich.console import Console

from lorawiz.data.stats import inspect_file
from lorawiz.views.stats import render_stats, summary_rows
from tests.conftest import REPO


def test_stats_render_the_figures_and_the_histogram():
    stats = inspect_file(REPO / "tests/fixtures/data/messages.jsonl", max_seq_length=8)
    labels = [label for label, _ in summary_rows(stats)]
    assert labels[:3] == ["file", "shape", "rows"] and "suggested max_seq_length" in labels
    for plain in (True, False):
        console = Console(record=True, width=120)
        console.print(render_stats(stats, plain=plain))
        text = console.export_text()
        assert f"rows: {stats.rows:,}" in text if plain else "rows" in text
        assert "rows by length" in text and "(truncated)" in text
