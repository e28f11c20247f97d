"""Every failure a user can cause is a user error: exit 2, one line naming the path or value and the fix, and nothing
lost (inputs byte-identical, earlier checkpoints intact). Each fault is real where this machine allows it: chmod
(with root's override of file permissions dropped), a file where a folder should be, a read-only bind mount and a
small tmpfs (in a private mount namespace), a truncated weight file, a bad size, HF_HUB_OFFLINE for lm-eval; a full
disk inside a checkpoint save is simulated by making torch.save fail with ENOSPC.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

TRAIN = ["--model", "builtin:tiny", "--max-steps", "6", "--set", "save_steps=2", "--set", "eval_steps=2"]


def lorawiz_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "lorawiz", *map(str, args)]


def digest(paths: list[Path]) -> dict[str, str]:
    """Every file under the given paths with its hash."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


# The ways of running a command so that the fault is real.

def as_user(cmd: list[str]) -> list[str]:
    """Root reads and writes whatever chmod says: drop that override (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) so
    that permissions apply, as they do for any user."""
    if os.geteuid() != 0:
        return cmd
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if not shutil.which("setpriv") or subprocess.run([*prefix, "true"], capture_output=True).returncode:
        pytest.skip("running as root, where chmod does not stop reads or writes, and setpriv cannot drop root's "
                    "override of file permissions here")
    return [*prefix, *cmd]


def require_mount_namespace() -> None:
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode:
        pytest.skip("mounting needs root (unshare -m, mount): not permitted here")


def in_mount_namespace(setup: str) -> Callable[[list[str]], list[str]]:
    """Run the command after `setup` (mount commands) in a private mount namespace: nothing leaks to the machine."""

    def wrap(cmd: list[str]) -> list[str]:
        require_mount_namespace()
        return ["unshare", "-m", "sh", "-c", f'{setup} && exec "$@"', "sh", *cmd]

    return wrap


@dataclass
class Fault:
    cmd: list[str]
    expect: str  # a regular expression the error line matches
    protected: list[Path] = field(default_factory=list)  # inputs and earlier outputs: byte-identical afterwards
    run_as: Callable[[list[str]], list[str]] = lambda cmd: cmd
    env: dict[str, str] = field(default_factory=dict)
    absent: list[Path] = field(default_factory=list)  # nothing may appear here


def output_dir_is_a_file(tmp, data, adapter):
    (tmp / "runs").write_text("not a folder")
    return Fault(lorawiz_cmd("train", *TRAIN, "--data", data[0], "--output-dir", tmp / "runs"),
                 rf"error: {re.escape(str(tmp / 'runs'))} is a file, where a folder is needed\.",
                 protected=[tmp / "runs", *data])


def output_under_a_file(tmp, data, adapter):
    (tmp / "runs").write_text("not a folder")
    return Fault(lorawiz_cmd("format", data[0], "-o", tmp / "runs" / "clean.jsonl"),
                 rf"error: {re.escape(str(tmp / 'runs'))} is a file, where a folder is needed \(in ",
                 protected=[tmp / "runs", *data])


def output_folder_not_writable(tmp, data, adapter):
    (tmp / "locked").mkdir(mode=0o555)
    return Fault(lorawiz_cmd("train", *TRAIN, "--data", data[0], "--output-dir", tmp / "locked" / "run"),
                 rf"error: cannot create {re.escape(str(tmp / 'locked' / 'run'))}: no permission to write in "
                 rf"{re.escape(str(tmp / 'locked'))}\.", protected=[*data], run_as=as_user,
                 absent=[tmp / "locked" / "run"])


def format_output_not_writable(tmp, data, adapter):
    (tmp / "locked").mkdir(mode=0o555)
    return Fault(lorawiz_cmd("format", data[0], "-o", tmp / "locked" / "clean.jsonl"),
                 rf"error: cannot create {re.escape(str(tmp / 'locked' / 'clean.jsonl'))}: no permission to write",
                 protected=[*data], run_as=as_user, absent=[tmp / "locked" / "clean.jsonl"])


def output_on_a_read_only_mount(tmp, data, adapter):
    (tmp / "ro").mkdir()
    return Fault(lorawiz_cmd("train", *TRAIN, "--data", data[0], "--output-dir", tmp / "ro" / "run"),
                 r"error: cannot write .*: it is on a read-only file system\.", protected=[*data],
                 run_as=in_mount_namespace(f"mount --bind {tmp / 'ro'} {tmp / 'ro'} && "
                                           f"mount -o remount,bind,ro {tmp / 'ro'}"), absent=[tmp / "ro" / "run"])


