"""report_to wandb for real (wandb's offline mode: no network): the run reaches the tracker under its run_name,
and a tracker that cannot start (wandb without a key) is one clear line, exit 2, not an internal error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import subprocess_env

pytest.importorskip("wandb")


def train(tmp_path, **env):
    clean = subprocess_env(CI="true", HOME=str(tmp_path), WANDB_DIR=str(tmp_path), **env)
    for name in ("WANDB_API_KEY", "WANDB_MODE") if "WANDB_MODE" not in env else ("WANDB_API_KEY",):
        clean.pop(name, None)
    return subprocess.run([sys.executable, "-m", "lorawiz", "train", "--model", "builtin:tiny", "--data",
                           "builtin:triage", "--output-dir", "run", "--max-steps", "2", "--plain", "--report-to",
                           "tensorboard,wandb", "--run-name", "tracked-trial"], capture_output=True, text=True,
                          env=clean, cwd=tmp_path, timeout=300, stdin=subprocess.DEVNULL)


def test_the_run_reaches_wandb_under_its_run_name(tmp_path):
    done = train(tmp_path, WANDB_MODE="offline")
    assert done.returncode == 0, done.stdout + done.stderr
    records = b"".join(path.read_bytes() for path in (tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert b"tracked-trial" in records and b"train/loss" in records
    assert list((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))  # and TensorBoard beside it


def test_wandb_without_a_key_is_a_clear_error(tmp_path):
    done = train(tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "report_to wandb: the tracker failed" in done.stderr and "wandb login" in done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
