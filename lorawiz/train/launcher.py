"""Several GPUs or machines: relaunch `lorawiz train` under `accelerate launch` (data parallel by default).

The parent process only launches and waits; every child runs the same command with LORAWIZ_LAUNCHED=1, and the
process of rank 0 alone prints the plan and dashboard, writes the outputs and holds the output folder's lock (so
the run never locks itself out, and a second run is refused however it was launched: torchrun, accelerate, here).
An accelerate config file passes through unchanged, so FSDP, DeepSpeed and multi-node setups work as accelerate
defines them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lorawiz.errors import LorawizError

LAUNCHED = "LORAWIZ_LAUNCHED"
OWN_FLAGS = ("--num-processes", "--accelerate-config")  # consumed here, not passed to the children


def launched() -> bool:
    return os.environ.get(LAUNCHED) == "1"


def child_args(argv: list[str]) -> list[str]:
    """The command line without the launcher's own flags (both `--flag value` and `--flag=value`)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in OWN_FLAGS:
            skip = True
            continue
        if any(arg.startswith(flag + "=") for flag in OWN_FLAGS):
            continue
        out.append(arg)
    return out


def launch_command(argv: list[str], num_processes: int, config_file: str | None, cpu: bool) -> list[str]:
    if cpu and not config_file:
        # accelerate launch --cpu runs one process however many are asked for; torchrun (what accelerate uses for
        # several GPUs) starts them, and the Trainer then joins them over gloo.
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={num_processes}",
                "-m", "lorawiz", *child_args(argv)]
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file:
        if not Path(config_file).is_file():
            raise LorawizError(f"--accelerate-config {config_file}: file not found.",
                               hint="Create one with `accelerate config`, or leave the flag out.")
        command += ["--config_file", config_file]
    else:
        command += ["--num_processes", str(num_processes), "--num_machines", "1", "--mixed_precision", "no",
                    "--dynamo_backend", "no"]
        if num_processes > 1:
            command.append("--multi_gpu")
    return command + ["-m", "lorawiz", *child_args(argv)]


def relaunch(argv: list[str], num_processes: int, config_file: str | None, cpu: bool) -> int:
    """Run the children and return their exit code."""
    env = {**os.environ, LAUNCHED: "1"}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, num_processes))))
    return subprocess.call(launch_command(argv, num_processes, config_file, cpu), env=env)
