"""`--config_file default.json` pipelines run unchanged (issue 17, point 1): the documented flat default.json in
config show, plan and train; every key of it a flag of train with its underscore and dash spelling; --config_file as
the config argument; logging_dir; merge's --base_model/--adapter_path/--output_dir; what patience means."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, subprocess_env

DEFAULT_JSON = REPO / "tests/fixtures/configs/default.json"
DOCUMENTED = json.loads(DEFAULT_JSON.read_text())


@pytest.fixture
def project(tmp_path):
    """default.json in a project folder with the data it names, as the pipeline's repository has it."""
    from lorawiz.builtin.triage import triage_rows

    shutil.copy(DEFAULT_JSON, tmp_path / "default.json")
    (tmp_path / "data").mkdir()
    for name, part, count in (("train.jsonl", "train", 64), ("val.jsonl", "validation", 16)):
        rows = triage_rows(part)[:count]
        (tmp_path / "data" / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_the_documented_default_json_loads_unchanged_with_every_value_from_the_file(cli, project, monkeypatch):
    monkeypatch.chdir(project)
    for args in (["default.json"], ["--config_file", "default.json"], ["--config-file", "default.json"]):
        result = cli("config", "show", *args, "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        flat = {k: v for section in data["config"].values() for k, v in section.items()}
        for key, value in DOCUMENTED.items():
            expected = {"lora_target_modules": ["q_proj", "v_proj"], "report_to": ["tensorboard"]}.get(key, value)
            if key in ("cache_dir", "output_dir", "logging_dir", "train_file", "validation_file"):
                expected = str((project / value).resolve()) if (project / value).exists() else value
            assert flat[key] == expected, key
            assert data["sources"][key]["kind"] == "file", key


def test_two_config_files_are_refused(cli, project, monkeypatch):
    monkeypatch.chdir(project)
    (project / "other.json").write_text("{}")
    result = cli("config", "show", "default.json", "--config_file", "other.json")
    assert result.exit_code == 2 and "two config files" in result.output


def _flag_args(flag: str, value) -> list[str]:
    if isinstance(value, bool):
        negative = "--no" + ("_" if "_" in flag else "-") + flag[2:]  # --no-bf16, --no_load_best_model_at_end
        return [flag if value else negative]
    return [flag, value if isinstance(value, str) else json.dumps(value)]


@pytest.mark.parametrize("key", sorted(DOCUMENTED))
def test_every_key_of_default_json_is_a_train_flag_in_both_spellings(cli, key):
    value = DOCUMENTED[key]
    spellings = ["--" + key] + (["--" + key.replace("_", "-")] if "_" in key else [])
    for flag in spellings:
        result = cli("config", "show", *_flag_args(flag, value), "--json")
        assert result.exit_code == 0, (flag, result.output)
        source = json.loads(result.output)["sources"][key]
        assert source["kind"] == "flag", (flag, source)
    help_text = cli("train", "--help").output
    assert f"--{key.replace('_', '-')}" in help_text


def test_plan_reads_default_json_and_says_what_patience_means(cli, project, monkeypatch):
    monkeypatch.chdir(project)
    result = cli("plan", "default.json", "--model", "builtin:tiny", "--hardware", "a100-80gb")
    assert result.exit_code == 0, result.output
    stopping = "early stopping: after 3 evaluations in a row that do not improve eval_loss by more than 0.1%"
    assert stopping in result.output
    assert "(3 epochs)" in result.output  # eval_strategy epoch: one evaluation an epoch
    assert "batch: effective 16 rows a step = micro-batch 4 x accumulation 4 x 1 GPU" in result.output
    result = cli("plan", "default.json", "--model", "builtin:tiny", "--hardware", "a100-80gb",
                 "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2")
    assert result.exit_code == 0, result.output
    assert "(6 steps, evaluating every 2; 1.5 epochs)" in result.output  # 64 rows / 16 a step = 4 steps an epoch


def test_merge_takes_the_pipelines_flag_names(cli, tmp_path):
    result = cli("merge", "--base_model", "builtin:tiny", "--adapter_path", str(tmp_path / "none"),
                 "--output_dir", str(tmp_path / "merged"))
    assert result.exit_code == 2 and "none" in result.output  # got as far as looking at the adapter
    assert "No such option" not in result.output
    result = cli("merge", str(tmp_path / "a"), "--adapter_path", str(tmp_path / "b"), "-o", str(tmp_path / "m"))
    assert result.exit_code == 2 and "two adapters" in result.output


def test_the_run_config_leaves_logging_dir_to_follow_output_dir(tmp_path):
    from lorawiz.config.resolve import resolve_config
    from lorawiz.train.outputs import write_run_config

    resolved = resolve_config(flags={"output_dir": str(tmp_path / "run")})
    assert resolved.value("logging_dir") == str(tmp_path / "run" / "logs")
    assert resolved.source("logging_dir").kind == "derived"
    (tmp_path / "run").mkdir()
    write_run_config(tmp_path / "run", resolved)
    rerun = resolve_config(tmp_path / "run" / "lorawiz.yaml", flags={"output_dir": str(tmp_path / "new")})
    assert rerun.value("logging_dir") == str(tmp_path / "new" / "logs")


def test_train_runs_default_json_and_writes_tensorboard_events_to_logging_dir(project):
    done = subprocess.run([sys.executable, "-m", "lorawiz", "train", "--config_file", "default.json",
                           "--model", "builtin:tiny", "--max_steps", "2", "--eval_strategy", "steps",
                           "--save_strategy", "steps", "--eval_steps", "2", "--save_steps", "2",
                           "--logging_steps", "1", "--dataloader_num_workers", "0", "--no-bf16"],  # a CPU here
                          cwd=project, capture_output=True, text=True, env=subprocess_env(CI="true"), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = project / "results"
    assert (out / "adapter_model.safetensors").is_file()
    assert list(Path(out / "logs").glob("events.out.tfevents.*")), "no TensorBoard events in logging_dir"
    import yaml

    saved = yaml.safe_load((out / "lorawiz.yaml").read_text())
    assert saved["lora"]["lora_target_modules"] == ["q_proj", "v_proj"] and saved["lora"]["lora_r"] == 16
    assert saved["training"]["weight_decay"] == 0.01 and saved["dataloader"]["remove_unused_columns"] is False
