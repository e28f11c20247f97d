"""What hardware a run plans for: an NVML probe of this machine, a built-in spec, or a saved JSON profile.

Plain dataclasses in, plain dataclasses out. Imports only the standard library at import time; pynvml and psutil
are imported inside `probe()`, and torch never, so `lorawiz doctor` and `--help` stay fast.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError, Problem, ProblemsError

MiB = 1024**2
GiB = 1024**3
MAX_SPEC_GPUS = 64  # enough for an 8-node x 8-GPU plan; a larger count is more likely a typo
BF16_MIN_CAPABILITY = (8, 0)  # bf16 tensor cores arrived with Ampere (compute capability 8.0)


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as a training process would see it (a MIG slice counts as one GPU)."""

    index: int
    """NVML index, the number nvidia-smi shows; CUDA renumbers the visible GPUs from 0 in list order."""
    name: str
    """Product name as NVML reports it, e.g. "NVIDIA H100 80GB HBM3"."""
    uuid: str
    """The GPU UUID ("GPU-...", or "MIG-..." for a MIG slice); empty for a built-in spec."""
    total_bytes: int
    """Usable memory as NVML reports it (less than the marketing size: ECC and firmware take a share)."""
    free_bytes: int
    """Memory no process holds yet; the memory estimator adds this run's own CUDA context on top."""
    compute_capability: tuple[int, int]
    peak_tflops_bf16: float | None = None
    """Dense 16-bit tensor throughput (no sparsity) with fp32 accumulation: bf16, or fp16 on a GPU without bf16
    (T4). From the spec table; None for an unknown GPU or a MIG slice."""
    memory_bandwidth_gbs: float | None = None
    """Peak memory bandwidth in GB/s from the spec table; None when unknown."""

    @property
    def supports_bf16(self) -> bool:
        return tuple(self.compute_capability) >= BF16_MIN_CAPABILITY

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "total_bytes": self.total_bytes,
            "free_bytes": self.free_bytes,
            "compute_capability": list(self.compute_capability),
            "peak_tflops_bf16": self.peak_tflops_bf16,
            "memory_bandwidth_gbs": self.memory_bandwidth_gbs,
        }


