"""`lorawiz doctor` checks (lorawiz/doctor.py) against hardware profiles this machine does not have, with the torch
build faked too, so they pass the same on a machine with a CPU or a CUDA torch."""

from __future__ import annotations

import json

import pytest

from lorawiz import doctor
from lorawiz.doctor import BROKEN, OK, WARNING, TorchFacts, broken_required, report_json, run_checks
from lorawiz.hardware import HardwareProfile, parse_hardware_spec

CPU_TORCH = TorchFacts("2.13.0+cpu", cuda=None, sees_gpu=False, device_count=0)


@pytest.fixture(autouse=True)
def torch_build(monkeypatch):
    """The doctor sees a CPU-only torch unless a test installs another: torch_build(TorchFacts(...))."""

    def install(facts: TorchFacts | None) -> None:
        monkeypatch.setattr(doctor, "read_torch", lambda: facts)

    install(CPU_TORCH)
    return install


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


def test_a_gpu_machine_with_a_cuda_torch_that_sees_it_passes_the_torch_check(torch_build):
    torch_build(TorchFacts("2.13.0+cu128", cuda="12.8", sees_gpu=True, device_count=2))
    checks, _ = run_checks(".", parse_hardware_spec("2xh100-80gb"))
    found = by_name(checks)
    assert found["torch build"].status == OK
    assert found["torch build"].detail == "torch 2.13.0+cu128, CUDA 12.8 build, sees 2 GPU(s)"
    assert not broken_required(checks)


def test_a_cuda_torch_that_sees_no_gpu_points_at_the_driver(torch_build):
    torch_build(TorchFacts("2.13.0+cu128", cuda="12.8", sees_gpu=False, device_count=0))
    checks, _ = run_checks(".", parse_hardware_spec("h100-80gb"))
    (broken,) = broken_required(checks)
    assert broken.name == "torch build" and "torch sees no GPU" in broken.detail
    assert broken.fix == "update the NVIDIA driver to one that supports CUDA 12.8"


def test_json_carries_a_hardware_profile_that_plan_reads(tmp_path):
    checks, hardware = run_checks(".", parse_hardware_spec("2xa100-80gb"))
    report = report_json(checks, hardware)
    path = tmp_path / "box.json"
    path.write_text(json.dumps(report))
    again = parse_hardware_spec(str(path))
    assert isinstance(again, HardwareProfile) and again.gpu_count == 2
    assert again.gpus[0].total_bytes == hardware.gpus[0].total_bytes
    assert report["ok"] is False  # a CPU torch cannot drive those GPUs


def test_token_is_never_printed(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    checks, hardware = run_checks(".", parse_hardware_spec("cpu"))
    assert by_name(checks)["hugging face token"].status == OK
    assert "hf_secret_value_123" not in json.dumps(report_json(checks, hardware))


@pytest.mark.parametrize(("installed", "status"), [
    ("5.17.0", OK),  # inside the range and tested
    ("5.25.3", OK),  # a patch release of the newest tested minor
    ("5.30.0", WARNING),  # allowed by the range (no upper cap), newer than tested: a warning, not a failure
    ("5.7.0", BROKEN),  # below the range
])
def test_a_version_newer_than_tested_is_a_warning_and_one_outside_the_range_is_broken(monkeypatch, installed, status):
    real = doctor.importlib.metadata.version
    monkeypatch.setattr(doctor.importlib.metadata, "version",
                        lambda name: installed if name == "transformers" else real(name))
    check = by_name(doctor.check_packages())["transformers"]
    assert check.status == status, check
    if status == WARNING:
        assert f"newer than the newest version lorawiz was tested with ({doctor.TESTED_UP_TO['transformers']})" \
            in check.detail
        assert check not in broken_required([check])


def test_the_tested_table_lies_inside_the_declared_ranges():
    from packaging.specifiers import SpecifierSet

    ranges = doctor._requirements()
    for name, tested in doctor.TESTED_UP_TO.items():
        assert tested in SpecifierSet(ranges[name]), (name, tested, ranges[name])
    assert "1.15.0" not in SpecifierSet(ranges["trl"])  # its SFTTrainer needs Triton, which CPU torch lacks
    assert "1.6.0" not in SpecifierSet(ranges["accelerate"])  # resume restores the data order differently


def test_trackers_say_what_report_to_needs_and_whether_wandb_can_log_in(monkeypatch, tmp_path):
    """A wandb package (a stand-in module on sys.path: this machine has none) without a key is a warning with the
    fix; with WANDB_API_KEY, or absent, it is fine and says how to install it."""
    def trackers():
        return {check.name: check for check in doctor.check_trackers()}

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    if doctor._installed("wandb", "wandb") is None:
        assert trackers()["wandb"].status == OK and "lorawiz[wandb]" in trackers()["wandb"].detail
    (tmp_path / "site" / "wandb").mkdir(parents=True)
    (tmp_path / "site" / "wandb" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    check = trackers()["wandb"]
    assert check.status == WARNING and "no API key" in check.detail and "wandb login" in check.fix
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert trackers()["wandb"].status == OK
    assert trackers()["tensorboard"].status == OK and "mlflow" in trackers()
