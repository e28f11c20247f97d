"""Relaunching under several processes (lorawiz/train/launcher.py): the right launcher, the right arguments."""

from __future__ import annotations

import pytest

from lorawiz.errors import LorawizError
from lorawiz.train.launcher import child_args, launch_command

ARGV = ["train", "--model", "m", "--num-processes", "4", "--accelerate-config=x.yaml", "--data", "d.jsonl"]


def test_own_flags_are_not_passed_to_the_children():
    assert child_args(ARGV) == ["train", "--model", "m", "--data", "d.jsonl"]


def test_gpus_use_accelerate_launch_multi_gpu():
    command = launch_command(["train"], 4, None, cpu=False)
    assert command[1:4] == ["-m", "lorawiz.train.children", "accelerate"]
    assert command[command.index("--num_processes") + 1] == "4" and "--multi_gpu" in command
    assert command[-3:] == ["-m", "lorawiz", "train"]


def test_an_accelerate_config_passes_through_unchanged(tmp_path):
    config = tmp_path / "fsdp.yaml"
    config.write_text("distributed_type: FSDP\n")
    command = launch_command(["train"], 8, str(config), cpu=False)
    assert command[command.index("--config_file") + 1] == str(config) and "--num_processes" not in command
    with pytest.raises(LorawizError, match="file not found"):
        launch_command(["train"], 8, str(tmp_path / "missing.yaml"), cpu=False)


def test_cpu_processes_use_torchrun():
    command = launch_command(["train"], 2, None, cpu=True)
    assert command[1:4] == ["-m", "lorawiz.train.children", "torchrun"] and "--nproc_per_node=2" in command


@pytest.mark.parametrize(("env", "expected"), [
    ({}, False),
    ({"LORAWIZ_LAUNCHED": "1"}, True),  # lorawiz's own relaunch
    ({"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, True),  # torchrun, accelerate launch --multi_gpu
    ({"ACCELERATE_DYNAMO_BACKEND": "no"}, True),  # accelerate launch with one process
])
def test_a_process_started_by_any_launcher_does_not_launch_again(monkeypatch, env, expected):
    from lorawiz.train import launcher

    for name in ("LORAWIZ_LAUNCHED", "WORLD_SIZE", "LOCAL_RANK", "ACCELERATE_DYNAMO_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launcher.launched() is expected


def test_accelerate_num_processes_is_read_and_checked(monkeypatch):
    from lorawiz.train.launcher import requested_processes

    monkeypatch.delenv("ACCELERATE_NUM_PROCESSES", raising=False)
    assert requested_processes() is None
    monkeypatch.setenv("ACCELERATE_NUM_PROCESSES", "4")
    assert requested_processes() == 4
    monkeypatch.setenv("ACCELERATE_NUM_PROCESSES", "two")
    with pytest.raises(LorawizError, match="ACCELERATE_NUM_PROCESSES=two"):
        requested_processes()


def test_the_users_mixed_precision_passes_to_the_children(monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    command = launch_command(["train"], 2, None, cpu=False)
    assert command[command.index("--mixed_precision") + 1] == "fp16"
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    command = launch_command(["train"], 2, None, cpu=False)
    assert command[command.index("--mixed_precision") + 1] == "no"  # read by the children as "not set"


@pytest.mark.parametrize(("value", "bf16", "fp16"), [("fp16", None, True), ("bf16", True, None), ("no", None, None)])
def test_accelerates_mixed_precision_is_a_setting_below_the_config_file(tmp_path, value, bf16, fp16):
    from lorawiz.config.resolve import resolve_config

    resolved = resolve_config(environ={"ACCELERATE_MIXED_PRECISION": value})
    assert (resolved.value("bf16"), resolved.value("fp16")) == (bf16, fp16)
    if value != "no":
        assert resolved.source(value).label == f"env ACCELERATE_MIXED_PRECISION={value}"
    config = tmp_path / "run.yaml"
    config.write_text("bf16: true\n")
    resolved = resolve_config(config, environ={"ACCELERATE_MIXED_PRECISION": "fp16"})
    assert (resolved.value("bf16"), resolved.value("fp16")) == (True, None)  # the file wins; the env's side cleared


def test_the_processes_errors_are_said_once_each(tmp_path, monkeypatch, capsys):
    """Local rank 0 says its error itself; the launcher says the others' only where they differ from it."""
    from lorawiz.train import launcher

    exit_file = tmp_path / "exit"
    monkeypatch.setenv(launcher.EXIT_FILE, str(exit_file))
    for rank, message in (("0", "disk full"), ("1", "disk full"), ("2", "no GPU 2"), ("3", "no GPU 2")):
        monkeypatch.setenv("LOCAL_RANK", rank)
        assert launcher.left_error(message, "fix it") is (rank != "0")
    launcher._say_the_other_errors(exit_file)
    said = capsys.readouterr().err
    assert said.count("error: no GPU 2") == 1 and "disk full" not in said and "hint: fix it" in said
    monkeypatch.delenv(launcher.EXIT_FILE)
    assert launcher.left_error("alone", None) is False  # not one of lorawiz's children: it says it itself