@dataclass
class HardwareProfile:
    """Everything the planner needs to know about a machine; `None` means "not known"."""

    gpus: list[GpuInfo] = field(default_factory=list)
    driver_version: str | None = None
    """NVIDIA driver, e.g. "550.54.15"."""
    cuda_driver_version: str | None = None
    """Newest CUDA the driver supports, e.g. "12.4" (what nvidia-smi prints as "CUDA Version")."""
    cpu_cores: int | None = None
    """Cores this process may run on (its affinity mask, so taskset and cgroup cpusets count)."""
    ram_bytes: int | None = None
    disk_free_bytes: int | None = None
    """Free space on the file system that will hold the run's outputs."""
    source: str = "probe"
    """Where this came from: "probe", "spec:NAME" (built-in table) or "file:PATH" (a saved profile)."""
    notes: list[str] = field(default_factory=list)
    """Why something is missing or was assumed, in words a user can act on."""

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def is_cpu_only(self) -> bool:
        return not self.gpus

    @property
    def smallest_gpu_free_bytes(self) -> int | None:
        """Free memory of the tightest GPU (data parallelism is limited by it); None without a GPU."""
        return min((gpu.free_bytes for gpu in self.gpus), default=None)

    @property
    def smallest_gpu_total_bytes(self) -> int | None:
        return min((gpu.total_bytes for gpu in self.gpus), default=None)

    @property
    def supports_bf16(self) -> bool:
        """Every GPU has compute capability >= 8.0; False without a GPU (bf16 on a CPU is too slow to plan for)."""
        return bool(self.gpus) and all(gpu.supports_bf16 for gpu in self.gpus)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: the "hardware" part of `lorawiz doctor --json`, read back by `--hardware FILE.json`."""
        return {
            "source": self.source,
            "gpus": [gpu.to_dict() for gpu in self.gpus],
            "driver_version": self.driver_version,
            "cuda_driver_version": self.cuda_driver_version,
            "cpu_cores": self.cpu_cores,
            "ram_bytes": self.ram_bytes,
            "disk_free_bytes": self.disk_free_bytes,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "hardware profile") -> HardwareProfile:
        """Read `to_dict()` output, bare or under a "hardware" key; every problem is reported at once."""
        if isinstance(data, Mapping) and isinstance(data.get("hardware"), Mapping):
            data = data["hardware"]
        if not isinstance(data, Mapping):
            raise LorawizError(f'{where}: expected a JSON object with a "gpus" list, not {_json_type(data)}.',
                               hint=_FILE_HINT)
        problems: list[Problem] = []
        raw_gpus = data.get("gpus")
        if raw_gpus is None:  # a wrong file (a config, say) must not pass as a machine without GPUs
            problems.append(Problem("gpus", "is missing (write [] for a machine without GPUs)"))
            raw_gpus = []
        elif not isinstance(raw_gpus, list):
            problems.append(Problem("gpus", f"must be a list, not {_json_type(raw_gpus)}"))
            raw_gpus = []
        gpus = [_gpu_from_dict(raw, position, problems) for position, raw in enumerate(raw_gpus)]
        notes = _optional(data, "notes", list, problems) or []
        if not all(isinstance(note, str) for note in notes):
            problems.append(Problem("notes", "must be a list of strings"))
        profile = cls(
            gpus=[gpu for gpu in gpus if gpu is not None],
            driver_version=_optional(data, "driver_version", str, problems),
            cuda_driver_version=_optional(data, "cuda_driver_version", str, problems),
            cpu_cores=_optional(data, "cpu_cores", int, problems),
            ram_bytes=_optional(data, "ram_bytes", int, problems),
            disk_free_bytes=_optional(data, "disk_free_bytes", int, problems),
            source=_optional(data, "source", str, problems) or "probe",
            notes=[str(note) for note in notes],
        )
        if problems:
            raise ProblemsError(where, problems, hint=_FILE_HINT)
        return profile


# ---------------------------------------------------------------------------------------------------------
# Built-in specs, for planning a run on a machine other than this one


@dataclass(frozen=True)
class GpuSpec:
    """Published figures for one GPU model."""

    key: str
    name: str
    """Product name as NVML reports it."""
    total_mib: int
    """Total memory as NVML reports it (nvidia-smi "Memory-Usage" total), not the marketing size."""
    compute_capability: tuple[int, int]
    peak_tflops_bf16: float
    """Dense tensor TFLOPS, fp32 accumulate, no sparsity (fp16 where the GPU has no bf16)."""
    memory_bandwidth_gbs: float
    nvml_names: tuple[str, ...]
    """NVML names that get these figures when probed; only variants with the same compute and bandwidth."""


# Datasheet TFLOPS are halved where NVIDIA quotes them with 2:4 sparsity. GeForce cards run bf16 with fp32
# accumulation at half their fp16-accumulate rate, so their figure is the fp32-accumulate row of the whitepaper.
GPU_SPECS: dict[str, GpuSpec] = {
    spec.key: spec
    for spec in (
        # NVIDIA T4 datasheet: 65 TFLOPS fp16/fp32 mixed precision (Turing has no bf16), 320 GB/s. 15360 MiB with
        # ECC on, as clouds ship it (modal-labs/modal-client#2797, nvidia-smi totals).
        GpuSpec("t4", "Tesla T4", 15360, (7, 5), 65.0, 320.0, ("Tesla T4",)),
        # A10G is AWS-only, no NVIDIA datasheet: 600 GB/s and 70 TFLOPS bf16 per Baseten's "A10 vs A10G" spec
        # table (= 80 SMs x 512 dense FLOP/clk x 1.71 GHz). 23028 MiB in nvidia-smi (NVIDIA/DCGM#232).
        GpuSpec("a10g", "NVIDIA A10G", 23028, (8, 6), 70.0, 600.0, ("NVIDIA A10G",)),
        # NVIDIA L4 datasheet: 242 TFLOPS bf16 with sparsity -> 121 dense, 300 GB/s. 23034 MiB (modal-client#2797).
        GpuSpec("l4", "NVIDIA L4", 23034, (8, 9), 121.0, 300.0, ("NVIDIA L4",)),
        # NVIDIA Ampere GA102 whitepaper, RTX 3090: 71 TFLOPS bf16 (fp32 accumulate, dense), 936 GB/s.
        # 24576 MiB in nvidia-smi (noonghunna/club-3090 bench reports).
        GpuSpec("rtx3090", "NVIDIA GeForce RTX 3090", 24576, (8, 6), 71.0, 936.0, ("NVIDIA GeForce RTX 3090",)),
        # NVIDIA Ada Lovelace whitepaper, RTX 4090: 165.2 TFLOPS bf16 (fp32 accumulate, dense), 1008 GB/s.
        # 24564 MiB in nvidia-smi (RLinf/RLinf#255).
        GpuSpec("rtx4090", "NVIDIA GeForce RTX 4090", 24564, (8, 9), 165.2, 1008.0, ("NVIDIA GeForce RTX 4090",)),
        # NVIDIA A100 datasheet: 312 TFLOPS bf16 dense; 1555 GB/s for the 40 GB (SXM and PCIe alike).
        # 40960 MiB (modal-client#2797).
        GpuSpec("a100-40gb", "NVIDIA A100-SXM4-40GB", 40960, (8, 0), 312.0, 1555.0,
                ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB")),
        # NVIDIA A100 datasheet: 312 TFLOPS bf16 dense, 2039 GB/s for the 80 GB SXM (the 80 GB PCIe has 1935, so it
        # is not matched). 81920 MiB (modal-client#2797).
        GpuSpec("a100-80gb", "NVIDIA A100-SXM4-80GB", 81920, (8, 0), 312.0, 2039.0, ("NVIDIA A100-SXM4-80GB",)),
        # NVIDIA H100 datasheet, SXM: 1979 TFLOPS bf16 with sparsity -> 989.4 dense (Hopper whitepaper), 3.35 TB/s.
        # The PCIe card is slower (756 TFLOPS, 2 TB/s) and is not matched. 81559 MiB (modal-client#2797).
        GpuSpec("h100-80gb", "NVIDIA H100 80GB HBM3", 81559, (9, 0), 989.4, 3350.0, ("NVIDIA H100 80GB HBM3",)),
        # NVIDIA H200 datasheet, SXM: same compute as H100 SXM (1979 sparse -> 989.4 dense), 141 GB at 4.8 TB/s.
        # 143771 MiB in nvidia-smi (many public logs, e.g. GPU-operator smoke tests).
        GpuSpec("h200", "NVIDIA H200", 143771, (9, 0), 989.4, 4800.0, ("NVIDIA H200",)),
        # A laptop-class 8 GB card, modelled on the RTX 4060 Laptop at its 115 W maximum: 24 SMs x 512 dense bf16
        # FLOP/clk (Ada whitepaper rate) x 2.37 GHz boost = 29.1 TFLOPS; 128-bit GDDR6 at 16 Gbps = 256 GB/s.
        # Lower-wattage laptops run slower. 8188 MiB in nvidia-smi (RTX 4060/4070 Laptop reports).
        GpuSpec("laptop-8gb", "NVIDIA GeForce RTX 4060 Laptop GPU", 8188, (8, 9), 29.1, 256.0,
                ("NVIDIA GeForce RTX 4060 Laptop GPU",)),
    )
}
CPU_SPEC = "cpu"
HARDWARE_NAMES: tuple[str, ...] = (*GPU_SPECS, CPU_SPEC)

# Natural spellings; keys are normalised (lower case, spaces and underscores as "-", no "nvidia-"/"geforce-").
_ALIASES = {
    "tesla-t4": "t4",
    "a10g-24gb": "a10g",
    "l4-24gb": "l4",
    "3090": "rtx3090",
    "rtx-3090": "rtx3090",
    "4090": "rtx4090",
    "rtx-4090": "rtx4090",
    "h100": "h100-80gb",  # the table has one H100, the 80 GB SXM that clouds rent
    "h100-sxm": "h100-80gb",
    "h200-141gb": "h200",
    "laptop": "laptop-8gb",
    "rtx-4060-laptop": "laptop-8gb",
    "rtx4060-laptop": "laptop-8gb",
    "none": CPU_SPEC,
    "cpu-only": CPU_SPEC,
    "no-gpu": CPU_SPEC,
    # A bare "a100" takes the smaller card: a plan that fits 40 GB also fits 80 GB, the reverse would OOM.
    "a100": "a100-40gb",
}
_ALIAS_NOTES = {"a100": 'took "a100" as a100-40gb, the safer of the two; say a100-80gb for the 80 GB card.'}
_SPEC_BY_NVML_NAME = {name.lower(): spec for spec in GPU_SPECS.values() for name in spec.nvml_names}
_FILE_HINT = "A hardware file is what `lorawiz doctor --json > FILE.json` writes (or its \"hardware\" part)."


def spec_profile(name: str, count: int = 1) -> HardwareProfile:
    """A profile from the built-in table. Host facts (driver, CPU, RAM, disk) are None: they belong to the
    target machine, which this one cannot see. Free memory = total, as on a probed idle GPU: the memory
    estimator adds this run's CUDA context itself, so nothing is subtracted here."""
    if name == CPU_SPEC:
        return HardwareProfile(source=f"spec:{CPU_SPEC}")
    spec = GPU_SPECS[name]
    total = spec.total_mib * MiB
    gpus = [GpuInfo(index, spec.name, "", total, total, spec.compute_capability, spec.peak_tflops_bf16,
                    spec.memory_bandwidth_gbs) for index in range(count)]
    label = name if count == 1 else f"{count}x{name}"
    return HardwareProfile(gpus=gpus, source=f"spec:{label}")


