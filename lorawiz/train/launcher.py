"""Several GPUs or machines: relaunch `lorawiz train` under `accelerate launch` (data parallel by default).

The parent process only launches and waits; every child runs the same command with LORAWIZ_LAUNCHED=1, and the
process of rank 0 alone prints the plan and dashboard, writes the outputs and holds the output folder's lock (so
the run never locks itself out, and a second run is refused however it was launched: torchrun, accelerate, here).
An accelerate config file passes through unchanged, so FSDP, DeepSpeed and multi-node setups work as accelerate
defines them. Started by a launcher of the user's (`accelerate launch -m lorawiz train`, torchrun), each process
trains as it is: WORLD_SIZE or LOCAL_RANK set means it already is one of several.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError

LAUNCHED = "LORAWIZ_LAUNCHED"
ARGV = "LORAWIZ_ARGV"  # the user's command line (JSON), for the resume hint the children print
EXIT_FILE = "LORAWIZ_EXIT_FILE"  # where the main child leaves the exit code of a run stopped by a signal
# the values of the launcher's one restart after running out of memory, JSON: {knob: value} (lorawiz.train.fallback)
RELAUNCH_FALLBACK = "LORAWIZ_FALLBACK"
# consumed here, not passed to the children
OWN_FLAGS = ("--num-processes", "--accelerate-config", "--num-machines", "--machine-rank", "--main-process-ip",
             "--main-process-port")


@dataclass(frozen=True)
class Launch:
    """Where this launch's processes go: `processes` on this machine, one of `machines`."""

    processes: int = 1
    machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None

    def check(self) -> None:
        if self.machines < 1:
            raise LorawizError(f"--num-machines {self.machines}: must be at least 1.", hint="For example 2.")
        if not 0 <= self.machine_rank < self.machines:
            raise LorawizError(f"--machine-rank {self.machine_rank}: must be 0 to {self.machines - 1} with "
                               f"--num-machines {self.machines}.",
                               hint="Give the first machine 0, the next 1, and so on.")
        if self.machines > 1 and not self.main_process_ip:
            raise LorawizError(f"--num-machines {self.machines} needs --main-process-ip: the address of machine 0, "
                               "which the others connect to.",
                               hint="Pass the same --main-process-ip (and --main-process-port) on every machine; "
                                    "`lorawiz plan --hardware MxNxGPU` prints each machine's command.")


def launched() -> bool:
    """Whether this process was started by a launcher (ours, accelerate launch, torchrun): then it trains, never
    launches again. accelerate launch with one process sets neither WORLD_SIZE nor LOCAL_RANK, but its
    ACCELERATE_DYNAMO_BACKEND."""
    return os.environ.get(LAUNCHED) == "1" or any(
        name in os.environ for name in ("WORLD_SIZE", "LOCAL_RANK", "ACCELERATE_DYNAMO_BACKEND"))


def requested_processes() -> int | None:
    """ACCELERATE_NUM_PROCESSES, the number of processes accelerate would start, when set."""
    raw = os.environ.get("ACCELERATE_NUM_PROCESSES", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise LorawizError(f"ACCELERATE_NUM_PROCESSES={raw}: must be a whole number of at least 1.",
                           hint="Unset it, or set it to the number of GPUs to train on.")
    return int(raw)


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


# accelerate's launcher or torchrun, ending with a failed process's exit code and no traceback of their own
CHILDREN = [sys.executable, "-m", "lorawiz.train.children"]


def launch_command(argv: list[str], num_processes: int, config_file: str | None, cpu: bool) -> list[str]:
    if cpu and not config_file:
        # accelerate launch --cpu runs one process however many are asked for; torchrun (what accelerate uses for
        # several GPUs) starts them, and the Trainer then joins them over gloo.
        return [*CHILDREN, "torchrun", "--standalone", f"--nproc_per_node={num_processes}",
                "-m", "lorawiz", *child_args(argv)]
    command = [*CHILDREN, "accelerate"]
    if config_file:
        if not Path(config_file).is_file():
            raise LorawizError(f"--accelerate-config {config_file}: file not found.",
                               hint="Create one with `accelerate config`, or leave the flag out.")
        command += ["--config_file", config_file]
    else:
        # The user's ACCELERATE_MIXED_PRECISION passes on (the children read it as a setting); "no" otherwise, which
        # the children read as "not set".
        precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
        command += ["--num_processes", str(num_processes), "--num_machines", "1", "--mixed_precision", precision,
                    "--dynamo_backend", "no"]
        if num_processes > 1:
            command.append("--multi_gpu")
    return command + ["-m", "lorawiz", *child_args(argv)]


def relaunch(argv: list[str], num_processes: int, config_file: str | None, cpu: bool,
             extra_env: dict[str, str] | None = None, say: Any = None) -> int:
    """Run the children and return their exit code: a run stopped by Ctrl-C or SIGTERM returns 130 or 143, as one
    process would (the children exit 0 then and leave the code in a file, so that torchrun reports no failure).
    When a child runs out of memory, all of them are started again once, with a halved micro-batch, from the last
    complete checkpoint (lorawiz.train.fallback)."""
    import json
    import tempfile

    env = {**os.environ, LAUNCHED: "1", ARGV: json.dumps(argv), **(extra_env or {})}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, num_processes))))
    with tempfile.TemporaryDirectory(prefix="lorawiz-exit-") as folder:
        exit_file = Path(folder) / "exit"
        env[EXIT_FILE] = str(exit_file)
        code = _run_launcher(launch_command(argv, num_processes, config_file, cpu), env)
        restart = exit_file.with_name("exit.restart")
        if restart.is_file() and RELAUNCH_FALLBACK not in env:
            asked = json.loads(restart.read_text(encoding="utf-8"))
            if say is not None:
                say(f"out of memory: restarting every process once with {asked['change']}, from the last complete "
                    "checkpoint")
            env[RELAUNCH_FALLBACK] = json.dumps(asked["values"])
            kept = [arg for arg in argv if arg != "--overwrite"]  # the folder is this run's now
            again = kept if "--resume" in kept else [*kept, "--resume", "auto"]
            code = _run_launcher(launch_command(again, num_processes, config_file, cpu), env)
        _say_the_other_errors(exit_file)
        left = exit_file.read_text().strip() if exit_file.is_file() else ""
    return int(left) if left.isdigit() else code


