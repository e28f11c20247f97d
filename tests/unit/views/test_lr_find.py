"""lr-find's report: the curve drawn in the terminal (braille, or plain characters), the rules, and the PNG."""

from __future__ import annotations

from rich.console import Console

from lorawiz.lr_range import suggestions
from lorawiz.train.lr_find import LrFindResult, save_plot, written_by_lr_find
from lorawiz.views.lr_find import plot_lines, render_lr_find
from tests.unit.test_lr_range import swept

SETTINGS = {"model_name_or_path": "builtin:tiny", "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,
            "max_seq_length": 512, "lora_r": 16, "lora_alpha": 32, "optim": "adamw_torch", "load_in_4bit": True}


def result() -> LrFindResult:
    sweep = swept()
    return LrFindResult(sweep, suggestions(sweep), 2e-4, "recommender: 2e-4", SETTINGS, seconds=12.0)


def text_of(renderable, width=400) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_plain_output_draws_the_curve_and_the_marks_in_ascii():
    found = result()
    out = text_of(render_lr_find(found, plain=True))
    assert out.isascii()
    assert f"suggested learning rate: {found.suggested_rate:.1e} (valley rule)" in out
    assert "configured with 2.0e-04 (recommender: 2e-4)" in out and "stopped early: the loss diverged" in out
    assert "micro-batch 4 x 2 accumulation, max_seq_length 512, rank 16 / alpha 32, adamw_torch, 4-bit base" in out
    for rule in ("valley", "steepest", "minimum"):
        assert f"  {rule}" in out
    rows = plot_lines(found.sweep.rates, found.sweep.losses, found.sweep.smoothed,
                      {"suggested": found.suggested_rate, "configured": 2e-4}, plain=True)
    columns = {row.index("|") for row, _ in rows if "|" in row}
    assert len(columns) == 1  # one vertical line at the suggested rate
    assert sum("*" in row for row, _ in rows) >= 5 and any("." in row for row, _ in rows)  # the line, the dots


def test_in_a_terminal_the_curve_is_braille_with_coloured_cells():
    found = result()
    rows = plot_lines(found.sweep.rates, found.sweep.losses, found.sweep.smoothed, {"suggested": 1e-3}, plain=False)
    drawn = "".join(row for row, _ in rows)
    assert any(0x2800 < ord(char) <= 0x28FF for char in drawn) and "│" in drawn
    assert {style for _, styles in rows for _, style in styles} >= {"cyan", "green"}


def test_without_a_suggestion_it_says_what_to_try():
    found = result()
    found.found = {}
    assert "no suggestion" in text_of(render_lr_find(found, plain=True))


def test_the_png_is_replaced_only_when_lr_find_wrote_it(tmp_path):
    import pytest

    from lorawiz.errors import LorawizError

    path = tmp_path / "lr_find.png"
    save_plot(path, result())
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and written_by_lr_find(path)
    save_plot(path, result())  # its own: replaced
    theirs = tmp_path / "photo.png"
    theirs.write_bytes(b"\x89PNG\r\n\x1a\nsomething else")
    with pytest.raises(LorawizError, match="lr-find did not write it"):
        save_plot(theirs, result())
    assert theirs.read_bytes() == b"\x89PNG\r\n\x1a\nsomething else"