def unreadable(command: str):
    def case(tmp, data, adapter):
        locked = tmp / "locked.jsonl"
        shutil.copy(data[0], locked)
        locked.chmod(0)
        args = {"train": ["train", *TRAIN, "--data", locked, "--output-dir", tmp / "run"],
                "plan": ["plan", "--model", "builtin:tiny", "--data", locked],
                "eval": ["eval", adapter, "--data", locked, "--max-samples", "2"],
                "mix": ["mix", locked, data[1], "-o", tmp / "mixed.jsonl"]}[command]
        return Fault(lorawiz_cmd(*args), rf"error: (--data )?{re.escape(str(locked))}: permission denied, it cannot "
                                         r"be read\.", protected=[locked, *data], run_as=as_user,
                     absent=[tmp / "run", tmp / "mixed.jsonl"])

    return case


def bad_shard_size(tmp, data, adapter):
    return Fault(lorawiz_cmd("merge", adapter, "-o", tmp / "merged", "--max-shard-size", "banana"),
                 r"error: --max-shard-size banana: not a size\.", protected=[adapter], absent=[tmp / "merged"])


def truncated_adapter(command: str):
    def case(tmp, data, adapter):
        cut = tmp / "cut"
        shutil.copytree(adapter, cut)
        weights = cut / "adapter_model.safetensors"
        size = weights.stat().st_size
        with weights.open("r+b") as handle:
            handle.truncate(size // 2)
        args = {"eval": ["eval", cut, "--data", data[1], "--max-samples", "2"],
                "merge": ["merge", cut, "-o", tmp / "merged", "--dtype", "fp32"],
                "chat": ["chat", cut, "--prompt", "hello", "--max-new-tokens", "2"]}[command]
        return Fault(lorawiz_cmd(*args), rf"error: {re.escape(str(weights))} is incomplete: {size // 2:,} of "
                                         rf"{size:,} bytes", protected=[cut, *data], absent=[tmp / "merged"])

    return case


def lm_eval_offline(tmp, data, adapter):
    pytest.importorskip("lm_eval")
    return Fault(lorawiz_cmd("eval", adapter, "--data", data[1], "--max-samples", "2", "--lm-eval", "arc_easy"),
                 r"error: --lm-eval arc_easy: its data is not in the local cache and HF_HUB_OFFLINE is set",
                 protected=[adapter, *data], env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf")})


def disk_too_small_for_the_run(tmp, data, adapter):
    (tmp / "small").mkdir()
    return Fault(lorawiz_cmd("train", *TRAIN, "--data", data[0], "--val-data", data[1], "--output-dir",
                             tmp / "small" / "run"),
                 r"error: not enough disk space for the run in .*: it needs about [\d.]+ MiB \(.*\); [\d.]+ "
                 r"(MiB|KiB) free on the disk holding ", protected=[*data],
                 run_as=in_mount_namespace(f"mount -t tmpfs -o size=1m tmpfs {tmp / 'small'}"))


def full_disk_writing_data(tmp, data, adapter):
    (tmp / "full").mkdir()
    full = tmp / "full"
    return Fault(lorawiz_cmd("format", data[0], "-o", full / "clean.jsonl"),
                 rf"error: no space left on the disk holding {re.escape(str(full))} \(.* free\); nothing was "
                 r"written\.", protected=[*data],
                 run_as=in_mount_namespace(f"mount -t tmpfs -o size=256k tmpfs {full} && "
                                           f"(dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null || true)"))


FAULTS = {
    "train --output-dir is a file": output_dir_is_a_file,
    "format -o inside a file": output_under_a_file,
    "train --output-dir not writable": output_folder_not_writable,
    "format -o not writable": format_output_not_writable,
    "train --output-dir on a read-only mount": output_on_a_read_only_mount,
    **{f"{command} --data unreadable": unreadable(command) for command in ("train", "plan", "eval", "mix")},
    "merge --max-shard-size banana": bad_shard_size,
    **{f"{command} of a truncated adapter": truncated_adapter(command) for command in ("eval", "merge", "chat")},
    "eval --lm-eval offline": lm_eval_offline,
    "train on a disk too small for its checkpoints": disk_too_small_for_the_run,
    "format onto a full disk": full_disk_writing_data,
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_is_a_user_error(name, tmp_path, data, adapter):
    fault = FAULTS[name](tmp_path, data, adapter)
    before = digest(fault.protected)
    done = subprocess.run(fault.run_as(fault.cmd), capture_output=True, text=True, timeout=300,
                          env=subprocess_env(CI="true", **fault.env))
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(fault.expect, errors[0]), done.stderr
    assert done.stderr.splitlines()[-1].startswith("hint: ")  # the fix comes with it
    assert "internal error" not in done.stderr and "Traceback" not in done.stdout + done.stderr
    assert digest(fault.protected) == before  # nothing lost
    for path in fault.absent:
        assert not path.exists(), f"{path} was left behind"
    leftovers = [p for p in tmp_path.rglob(".*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


# A full disk while training: the run stops with the last complete checkpoint named, and that checkpoint is intact.

def check_stopped_at_full_disk(done: subprocess.CompletedProcess, out: Path) -> Path:
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert re.fullmatch(rf"error: the disk holding {re.escape(str(out))} is full \([^)]* free\); training stopped\.",
                        errors[0]), done.stderr
    hint = done.stderr.splitlines()[-1]
    match = re.match(rf"hint: The last complete checkpoint is ({re.escape(str(out))}/checkpoint-\d+)", hint)
    assert match, done.stderr
    assert "--resume auto" in hint and "internal error" not in done.stderr and "Traceback" not in done.stderr
    return Path(match.group(1))


SAVE_FAILS = textwrap.dedent("""
    import errno, sys, torch
    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):  # the second checkpoint's optimizer state finds the disk full
        if str(f).endswith("optimizer.pt"):
            saves.append(f)
            if len(saves) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *args, **kwargs)

    torch.save = save
    sys.argv = ["lorawiz", *sys.argv[1:]]
    from lorawiz.cli import main
    main()
""")


def test_a_full_disk_inside_a_checkpoint_save_names_the_last_complete_one(tmp_path, data):
    from lorawiz.train.checkpoints import complete_checkpoints

    out = tmp_path / "run"
    before = digest(list(data))
    done = subprocess.run([sys.executable, "-c", SAVE_FAILS, "train", *TRAIN, "--data", str(data[0]), "--val-data",
                           str(data[1]), "--output-dir", str(out)], capture_output=True, text=True, timeout=300,
                          env=subprocess_env(CI="true"))
    named = check_stopped_at_full_disk(done, out)
    assert named == out / "checkpoint-2" and complete_checkpoints(out) == [named]
    assert "checkpoint-4 was cut short" in done.stderr  # the half-written one is named, and skipped on resume
    _assert_checkpoint_loads(named)
    assert digest(list(data)) == before


def test_a_disk_that_fills_up_during_training_stops_it_cleanly(tmp_path, data):
    """A real tmpfs, filled by another process as soon as the first checkpoint is complete."""
    require_mount_namespace()
    disk, out = tmp_path / "disk", tmp_path / "disk" / "run"
    disk.mkdir()
    saved, after = tmp_path / "saved.sha256", tmp_path / "after.sha256"
    script = textwrap.dedent(f"""
        mount -t tmpfs -o size=16m tmpfs {disk} || exit 99
        (while [ ! -f {out}/checkpoint-2/.lorawiz-complete ]; do sleep 0.01; done
         sha256sum {out}/checkpoint-2/* > {saved}
         dd if=/dev/zero of={disk}/filler bs=64k 2>/dev/null) &
        filler=$!
        "$@"; code=$?
        kill $filler 2>/dev/null; wait
        for c in {out}/checkpoint-*; do [ -f "$c/.lorawiz-complete" ] && sha256sum "$c"/* >> {after}; done
        exit $code
    """)
    before = digest(list(data))
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh",
                           *lorawiz_cmd("train", "--model", "builtin:tiny", "--max-steps", "40", "--set",
                                        "save_steps=2", "--set", "eval_steps=2", "--data", data[0], "--val-data",
                                        data[1], "--output-dir", out)],
                          capture_output=True, text=True, timeout=300, env=subprocess_env(CI="true"))
    check_stopped_at_full_disk(done, out)
    assert saved.read_text() and saved.read_text() in after.read_text()  # checkpoint-2 intact after the fault
    assert digest(list(data)) == before


def _assert_checkpoint_loads(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    assert load_file(folder / "adapter_model.safetensors")
    assert torch.load(folder / "optimizer.pt", weights_only=True)["state"]


TORCH_SAVE_ON_FULL_DISK = textwrap.dedent("""
    import sys
    from pathlib import Path

    import torch

    from lorawiz.train.checkpoints import disk_is_full

    disk = Path(sys.argv[1])
    try:
        torch.save({"state": torch.zeros(1 << 20)}, disk / "optimizer.pt")  # 4 MiB onto a 1 MiB disk
    except Exception as exc:  # torch's zip writer names no errno
        print(type(exc).__name__, disk_is_full(exc, disk))
""")


def test_torch_save_on_a_full_disk_is_recognised(tmp_path):
    """torch.save's own error on a real full tmpfs (a RuntimeError, no errno) is taken for a full disk."""
    require_mount_namespace()
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["unshare", "-m", "sh", "-c", f'mount -t tmpfs -o size=1m tmpfs {disk} && exec "$@"', "sh",
                           sys.executable, "-c", TORCH_SAVE_ON_FULL_DISK, str(disk)], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["RuntimeError", "True"], done.stdout + done.stderr