def parse_hardware_spec(spec: str) -> HardwareProfile:
    """Turn a `--hardware` value into a profile: a table name ("a100-80gb", "H100", "RTX 4090"), a count and a
    name ("4xa100-80gb", "4x a100-80gb"), or a path to a JSON profile."""
    text = spec.strip()
    if text.lower().endswith(".json"):
        return read_hardware_file(text)
    count_match = re.fullmatch(r"(\d+)\s*[x\u00d7]\s*(.+)", text, flags=re.IGNORECASE)
    count_text, name_text = (count_match.group(1), count_match.group(2)) if count_match else (None, text)
    normal = _normalise(name_text)
    key = normal if normal in HARDWARE_NAMES else _ALIASES.get(normal)
    if key is None:
        if text and Path(text).expanduser().is_file():
            return read_hardware_file(text)
        raise _unknown_hardware(spec, normal, count_text)
    if count_text is not None and key == CPU_SPEC:
        raise LorawizError(f'--hardware "{spec}": "cpu" takes no GPU count.', hint='Use --hardware cpu.')
    count = int(count_text) if count_text is not None else 1
    if not 1 <= count <= MAX_SPEC_GPUS:
        raise LorawizError(f'--hardware "{spec}": the GPU count must be 1 to {MAX_SPEC_GPUS}, not {count}.',
                           hint=f"For example --hardware 8x{key}.")
    profile = spec_profile(key, count)
    if normal in _ALIAS_NOTES:
        profile.notes.append(_ALIAS_NOTES[normal])
    return profile