def _run_launcher(command: list[str], env: dict[str, str]) -> int:
    """Run accelerate's launcher (or torchrun) and wait for it. It starts in a session of its own, so a Ctrl-C in
    the terminal reaches this process alone, which passes it (and SIGTERM) once to the training processes: each
    saves a checkpoint at the end of its step and stops, as one process does. Left to the launcher, the signal
    would be passed on too and the processes killed 30 s later, mid-step on a large model
    (torch.distributed.elastic's shutdown); and this process, stopped by it, would leave them running."""
    import signal

    import psutil

    launcher = subprocess.Popen(command, env=env, start_new_session=True)

    def forward(signum: int, frame: Any) -> None:
        with contextlib.suppress(psutil.Error):  # the launcher or a process may have ended meanwhile
            for process in psutil.Process(launcher.pid).children():  # the training processes
                with contextlib.suppress(psutil.Error):
                    process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return launcher.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def left_error(message: str, hint: str | None) -> bool:
    """In a process lorawiz launched, a user's error is left for the launcher too; True when the launcher will say
    it, so the process does not: every process of a machine runs the same command and mostly meets the same error,
    which its local rank 0 says at once and the launcher does not repeat (one that differs, it says)."""
    import json

    path = os.environ.get(EXIT_FILE)
    if not path:
        return False
    local = os.environ.get("LOCAL_RANK", "0")
    Path(f"{path}.error.{local}").write_text(json.dumps([message, hint]), encoding="utf-8")
    return local != "0"


def _say_the_other_errors(exit_file: Path) -> None:
    import json

    from lorawiz.console import print_error

    left = {path.name.rsplit(".", 1)[1]: tuple(json.loads(path.read_text(encoding="utf-8")))
            for path in exit_file.parent.glob(f"{exit_file.name}.error.*")}
    said = left.pop("0", None)
    for message, hint in dict.fromkeys(left[rank] for rank in sorted(left, key=int)):
        if (message, hint) != said:
            print_error(message, hint)


def user_argv(argv: list[str]) -> list[str]:
    """The command line the user typed: the launcher's (with --num-processes and the machine flags) in a child."""
    import json

    raw = os.environ.get(ARGV)
    return json.loads(raw) if raw else argv


def stopped_exit(code: int) -> int:
    """The exit code of a process stopped by a signal: itself alone, or, as one of lorawiz's children, 0 with the
    code left for the launcher (by the main process)."""
    path = os.environ.get(EXIT_FILE)
    if not path:
        return code
    if int(os.environ.get("RANK", "0")) == 0:
        Path(path).write_text(str(code))
    return 0


def machine_commands(argv: list[str], machines: int, port: int = 29500) -> list[str]:
    """`lorawiz plan ... --hardware MxNxGPU` as the `lorawiz train` command to start on each machine: the same
    values, the plan's --hardware left out (each machine probes its own GPUs), and the machine flags."""
    import shlex

    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--hardware", "--json"):
            skip = arg == "--hardware"
            continue
        if arg.startswith("--hardware="):
            continue
        args.append(arg)
    if args and args[0] == "plan":
        args = args[1:]
    base = "lorawiz train " + " ".join(shlex.quote(arg) for arg in args)
    return [f"{base} --num-machines {machines} --machine-rank {rank} --main-process-ip MACHINE0_ADDRESS "
            f"--main-process-port {port}" for rank in range(machines)]
