"""`lorawiz doctor` checks (lorawiz/doctor.py) on this CPU machine, and against a GPU profile it does not have."""

from __future__ import annotations

import json

from lorawiz.doctor import BROKEN, OK, WARNING, broken_required, report_json, run_checks
from lorawiz.hardware import HardwareProfile, parse_hardware_spec


def by_name(checks):
    return {c.name: c for c in checks}


def test_cpu_machine_is_ready_and_says_training_runs_on_the_cpu():
    checks, hardware = run_checks(".", parse_hardware_spec("cpu"))
    found = by_name(checks)
    assert not broken_required(checks)
    assert found["python"].status == OK and found["transformers"].status == OK
    assert "CPU" in found["torch build"].detail and "training will run on the CPU" in found["torch build"].detail
    assert found["gpu"].status == WARNING
    assert found["bitsandbytes 4-bit"].status == OK  # bitsandbytes >= 0.50 quantises on the CPU
    assert all(c.status in (OK, WARNING, BROKEN) for c in checks)
    assert all(c.fix for c in checks if c.status == BROKEN)


def test_a_gpu_machine_with_a_cpu_torch_is_broken_with_the_fix():
    checks, _ = run_checks(".", parse_hardware_spec("h100-80gb"))
    broken = broken_required(checks)
    assert [c.name for c in broken] == ["torch build"]
    assert "CPU-only build" in broken[0].detail and "pip install" in broken[0].fix


def test_json_carries_a_hardware_profile_that_plan_reads(tmp_path):
    checks, hardware = run_checks(".", parse_hardware_spec("2xa100-80gb"))
    report = report_json(checks, hardware)
    path = tmp_path / "box.json"
    path.write_text(json.dumps(report))
    again = parse_hardware_spec(str(path))
    assert isinstance(again, HardwareProfile) and again.gpu_count == 2
    assert again.gpus[0].total_bytes == hardware.gpus[0].total_bytes
    assert report["ok"] is False  # the CPU torch here cannot drive those GPUs


def test_token_is_never_printed(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    checks, hardware = run_checks(".", parse_hardware_spec("cpu"))
    assert by_name(checks)["hugging face token"].status == OK
    assert "hf_secret_value_123" not in json.dumps(report_json(checks, hardware))