def read_hardware_file(path: str | Path) -> HardwareProfile:
    """A profile saved as JSON (by `lorawiz doctor --json` or by hand); errors name the file and the fault."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise LorawizError(f"{path}: no such hardware file.",
                           hint=f"Pass one of {', '.join(HARDWARE_NAMES)}, or a file. {_FILE_HINT}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise LorawizError(f"{path}: cannot read this hardware file ({err}).", hint=_FILE_HINT) from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LorawizError(f"{path} line {err.lineno}: not valid JSON ({err.msg} at column {err.colno}).",
                           hint=_FILE_HINT) from err
    profile = HardwareProfile.from_dict(data, where=str(path))
    profile.source = f"file:{path}"
    return profile


def _normalise(name: str) -> str:
    text = re.sub(r"[\s_]+", "-", name.strip().lower())
    for prefix in ("nvidia-", "geforce-"):
        text = text.removeprefix(prefix)
    return text


def _unknown_hardware(spec: str, normal: str, count_text: str | None) -> LorawizError:
    candidates = [*HARDWARE_NAMES, *_ALIASES]
    close = difflib.get_close_matches(normal, candidates, n=1, cutoff=0.6)
    hint = ""
    if close:
        guess = _ALIASES.get(close[0], close[0])
        hint = f'Did you mean "{count_text}x{guess}"? ' if count_text else f'Did you mean "{guess}"? '
    hint += f"Known: {', '.join(HARDWARE_NAMES)}; or a JSON file from `lorawiz doctor --json`."
    return LorawizError(f'--hardware "{spec}": unknown hardware name.', hint=hint)


def _gpu_from_dict(raw: Any, position: int, problems: list[Problem]) -> GpuInfo | None:
    where = f"gpus[{position}]"
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, f"must be an object, not {_json_type(raw)}"))
        return None
    before = len(problems)
    name = _required(raw, "name", str, problems, where)
    total = _required(raw, "total_bytes", int, problems, where)
    capability = _capability(raw.get("compute_capability"), problems, where)
    free = _optional(raw, "free_bytes", int, problems, where)
    index = _optional(raw, "index", int, problems, where)
    gpu = GpuInfo(
        index=index if index is not None else position,
        name=name or "",
        uuid=_optional(raw, "uuid", str, problems, where) or "",
        total_bytes=total or 0,
        # A hand-written plan may give only the total; free = total is the spec-table convention.
        free_bytes=free if free is not None else (total or 0),
        compute_capability=capability or (0, 0),
        peak_tflops_bf16=_optional(raw, "peak_tflops_bf16", float, problems, where),
        memory_bandwidth_gbs=_optional(raw, "memory_bandwidth_gbs", float, problems, where),
    )
    return gpu if len(problems) == before else None


def _capability(value: Any, problems: list[Problem], where: str) -> tuple[int, int] | None:
    """[8, 0] as written by to_dict, or "8.0" as people write it."""
    if isinstance(value, str) and (match := re.fullmatch(r"\s*(\d+)\.(\d+)\s*", value)):
        return int(match.group(1)), int(match.group(2))
    if isinstance(value, list | tuple) and len(value) == 2 and all(_is_count(part) for part in value):
        return int(value[0]), int(value[1])
    shown = "missing" if value is None else f"got {json.dumps(value)}"
    problems.append(Problem(f"{where}.compute_capability", f'must be like [8, 0] or "8.0" ({shown})'))
    return None


def _required(data: Mapping[str, Any], key: str, kind: type, problems: list[Problem], where: str) -> Any:
    if key not in data or data[key] is None:
        problems.append(Problem(f"{where}.{key}", "is missing"))
        return None
    return _optional(data, key, kind, problems, where)


def _optional(data: Mapping[str, Any], key: str, kind: type, problems: list[Problem], where: str = "") -> Any:
    """The value if absent/null or of the right kind; otherwise a problem and None."""
    value = data.get(key)
    if value is None:
        return None
    if kind is int and _is_count(value):
        return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if kind in (str, list) and isinstance(value, kind):
        return value
    wanted = {int: "a whole number >= 0", float: "a number >= 0", str: "a string", list: "a list"}[kind]
    problems.append(Problem(f"{where}.{key}" if where else key, f"must be {wanted} (got {json.dumps(value)})"))
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


# ---------------------------------------------------------------------------------------------------------
# Probing this machine


@dataclass
class _NvmlDevice:
    gpu: GpuInfo
    mig: list[GpuInfo] | None
    """MIG slices when MIG mode is on (CUDA then sees the slices, never the whole GPU); None when off."""


def probe(output_dir: str | Path = ".") -> HardwareProfile:
    """This machine: every GPU CUDA would show (NVML, honouring CUDA_VISIBLE_DEVICES), CPU cores, RAM and the
    free disk where `output_dir` will be. Never raises for a missing driver or library: that is a CPU-only
    profile with a note saying why."""
    notes: list[str] = []
    gpus, driver_version, cuda_version = _probe_gpus(notes)
    return HardwareProfile(
        gpus=gpus,
        driver_version=driver_version,
        cuda_driver_version=cuda_version,
        cpu_cores=_cpu_cores(),
        ram_bytes=_ram_bytes(notes),
        disk_free_bytes=_disk_free_bytes(output_dir, notes),
        source="probe",
        notes=notes,
    )


def _probe_gpus(notes: list[str]) -> tuple[list[GpuInfo], str | None, str | None]:
    try:
        import pynvml
    except ImportError:
        notes.append("no GPU seen: nvidia-ml-py is not installed (pip install nvidia-ml-py).")
        return [], None, None
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError) as err:
        notes.append(f"no GPU seen: NVML did not start ({err}); no NVIDIA driver is loaded on this machine.")
        return [], None, None
    try:
        devices = [_read_device(pynvml, index) for index in range(pynvml.nvmlDeviceGetCount())]
        driver_version, cuda_version = _driver_versions(pynvml)
        if not devices:
            notes.append("no GPU seen: the NVIDIA driver is loaded but reports no GPU.")
    except (pynvml.NVMLError, OSError) as err:
        # A half-read machine would give a plan for GPUs that may not work; nvidia-smi shows the same fault.
        notes.append(f"no GPU used: NVML failed while reading the GPUs ({err}); run nvidia-smi to check the driver.")
        return [], None, None
    finally:
        with contextlib.suppress(pynvml.NVMLError, OSError):
            pynvml.nvmlShutdown()
    return _visible_gpus(devices, os.environ.get("CUDA_VISIBLE_DEVICES"), notes), driver_version, cuda_version


def _read_device(pynvml: Any, index: int) -> _NvmlDevice:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    name = _text(pynvml.nvmlDeviceGetName(handle))
    total, free = _memory(pynvml, handle)
    major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
    spec = _SPEC_BY_NVML_NAME.get(name.lower())
    gpu = GpuInfo(index, name, _text(pynvml.nvmlDeviceGetUUID(handle)), total, free, (int(major), int(minor)),
                  spec.peak_tflops_bf16 if spec else None, spec.memory_bandwidth_gbs if spec else None)
    return _NvmlDevice(gpu, _mig_slices(pynvml, handle, gpu))


def _memory(pynvml: Any, handle: Any) -> tuple[int, int]:
    """(total, free) in bytes. v1 and v2 agree on both (v2 only splits "reserved" out of "used", NVML API
    reference, nvmlMemory_v2_t); v2 first because it is the current struct, v1 for old drivers and bindings."""
    version = getattr(pynvml, "nvmlMemory_v2", None)
    if version is not None:
        try:
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle, version=version)
            return int(memory.total), int(memory.free)
        except (pynvml.NVMLError, TypeError):
            pass
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return int(memory.total), int(memory.free)


def _mig_slices(pynvml: Any, handle: Any, parent: GpuInfo) -> list[GpuInfo] | None:
    try:
        current_mode, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except (pynvml.NVMLError, AttributeError):  # NotSupported before Ampere and on GeForce; old bindings lack it
        return None
    if current_mode != getattr(pynvml, "NVML_DEVICE_MIG_ENABLE", 1):
        return None
    slices = []
    for slot in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except pynvml.NVMLError:  # NotFound: no instance created in this slot
            continue
        total, free = _memory(pynvml, mig)  # per-slice memory needs the MIG handle (NVML API reference)
        # No spec figures: a slice has only part of the GPU's compute and bandwidth.
        name, uuid = _text(pynvml.nvmlDeviceGetName(mig)), _text(pynvml.nvmlDeviceGetUUID(mig))
        slices.append(GpuInfo(parent.index, name, uuid, total, free, parent.compute_capability))
    return slices


def _driver_versions(pynvml: Any) -> tuple[str | None, str | None]:
    try:
        driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
    except pynvml.NVMLError:
        driver_version = None
    # _v2 asks the installed libcuda (cuDriverGetVersion); v1 may answer a default when libcuda is missing.
    for getter in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        try:
            encoded = int(getattr(pynvml, getter)())
        except (pynvml.NVMLError, AttributeError):
            continue
        # NVML_CUDA_DRIVER_VERSION_MAJOR(v) = v / 1000, MINOR(v) = (v % 1000) / 10 (nvml.h): 12040 -> "12.4".
        return driver_version, f"{encoded // 1000}.{encoded % 1000 // 10}"
    return driver_version, None


def _visible_gpus(devices: list[_NvmlDevice], mask: str | None, notes: list[str]) -> list[GpuInfo]:
    """The GPUs CUDA would enumerate, in its order."""
    targets = _parse_visible_devices(mask, devices)
    chosen: list[tuple[GpuInfo, bool]] = []
    for target in targets:
        device = devices[target[0]]
        if len(target) == 2:
            chosen.append((device.mig[target[1]], True))
        elif device.mig is None:
            chosen.append((device.gpu, False))
        else:
            chosen.extend((slice_, True) for slice_ in device.mig)
    if mask is not None:
        notes.append(f"CUDA_VISIBLE_DEVICES={mask!r}: {len(targets)} of {len(devices)} GPUs visible.")
        if _ordinals_may_differ(mask, devices):
            notes.append("CUDA numbers GPUs fastest-first unless CUDA_DEVICE_ORDER=PCI_BUS_ID, but NVML (and this "
                         "probe) numbers them by PCI bus; on this mixed machine the indices may pick other GPUs. "
                         "Set CUDA_DEVICE_ORDER=PCI_BUS_ID or use GPU UUIDs.")
    mig_uuids = [gpu.uuid for gpu, is_mig in chosen if is_mig]
    if len(mig_uuids) > 1:
        # NVIDIA MIG user guide, "CUDA Device Enumeration": one CUDA process enumerates a single MIG device.
        notes.append(f"{len(mig_uuids)} MIG slices visible, but a CUDA process uses only one; planning for the "
                     f"first ({mig_uuids[0]}). Pick another with CUDA_VISIBLE_DEVICES=MIG-<uuid>.")
        chosen = [(gpu, is_mig) for gpu, is_mig in chosen if not is_mig or gpu.uuid == mig_uuids[0]]
    elif any(device.mig == [] for device in devices):
        notes.append("a GPU is in MIG mode with no MIG instance created, so CUDA cannot use it.")
    return [gpu for gpu, _is_mig in chosen]


def _parse_visible_devices(mask: str | None, devices: list[_NvmlDevice]) -> list[tuple[int, ...]]:
    """CUDA_VISIBLE_DEVICES as CUDA reads it (CUDA C Programming Guide, "CUDA Environment Variables"): indices or
    GPU-/MIG- UUIDs (a unique prefix is enough); an invalid entry hides itself and everything after it, so ""
    and "-1" hide all GPUs; a repeated device hides all (as torch.cuda._parse_visible_devices models it).
    Targets are (nvml_index,) for a GPU or (nvml_index, slice) for a MIG slice."""
    if mask is None:
        return [(index,) for index in range(len(devices))]
    targets: list[tuple[int, ...]] = []
    for entry in mask.split(","):
        target = _resolve_visible_entry(entry.strip(), devices)
        if target is None:
            break
        if target in targets:
            return []
        targets.append(target)
    return targets


def _resolve_visible_entry(entry: str, devices: list[_NvmlDevice]) -> tuple[int, ...] | None:
    digits = re.match(r"\d+", entry)  # CUDA parses like strtoul: "1gpu" is device 1
    if digits:
        index = int(digits.group())
        return (index,) if index < len(devices) else None
    prefix = entry.lower()
    if prefix.startswith("gpu-"):
        matches = [(index,) for index, device in enumerate(devices) if device.gpu.uuid.lower().startswith(prefix)]
    elif prefix.startswith("mig-"):
        matches = [(index, position) for index, device in enumerate(devices)
                   for position, slice_ in enumerate(device.mig or []) if slice_.uuid.lower().startswith(prefix)]
    else:
        return None
    return matches[0] if len(matches) == 1 else None  # unknown or ambiguous prefix


def _ordinals_may_differ(mask: str, devices: list[_NvmlDevice]) -> bool:
    uses_indices = any(re.match(r"\s*\d", entry) for entry in mask.split(","))
    mixed = len({device.gpu.name for device in devices}) > 1
    return uses_indices and mixed and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID"


def _text(value: str | bytes) -> str:
    """nvidia-ml-py returns str; bindings before 11.5 returned bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _cpu_cores() -> int | None:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def _ram_bytes(notes: list[str]) -> int | None:
    try:
        import psutil
    except ImportError:
        notes.append("RAM unknown: psutil is not installed (pip install psutil).")
        return None
    return int(psutil.virtual_memory().total)


