"""`lorawiz plan --hardware MxNxGPU` (issue 18, points 1 and 3): the parallelism with its reason, and the exact
`lorawiz train` command to start on each machine."""

from __future__ import annotations

import sys


def test_plan_for_two_machines_prints_each_machines_command(cli, monkeypatch):
    args = ["plan", "--model", "llama3.1-70b", "--hardware", "2x8xh100-80gb", "--max-seq-length", "2048"]
    monkeypatch.setattr(sys, "argv", ["lorawiz", *args])
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert "parallelism = fsdp" in result.output
    assert "16 GPUs" in result.output
    commands = [line.split(": ", 1)[1] for line in result.output.splitlines() if line.strip().startswith("machine ")]
    assert len(commands) == 2
    for rank, command in enumerate(commands):
        assert command.startswith("lorawiz train --model llama3.1-70b --max-seq-length 2048 --num-machines 2 ")
        assert f"--machine-rank {rank} --main-process-ip MACHINE0_ADDRESS --main-process-port 29500" in command
        assert "--hardware" not in command


def test_plan_json_carries_the_layout(cli):
    import json

    result = cli("plan", "--model", "llama3.1-70b", "--hardware", "2xrtx4090", "--json")
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)["values"]
    assert values["parallelism"]["value"] == "fsdp" and values["cpu_offload"]["value"] is True
