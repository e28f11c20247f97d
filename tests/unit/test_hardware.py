"""Hardware profiles (lorawiz/hardware.py): NVML is faked with a stand-in `pynvml` module, since this machine has
no GPU; everything else (spec table, JSON files, CUDA_VISIBLE_DEVICES rules) runs for real."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from dataclasses import dataclass, field

import pytest

from lorawiz.errors import LorawizError
from lorawiz.hardware import (
    GPU_SPECS,
    HARDWARE_NAMES,
    GpuInfo,
    HardwareProfile,
    MiB,
    describe,
    parse_hardware_spec,
    probe,
)
from tests.conftest import REPO

H100_TOTAL = 81559 * MiB
A100_TOTAL = 40960 * MiB
H100_UUID = "GPU-1a2b3c4d-0000-1111-2222-333344445555"
A100_UUID = "GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff"


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
    assert profile.smallest_gpu_total_bytes == A100_TOTAL
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
# The built-in spec table and --hardware


@pytest.mark.parametrize("name", HARDWARE_NAMES)
def test_every_table_name_parses(name):
    profile = parse_hardware_spec(name)
    assert profile.source == f"spec:{name}"
    # Host facts belong to the target machine and are unknown for a spec.
    assert (profile.cpu_cores, profile.ram_bytes, profile.disk_free_bytes, profile.driver_version) == (None,) * 4
    if name == "cpu":
        assert profile.is_cpu_only
        return
    spec = GPU_SPECS[name]
    (gpu,) = profile.gpus
    assert gpu.total_bytes == gpu.free_bytes == spec.total_mib * MiB  # free = total: the estimator adds the context
    assert gpu.compute_capability == spec.compute_capability
    assert gpu.peak_tflops_bf16 > 0 and gpu.memory_bandwidth_gbs > 0
    assert parse_hardware_spec(name.upper()).gpus == profile.gpus  # names are case-insensitive


@pytest.mark.parametrize(
    ("name", "gib", "capability", "bf16"),
    [
        ("t4", 15.0, (7, 5), False),
        ("a10g", 22.5, (8, 6), True),
        ("l4", 22.5, (8, 9), True),
        ("rtx3090", 24.0, (8, 6), True),
        ("rtx4090", 24.0, (8, 9), True),
        ("a100-40gb", 40.0, (8, 0), True),
        ("a100-80gb", 80.0, (8, 0), True),
        ("h100-80gb", 79.6, (9, 0), True),
        ("h200", 140.4, (9, 0), True),
        ("laptop-8gb", 8.0, (8, 9), True),
    ],
)
def test_table_figures(name, gib, capability, bf16):
    profile = parse_hardware_spec(name)
    assert round(profile.gpus[0].total_bytes / 1024**3, 1) == gib
    assert profile.gpus[0].compute_capability == capability and profile.supports_bf16 is bf16


def test_t4_throughput_is_its_fp16_figure():
    assert parse_hardware_spec("t4").gpus[0].peak_tflops_bf16 == 65.0


@pytest.mark.parametrize("spec", ["4xa100-80gb", "4x a100-80gb", "4 X A100-80GB", "4\u00d7a100-80gb"])
def test_count_prefix(spec):
    profile = parse_hardware_spec(spec)
    assert profile.gpu_count == 4 and profile.source == "spec:4xa100-80gb"
    assert [gpu.index for gpu in profile.gpus] == [0, 1, 2, 3]
    assert describe(profile)[1] == ("GPU 0-3: 4 x NVIDIA A100-SXM4-80GB, 80.0 GiB total, 80.0 GiB free, "
                                    "compute 8.0, bf16")


@pytest.mark.parametrize(
    ("alias", "source"),
    [("H100", "spec:h100-80gb"), ("RTX 4090", "spec:rtx4090"), ("nvidia_l4", "spec:l4"), ("laptop", "spec:laptop-8gb")],
)
def test_aliases(alias, source):
    assert parse_hardware_spec(alias).source == source


def test_bare_a100_takes_the_smaller_card_and_says_so():
    profile = parse_hardware_spec("a100")
    assert profile.source == "spec:a100-40gb"
    assert any("a100-80gb" in note for note in profile.notes)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(LorawizError) as caught:
        parse_hardware_spec("a100-90gb")
    assert caught.value.message == '--hardware "a100-90gb": unknown hardware name.'
    assert caught.value.hint.startswith('Did you mean "a100-80gb"?')
    assert "h200" in caught.value.hint and "laptop-8gb" in caught.value.hint


def test_unknown_name_with_count_keeps_the_count_in_the_suggestion():
    with pytest.raises(LorawizError, match="unknown hardware name") as caught:
        parse_hardware_spec("8xh1000")
    assert 'Did you mean "8xh100-80gb"?' in caught.value.hint


@pytest.mark.parametrize("spec", ["0xh100", "65xh100"])
def test_count_out_of_range(spec):
    with pytest.raises(LorawizError, match="the GPU count must be 1 to 64"):
        parse_hardware_spec(spec)


# ---------------------------------------------------------------------------------------------------------
# JSON profiles


def probed_profile() -> HardwareProfile:
    gpus = [GpuInfo(0, "NVIDIA H100 80GB HBM3", H100_UUID, H100_TOTAL, 80000 * MiB, (9, 0), 989.4, 3350.0),
            GpuInfo(1, "Some Future GPU", "GPU-77", 96 * 1024 * MiB, 95 * 1024 * MiB, (10, 0))]
    return HardwareProfile(gpus, "560.28.03", "12.6", 32, 256 * 1024 * MiB, 900 * 1024 * MiB, "probe", ["a note"])


@pytest.mark.parametrize("wrapped", [False, True])
def test_json_round_trip_through_a_file(tmp_path, wrapped):
    original = probed_profile()
    data = {"hardware": original.to_dict(), "lorawiz": "0.1"} if wrapped else original.to_dict()
    path = tmp_path / "box.json"
    path.write_text(json.dumps(data), encoding="utf-8")

    loaded = parse_hardware_spec(str(path))
    assert loaded.gpus == original.gpus
    assert (loaded.driver_version, loaded.cuda_driver_version, loaded.cpu_cores) == ("560.28.03", "12.6", 32)
    assert (loaded.ram_bytes, loaded.disk_free_bytes, loaded.notes) == (original.ram_bytes, original.disk_free_bytes,
                                                                        ["a note"])
    assert loaded.source == f"file:{path}"
    assert describe(loaded)[0] == f"hardware read from {path}"


def test_spec_profile_round_trips_through_to_dict():
    profile = parse_hardware_spec("2xh200")
    assert HardwareProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_hand_written_file_may_give_total_only_and_capability_as_text(tmp_path):
    path = tmp_path / "rig.json"
    path.write_text(json.dumps({"gpus": [{"name": "My GPU", "total_bytes": 1024, "compute_capability": "8.6"}]}))
    (gpu,) = parse_hardware_spec(str(path)).gpus
    assert (gpu.index, gpu.free_bytes, gpu.compute_capability, gpu.uuid) == (0, 1024, (8, 6), "")


def test_broken_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "gpus": [\n    {"name": "x",}\n  ]\n}\n', encoding="utf-8")
    with pytest.raises(LorawizError) as caught:
        parse_hardware_spec(str(path))
    assert caught.value.message.startswith(f"{path} line 3: not valid JSON")
    assert "doctor --json" in caught.value.hint


def test_wrong_values_are_all_reported_with_their_place(tmp_path):
    path = tmp_path / "wrong.json"
    gpus = [{"name": "x", "total_bytes": "80GB", "compute_capability": [8]},
            {"total_bytes": 1, "compute_capability": "9.0"}]
    path.write_text(json.dumps({"gpus": gpus, "ram_bytes": -1}))
    with pytest.raises(LorawizError) as caught:
        parse_hardware_spec(str(path))
    message = caught.value.message
    assert message.startswith(f"{path}: 4 problems")
    for fragment in ('gpus[0].total_bytes: must be a whole number >= 0 (got "80GB")',
                     "gpus[0].compute_capability: must be like [8, 0]",
                     "gpus[1].name: is missing",
                     "ram_bytes: must be a whole number >= 0 (got -1)"):
        assert fragment in message


def test_json_that_is_not_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(LorawizError, match=r'list\.json: expected a JSON object with a "gpus" list, not a list'):
        parse_hardware_spec(str(path))


def test_json_without_a_gpus_list_is_not_taken_for_a_cpu_machine(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"lora_r": 16}))
    with pytest.raises(LorawizError, match=r"config\.json: gpus: is missing \(write \[\] for a machine without GPUs\)"):
        parse_hardware_spec(str(path))


def test_missing_json_file_names_it(tmp_path):
    with pytest.raises(LorawizError, match=r"nowhere\.json: no such hardware file"):
        parse_hardware_spec(str(tmp_path / "nowhere.json"))


# ---------------------------------------------------------------------------------------------------------
# Import cost


def test_importing_hardware_loads_neither_torch_nor_the_probe_libraries():
    code = ("import sys, lorawiz.hardware; "
            "print(sorted(m for m in ('torch', 'pynvml', 'psutil') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