def _disk_free_bytes(output_dir: str | Path, notes: list[str]) -> int | None:
    """Free space where the outputs will go: the nearest folder that exists, since the output folder usually
    does not exist yet."""
    path = Path(output_dir).expanduser().absolute()
    existing = next((candidate for candidate in (path, *path.parents) if candidate.exists()), None)
    try:
        return shutil.disk_usage(existing).free if existing else None
    except OSError as err:
        notes.append(f"free disk unknown: cannot check {existing} ({err.strerror}).")
        return None


# ---------------------------------------------------------------------------------------------------------
# Describing a profile to a person


def describe(profile: HardwareProfile) -> list[str]:
    """Short lines for `lorawiz doctor` and the plan header; identical adjacent GPUs share one line."""
    lines = []
    if profile.source.startswith("spec:"):
        lines.append(f"planning for {profile.source.removeprefix('spec:')} (built-in spec; host CPU, RAM and disk "
                     "unknown)")
    elif profile.source.startswith("file:"):
        lines.append(f"hardware read from {profile.source.removeprefix('file:')}")
    if profile.is_cpu_only:
        lines.append("no GPU: training would run on the CPU")
    lines += [_describe_gpus(group) for group in _same_gpu_runs(profile.gpus)]
    if profile.driver_version or profile.cuda_driver_version:
        lines.append(f"driver {profile.driver_version or 'unknown'}, CUDA {profile.cuda_driver_version or 'unknown'}")
    host = []
    if profile.cpu_cores is not None:
        host.append(f"{profile.cpu_cores} CPU cores")
    if profile.ram_bytes is not None:
        host.append(f"{_gib(profile.ram_bytes)} RAM")
    if profile.disk_free_bytes is not None:
        host.append(f"{_gib(profile.disk_free_bytes)} free disk")
    if host:
        lines.append(", ".join(host))
    lines += [f"note: {note}" for note in profile.notes]
    return lines


