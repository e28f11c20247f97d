"""lorawiz.cli._funnel: OS errors a user causes exit 2 with one line, Ctrl-C exits 130 saying what was written."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lorawiz.cli._funnel import funnel, reporting_outputs


def _app(body) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @funnel
    def run() -> None:
        body()

    return app


def test_a_user_caused_os_error_exits_2_with_one_line(tmp_path):
    def body():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(tmp_path / "afile" / "x"))

    (tmp_path / "afile").write_text("x")
    result = CliRunner().invoke(_app(body), [])
    assert result.exit_code == 2
    assert result.output.count("error:") == 1 and "internal error" not in result.output
    assert f"{tmp_path / 'afile'} is a file, where a folder is needed" in result.output


def test_ctrl_c_exits_130(capsys):
    def body():
        raise KeyboardInterrupt

    result = CliRunner().invoke(_app(body), [])
    assert result.exit_code == 130
    assert "interrupted." in result.output and "Traceback" not in result.output


def _interrupted(outputs, maybe=(), write=()):
    with pytest.raises(typer.Exit) as stopped, reporting_outputs(outputs, maybe):
        for path in write:
            Path(path).write_text("done")
        raise KeyboardInterrupt
    return stopped.value.exit_code


def test_ctrl_c_says_nothing_was_written(tmp_path, capsys):
    assert _interrupted([tmp_path / "t.jsonl", tmp_path / "v.jsonl"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted: nothing was written."


def test_ctrl_c_names_what_was_and_was_not_written(tmp_path, capsys):
    train, val, rejects = tmp_path / "t.jsonl", tmp_path / "v.jsonl", tmp_path / "t.rejects.jsonl"
    assert _interrupted([train, val], maybe=[rejects], write=[train]) == 130
    assert capsys.readouterr().err.strip() == f"interrupted: wrote {train}; {val} not written."


def test_an_output_replaced_counts_as_written_one_left_alone_does_not(tmp_path, capsys):
    old, kept = tmp_path / "old.jsonl", tmp_path / "kept.jsonl"
    old.write_text("before")
    kept.write_text("before")
    _interrupted([old, kept], write=[old])
    assert capsys.readouterr().err.strip() == f"interrupted: wrote {old}; {kept} not written."


def test_a_full_disk_names_the_disk_and_what_was_written(tmp_path):
    from lorawiz.errors import LorawizError

    with pytest.raises(LorawizError) as raised, reporting_outputs([tmp_path / "out.jsonl"]):
        raise OSError(errno.ENOSPC, "No space left on device")  # write() names no file
    assert raised.value.message.startswith(f"no space left on the disk holding {tmp_path} (")
    assert raised.value.message.endswith("free); nothing was written.")
