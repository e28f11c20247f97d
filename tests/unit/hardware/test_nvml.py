"""Probing this machine and sampling it during a run (lorawiz/hardware/nvml.py): NVML is faked with a stand-in
`pynvml` module, since this machine has no GPU; the CUDA_VISIBLE_DEVICES rules and psutil run for real."""

from __future__ import annotations

import subprocess
import sys
import types
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from lorawiz.hardware.nvml import ResourceSampler, probe
from lorawiz.hardware.profile import GiB, MiB, describe
from tests.conftest import REPO
from tests.unit.hardware.conftest import A100_TOTAL, A100_UUID, H100_TOTAL, H100_UUID


class FakeNVMLError(Exception):
    """Like pynvml.NVMLError: carries an error code, prints a short reason."""

    def __init__(self, value: int = 999, text: str = "Unknown Error") -> None:
        super().__init__(text)
        self.value = value


@dataclass
class FakeGpu:
    name: str
    uuid: str
    total: int
    free: int
    capability: tuple[int, int]
    mig: list[FakeGpu] | None = None
    fail: str | None = None  # name of an NVML call that raises for this GPU


@dataclass
class Memory:
    total: int
    free: int
    used: int = 0
    reserved: int = 0
    version: int = 0


@dataclass
class FakeNvml:
    """The parts of pynvml that lorawiz.hardware calls, over a list of fake GPUs; records every call."""

    gpus: list[FakeGpu]
    init_error: FakeNVMLError | None = None
    cuda_version: int = 12040
    calls: list[str] = field(default_factory=list)

    def module(self) -> types.ModuleType:
        module = types.ModuleType("pynvml")
        module.NVMLError = FakeNVMLError
        module.nvmlMemory_v2 = 0x02000028
        module.NVML_DEVICE_MIG_ENABLE = 1
        for name in dir(self):
            if name.startswith("nvml"):
                setattr(module, name, getattr(self, name))
        return module

    def _check(self, gpu: FakeGpu, call: str) -> FakeGpu:
        self.calls.append(call)
        if gpu.fail == call:
            raise FakeNVMLError(15, "GPU is lost")
        return gpu

    def nvmlInit(self):
        self.calls.append("nvmlInit")
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self):
        self.calls.append("nvmlShutdown")

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu):
        return self._check(gpu, "nvmlDeviceGetName").name

    def nvmlDeviceGetUUID(self, gpu):
        return self._check(gpu, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetMemoryInfo(self, gpu, version=None):
        self._check(gpu, "nvmlDeviceGetMemoryInfo")
        return Memory(gpu.total, gpu.free, gpu.total - gpu.free, version=version or 0)

    def nvmlDeviceGetCudaComputeCapability(self, gpu):
        return self._check(gpu, "nvmlDeviceGetCudaComputeCapability").capability

    def nvmlDeviceGetMigMode(self, gpu):
        if gpu.mig is None:
            raise FakeNVMLError(3, "Not Supported")
        return [1, 1]

    def nvmlDeviceGetMaxMigDeviceCount(self, gpu):
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, gpu, slot):
        if slot >= len(gpu.mig):
            raise FakeNVMLError(6, "Not Found")
        return gpu.mig[slot]

    def nvmlSystemGetDriverVersion(self):
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return self.cuda_version


def h100(uuid: str = H100_UUID, free_gib: float = 79.0) -> FakeGpu:
    return FakeGpu("NVIDIA H100 80GB HBM3", uuid, H100_TOTAL, int(free_gib * 1024) * MiB, (9, 0))


def a100(uuid: str = A100_UUID) -> FakeGpu:
    return FakeGpu("NVIDIA A100-SXM4-40GB", uuid, A100_TOTAL, 40000 * MiB, (8, 0))