def _same_gpu_runs(gpus: Sequence[GpuInfo]) -> list[list[GpuInfo]]:
    runs: list[list[GpuInfo]] = []
    for gpu in gpus:
        if runs and _gpu_key(runs[-1][-1]) == _gpu_key(gpu):
            runs[-1].append(gpu)
        else:
            runs.append([gpu])
    return runs


def _gpu_key(gpu: GpuInfo) -> tuple[Any, ...]:
    return gpu.name, gpu.total_bytes, gpu.free_bytes, gpu.compute_capability


def _describe_gpus(run: list[GpuInfo]) -> str:
    gpu = run[0]
    if len(run) == 1:
        label = f"GPU {gpu.index}: {gpu.name}"
    else:
        indices = [member.index for member in run]
        contiguous = indices == list(range(indices[0], indices[0] + len(indices)))
        span = f"{indices[0]}-{indices[-1]}" if contiguous else ",".join(map(str, indices))
        label = f"GPU {span}: {len(run)} x {gpu.name}"
    major, minor = gpu.compute_capability
    precision = "bf16" if gpu.supports_bf16 else "no bf16 (fp16 only)"
    return (f"{label}, {_gib(gpu.total_bytes)} total, {_gib(gpu.free_bytes)} free, compute {major}.{minor}, "
            f"{precision}")


def _gib(size: int) -> str:
    return f"{size / GiB:.1f} GiB"
