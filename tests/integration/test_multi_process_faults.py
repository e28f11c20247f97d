"""Faults under several processes (issue 18, point 2: as on one GPU): out of memory in a process restarts every
process once with a halved micro-batch from the last complete checkpoint, and a data-parallel run on CPU
processes resumes (torch could not restore its optimizer onto device("cpu", N) before lorawiz.train.distributed
registered that location)."""

from __future__ import annotations

from tests.integration.test_fsdp import train  # the same 2-process run of builtin:tiny


def test_out_of_memory_in_a_process_restarts_all_of_them_once_with_a_smaller_micro_batch(tmp_path):
    out = tmp_path / "run"
    done = train(out, "--set", "per_device_train_batch_size=8", fault="oom@3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("out of memory: restarting every process once with micro-batch 8 -> 4, accumulation doubled to 2"
            in done.stdout + done.stderr)
    assert "resuming from" in done.stdout and (out / "adapter_model.safetensors").is_file()
    saved = (out / "lorawiz.yaml").read_text()
    assert "per_device_train_batch_size: 4" in saved and "gradient_accumulation_steps: 2" in saved


def test_a_data_parallel_run_on_cpu_processes_resumes(tmp_path):
    out = tmp_path / "run"
    stopped = train(out, fault="sigint@3")
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr
    resumed = train(out, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from step" in resumed.stdout and (out / "adapter_model.safetensors").is_file()


def test_an_error_the_processes_meet_is_said_once_with_its_exit_code(tmp_path):
    """A model folder without weights passes the launcher's plan (it reads config.json) and fails in every
    process: exit 2 and the one-line error once, not torchrun's traceback and table with exit 1."""
    import shutil
    import subprocess
    import sys

    from lorawiz.builtin import local_path
    from tests.conftest import subprocess_env

    model = tmp_path / "model"
    shutil.copytree(local_path("builtin:tiny"), model)
    for weights in model.glob("*.safetensors"):
        weights.unlink()
    command = ["train", "--model", str(model), "--data", "builtin:triage", "--max-steps", "2", "--plain",
               "--num-processes", "2", "--output-dir", str(tmp_path / "run")]
    done = subprocess.run([sys.executable, "-m", "lorawiz", *command], capture_output=True, text=True,
                          env=subprocess_env(CI="true", OMP_NUM_THREADS="1"), timeout=600)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count(f"error: cannot load model {model}") == 1, done.stderr
    assert "Traceback" not in done.stderr and "ChildFailedError" not in done.stderr


def test_ctrl_c_in_a_terminal_stops_every_process_at_a_checkpoint(tmp_path):
    """A terminal's Ctrl-C goes to its whole foreground process group. The launcher runs in a session of its own,
    so the training processes get the signal once, from lorawiz (twice would abort them, and torchrun's own
    shutdown kills them 30 s later), and lorawiz waits for them: they save a checkpoint, and it exits 130 after
    them, not before (it would have left them running, and the folder unlocked, behind it)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    from tests.conftest import subprocess_env

    out = tmp_path / "run"
    command = [sys.executable, "-m", "lorawiz", "train", "--model", "builtin:tiny", "--data", "builtin:triage",
               "--plain", "--num-processes", "2", "--set", "num_train_epochs=50", "--set", "logging_steps=1",
               "--output-dir", str(out)]
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        env = subprocess_env(CI="true", OMP_NUM_THREADS="1")
        run = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, start_new_session=True)
        metrics, deadline = out / "metrics.jsonl", time.monotonic() + 300
        while not (metrics.is_file() and '"loss"' in metrics.read_text()) and time.monotonic() < deadline:
            time.sleep(0.5)
        os.killpg(run.pid, signal.SIGINT)  # as the terminal does: to the process group lorawiz leads
        code = run.wait(timeout=300)
        left = [p for p in psutil.process_iter(["cmdline"]) if str(out) in " ".join(p.info["cmdline"] or [])]
    said, errors = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    assert not left, [p.info["cmdline"] for p in left]
    assert code == 130, said + errors
    assert "stopped by SIGINT at step" in said and "internal error" not in said + errors
    assert "Traceback" not in errors
    assert list(out.glob("checkpoint-*/trainer_state.json"))
