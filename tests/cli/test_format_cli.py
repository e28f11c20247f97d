"""`lorawiz format` from the command line: messages, exit codes, nothing lost."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def test_format_reports_shape_and_counts(cli, tmp_path):
    out = tmp_path / "train.jsonl"
    result = cli("format", str(FIXTURES / "sharegpt.jsonl"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "shape: sharegpt" in result.output and f"wrote 2 of 2 rows to {out}" in result.output


def test_format_bad_rows_exit_2_and_write_nothing(cli, tmp_path):
    out = tmp_path / "train.jsonl"
    result = cli("format", str(FIXTURES / "bad.jsonl"), "-o", str(out))
    assert result.exit_code == 2
    assert "invalid JSON: 1 row (line 2)" in result.output and "--skip-bad" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_format_refuses_to_overwrite_and_unknown_shape(cli, tmp_path):
    out = tmp_path / "train.jsonl"
    out.write_text("x\n")
    result = cli("format", str(FIXTURES / "text.jsonl"), "-o", str(out))
    assert result.exit_code == 2 and "already exists" in result.output and out.read_text() == "x\n"
    result = cli("format", str(FIXTURES / "text.jsonl"), "-o", str(tmp_path / "o.jsonl"), "--from", "alpacca")
    assert result.exit_code == 2 and "unknown shape" in result.output


def test_format_missing_input(cli, tmp_path):
    result = cli("format", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2 and "nope.jsonl not found" in result.output
