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
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
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
    assert command[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=2" in command