@pytest.fixture(autouse=True)
def _no_cuda_env(monkeypatch):
    """The developer's CUDA_VISIBLE_DEVICES must not leak into the tests that do not set it."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)


@pytest.fixture
def nvml(monkeypatch):
    """Install a fake pynvml with the given GPUs: nvml(h100(), a100())."""

    def install(*gpus: FakeGpu, **options) -> FakeNvml:
        fake = FakeNvml(list(gpus), **options)
        monkeypatch.setitem(sys.modules, "pynvml", fake.module())
        return fake

    return install


# ---------------------------------------------------------------------------------------------------------
# probe()


def test_probe_reads_two_gpus_with_driver_and_host_facts(nvml, tmp_path):
    fake = nvml(h100(), a100())
    profile = probe(tmp_path / "not" / "made" / "yet")

    assert [gpu.name for gpu in profile.gpus] == ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"]
    first, second = profile.gpus
    assert (first.index, first.uuid, first.total_bytes, first.compute_capability) == (0, H100_UUID, H100_TOTAL, (9, 0))
    assert first.free_bytes == 79 * 1024 * MiB
    assert (second.index, second.total_bytes, second.free_bytes) == (1, A100_TOTAL, 40000 * MiB)
    # Known models get the spec table's throughput figures.
    assert (first.peak_tflops_bf16, first.memory_bandwidth_gbs) == (989.4, 3350.0)
    assert (second.peak_tflops_bf16, second.memory_bandwidth_gbs) == (312.0, 1555.0)
    assert (profile.driver_version, profile.cuda_driver_version) == ("550.54.15", "12.4")
    assert profile.source == "probe" and profile.notes == []
    assert profile.gpu_count == 2 and profile.supports_bf16 and not profile.is_cpu_only
    assert profile.smallest_gpu_free_bytes == 40000 * MiB
    assert profile.cpu_cores >= 1 and profile.ram_bytes > 0 and profile.disk_free_bytes > 0
    assert fake.calls.count("nvmlShutdown") == 1


def test_unknown_gpu_has_no_spec_figures_and_turing_has_no_bf16(nvml):
    nvml(FakeGpu("NVIDIA Quadro RTX 8000", "GPU-4444", 48 * 1024 * MiB, 47 * 1024 * MiB, (7, 5)))
    profile = probe()
    (gpu,) = profile.gpus
    assert gpu.peak_tflops_bf16 is None and gpu.memory_bandwidth_gbs is None
    assert not profile.supports_bf16
    assert describe(profile)[0] == ("GPU 0: NVIDIA Quadro RTX 8000, 48.0 GiB total, 47.0 GiB free, compute 7.5, "
                                    "no bf16 (fp16 only)")


def test_cuda_driver_version_formats_major_minor(nvml):
    nvml(h100(), cuda_version=11080)
    assert probe().cuda_driver_version == "11.8"


@pytest.mark.parametrize(
    ("mask", "expected_uuids"),
    [
        ("1", [A100_UUID]),
        ("1,0", [A100_UUID, H100_UUID]),
        ("GPU-9f8e", [A100_UUID]),  # a unique UUID prefix is enough
        (f"{H100_UUID}", [H100_UUID]),
        ("", []),
        ("-1", []),
        ("0,7,1", [H100_UUID]),  # 7 does not exist: it and everything after it are hidden
        ("1,GPU-ffff,0", [A100_UUID]),  # an unknown UUID cuts the list the same way
        ("GPU-", []),  # ambiguous prefix: invalid
        ("0,0", []),  # a repeated device hides all
    ],
)
def test_cuda_visible_devices(nvml, monkeypatch, mask, expected_uuids):
    nvml(h100(), a100())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mask)
    profile = probe()
    assert [gpu.uuid for gpu in profile.gpus] == expected_uuids
    assert f"CUDA_VISIBLE_DEVICES={mask!r}: {len(expected_uuids)} of 2 GPUs visible." in profile.notes


def test_visible_gpus_keep_their_nvml_index(nvml, monkeypatch):
    nvml(h100(), a100())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    (gpu,) = probe().gpus
    assert gpu.index == 1 and gpu.name == "NVIDIA A100-SXM4-40GB"


def test_hiding_every_gpu_gives_a_cpu_only_profile(nvml, monkeypatch):
    nvml(h100())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    profile = probe()
    assert profile.is_cpu_only and profile.smallest_gpu_free_bytes is None and not profile.supports_bf16
    assert "no GPU: training would run on the CPU" in describe(profile)


def test_index_masks_on_a_mixed_machine_warn_about_cuda_device_order(nvml, monkeypatch):
    nvml(h100(), a100())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert any("CUDA_DEVICE_ORDER=PCI_BUS_ID" in note for note in probe().notes)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    assert not any("CUDA_DEVICE_ORDER" in note for note in probe().notes)


def test_mig_gpu_is_seen_as_its_first_slice(nvml, monkeypatch):
    slices = [FakeGpu("NVIDIA H100 80GB HBM3 MIG 3g.40gb", f"MIG-aaaa-{n}", 40192 * MiB, 40000 * MiB, (9, 0))
              for n in range(2)]
    parent = h100()
    parent.mig = slices
    nvml(parent, a100())
    profile = probe()
    assert [gpu.uuid for gpu in profile.gpus] == ["MIG-aaaa-0", A100_UUID]
    mig = profile.gpus[0]
    assert (mig.index, mig.total_bytes, mig.peak_tflops_bf16) == (0, 40192 * MiB, None)
    assert any("2 MIG slices visible" in note for note in profile.notes)

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-aaaa-1")
    assert [gpu.uuid for gpu in probe().gpus] == ["MIG-aaaa-1"]


def test_missing_nvml_library_gives_cpu_only_profile_with_a_note(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    profile = probe()
    assert profile.is_cpu_only and profile.driver_version is None
    assert profile.notes == ["no GPU seen: nvidia-ml-py is not installed (pip install nvidia-ml-py)."]
    assert profile.ram_bytes > 0  # the host facts are still probed


def test_nvml_init_failure_gives_cpu_only_profile_without_shutdown(nvml):
    fake = nvml(h100(), init_error=FakeNVMLError(9, "Driver Not Loaded"))
    profile = probe()
    assert profile.is_cpu_only
    assert len(profile.notes) == 1 and "NVML did not start (Driver Not Loaded)" in profile.notes[0]
    assert "nvmlShutdown" not in fake.calls  # shutting down an NVML that never started is itself an error


@pytest.mark.parametrize("failing_call", ["nvmlDeviceGetName", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetUUID"])
def test_nvml_error_mid_probe_gives_cpu_only_profile_and_still_shuts_down(nvml, failing_call):
    broken = a100()
    broken.fail = failing_call
    fake = nvml(h100(), broken)
    profile = probe()
    assert profile.is_cpu_only
    assert "NVML failed while reading the GPUs (GPU is lost)" in profile.notes[0]
    assert fake.calls[-1] == "nvmlShutdown" and fake.calls.count("nvmlShutdown") == 1


def test_driver_with_no_gpu_says_so(nvml):
    fake = nvml()
    profile = probe()
    assert profile.is_cpu_only and profile.driver_version == "550.54.15"
    assert profile.notes == ["no GPU seen: the NVIDIA driver is loaded but reports no GPU."]
    assert fake.calls.count("nvmlShutdown") == 1


# ---------------------------------------------------------------------------------------------------------
# ResourceSampler


def test_resource_sampler_without_gpu_reads_process_and_system_memory(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError, as on a machine without it
    now = [100.0]
    sampler = ResourceSampler(clock=lambda: now[0])
    first = sampler.sample()
    assert len(first) == 1 and first[0]["kind"] == "cpu"
    assert first[0]["rss_bytes"] > 0 and 0 < first[0]["ram_used_bytes"] <= first[0]["ram_total_bytes"]
    now[0] += 1.0
    assert sampler.sample() is first  # cached for 2 s
    now[0] += 2.0
    assert sampler.sample() is not first


def test_resource_sampler_on_this_machine_never_raises():
    readings = ResourceSampler().sample()
    assert readings and all(item["kind"] in ("gpu", "cpu") for item in readings)


def fake_nvml(*gpus: dict) -> types.ModuleType:
    def utilization(gpu):
        if gpu["util"] is None:
            raise FakeNVMLError(3, "Not Supported")
        return SimpleNamespace(gpu=gpu["util"], memory=0)

    def no_mig(gpu):
        raise FakeNVMLError(3, "Not Supported")

    module = types.ModuleType("pynvml")
    module.NVMLError = FakeNVMLError
    module.nvmlInit = lambda: None
    module.nvmlShutdown = lambda: None
    module.nvmlDeviceGetCount = lambda: len(gpus)
    module.nvmlDeviceGetHandleByIndex = lambda index: gpus[index]
    module.nvmlDeviceGetName = lambda gpu: gpu["name"]
    module.nvmlDeviceGetUUID = lambda gpu: gpu["uuid"]
    module.nvmlDeviceGetMemoryInfo = lambda gpu: SimpleNamespace(total=gpu["total"], free=gpu["free"])
    module.nvmlDeviceGetCudaComputeCapability = lambda gpu: (9, 0)
    module.nvmlDeviceGetMigMode = no_mig
    module.nvmlDeviceGetUtilizationRates = utilization
    return module


def test_resource_sampler_reads_the_visible_gpus_through_nvml(monkeypatch):
    gpus = [{"name": f"GPU{index}", "uuid": f"GPU-{index}000", "total": 80 * GiB, "free": (70 - index) * GiB,
             "util": 90 if index else None} for index in range(3)]
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(*gpus))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    readings = ResourceSampler().sample()
    assert readings == [
        {"kind": "gpu", "index": 2, "name": "GPU2", "used_bytes": 12 * GiB, "total_bytes": 80 * GiB,
         "util_percent": 90},
        {"kind": "gpu", "index": 0, "name": "GPU0", "used_bytes": 10 * GiB, "total_bytes": 80 * GiB,
         "util_percent": None},
    ]


# ---------------------------------------------------------------------------------------------------------
# Import cost


def test_importing_hardware_loads_neither_torch_nor_the_probe_libraries():
    code = ("import sys, lorawiz.hardware; "
            "print(sorted(m for m in ('torch', 'pynvml', 'psutil') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
