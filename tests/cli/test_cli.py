"""The command line through Typer's CliRunner: output, exit codes and the error funnel."""

from __future__ import annotations

import json
import subprocess
import sys

import typer
from typer.testing import CliRunner

from lorawiz import __version__
from lorawiz.cli._funnel import funnel
from lorawiz.presets import find_presets, preset_path
from tests.conftest import subprocess_env


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"lorawiz {__version__}"


def test_python_dash_m_runs_the_same_cli():
    done = subprocess.run([sys.executable, "-m", "lorawiz", "--version"], capture_output=True, text=True,
                          env=subprocess_env(), timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"lorawiz {__version__}"


def test_no_arguments_prints_help_listing_the_commands(cli):
    result = cli()
    for command in ("presets", "config", "format", "split", "mix", "inspect", "plan", "lr-find", "doctor", "train",
                    "demo", "init", "merge", "eval", "chat", "completion"):
        assert f"\n  {command} " in result.output


def test_presets_table_lists_every_preset_with_its_values(cli):
    result = cli("presets")
    assert result.exit_code == 0, result.output
    for name in find_presets():
        assert name in result.output
    assert "r=32 alpha=32" in result.output  # default's key values
    assert "scenario" in result.output


def test_presets_show_prints_the_yaml_with_comments(cli):
    result = cli("presets", "show", "memory")
    assert result.exit_code == 0
    assert result.output == preset_path("memory").read_text()


def test_presets_show_unknown_name_is_a_user_error(cli):
    result = cli("presets", "show", "standrd")
    assert result.exit_code == 2
    assert 'unknown preset "standrd"' in result.output
    assert 'Did you mean "standard"?' in result.output
    assert "Traceback" not in result.output


def test_config_show_json_has_values_and_sources(cli, tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"lora_r": 8, "learning_rate": 1e-4}))
    result = cli("config", "show", str(path), "--preset", "default", "--learning_rate", "3e-4",
                 "--num-train-epochs", "5", "--set", "lora.lora_dropout=0.1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["config"]["lora"]["lora_r"] == 8
    assert data["sources"]["lora_r"] == {"kind": "file", "label": f"file {path}", "where": f"{path} line 1"}
    assert data["config"]["training"]["learning_rate"] == 3e-4
    assert data["sources"]["learning_rate"]["label"] == "flag --learning-rate"
    assert data["config"]["training"]["num_train_epochs"] == 5
    assert data["config"]["lora"]["lora_dropout"] == 0.1
    assert data["sources"]["lora_dropout"]["label"] == "--set lora.lora_dropout"
    assert data["sources"]["lora_alpha"]["label"] == "preset default"


def test_typed_flags_accept_both_spellings(cli):
    for flag in ("--lora-r", "--lora_r"):
        data = json.loads(cli("config", "show", flag, "24", "--json").output)
        assert data["config"]["lora"]["lora_r"] == 24
    data = json.loads(cli("config", "show", "--load_in_4bit", "--no-gradient-checkpointing", "--json").output)
    assert data["config"]["model"]["load_in_4bit"] is True
    assert data["config"]["optimization"]["gradient_checkpointing"] is False


def test_config_show_table_marks_auto_values(cli):
    result = cli("config", "show", "--preset", "standard")
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if line.strip().startswith("lora_r "))
    assert "auto" in line and "recommender" in line


def test_bad_flag_value_exits_2_without_traceback(cli):
    result = cli("config", "show", "--lora-r", "abc")
    assert result.exit_code == 2
    assert "--lora-r" in result.output and "Traceback" not in result.output


def test_invalid_value_from_a_flag_names_the_flag(cli):
    result = cli("config", "show", "--lora-r", "0")
    assert result.exit_code == 2
    assert "--lora-r: lora.lora_r = 0: must be greater than 0" in result.output
    assert "hint:" in result.output


def test_invalid_config_is_one_report_and_exit_2(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lora:\n  lora_r: -1\ntraining:\n  lora_alpha: 8\n")
    result = cli("config", "show", str(path))
    assert result.exit_code == 2
    assert result.output.count("error:") == 1
    assert "2 problems" in result.output
    assert "Traceback" not in result.output


def test_debug_env_shows_the_traceback(cli, tmp_path):
    result = cli("config", "show", str(tmp_path / "missing.yaml"), env={"LORAWIZ_DEBUG": "1"})
    assert result.exit_code == 2
    assert "Traceback" in result.output and "missing.yaml not found" in result.output


def _broken_app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @funnel
    def crash() -> None:
        raise RuntimeError("boom")

    return app


def test_internal_errors_exit_1_with_a_report_hint(monkeypatch):
    result = CliRunner().invoke(_broken_app(), [])
    assert result.exit_code == 1
    assert "internal error: RuntimeError: boom" in result.output
    assert "LORAWIZ_DEBUG=1" in result.output


def test_internal_errors_raise_under_debug(monkeypatch):
    monkeypatch.setenv("LORAWIZ_DEBUG", "1")
    result = CliRunner().invoke(_broken_app(), [])
    assert isinstance(result.exception, RuntimeError)


def test_real_process_user_error_has_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lorawiz", "config", "show", str(tmp_path / "x.yaml")],
                          capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: config file") and "Traceback" not in done.stderr
