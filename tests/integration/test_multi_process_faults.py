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
