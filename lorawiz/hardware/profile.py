"""A machine as a run plans for it: GpuInfo and HardwareProfile, their JSON form (what `lorawiz doctor --json`
writes and `--hardware FILE.json` reads), and `describe()` for people. Standard library only."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lorawiz.errors import LorawizError, Problem, ProblemsError

MiB = 1024**2
GiB = 1024**3
BF16_MIN_CAPABILITY = (8, 0)  # bf16 tensor cores arrived with Ampere (compute capability 8.0)
FILE_HINT = "A hardware file is what `lorawiz doctor --json > FILE.json` writes (or its \"hardware\" part)."


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
    machines: int = 1
    """Machines of this kind the run spans (`--hardware 2x8xh100-80gb`, `train --num-machines 2`); `gpus` are one
    machine's."""
    cpu_processes: int = 1
    """Without a GPU, the processes a run starts on this machine (`train --num-processes 2`): they share its RAM
    and the batch."""

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def world_size(self) -> int:
        """GPUs of all machines together (the processes a GPU run starts)."""
        return self.gpu_count * self.machines

    @property
    def is_cpu_only(self) -> bool:
        return not self.gpus

    @property
    def smallest_gpu_free_bytes(self) -> int | None:
        """Free memory of the tightest GPU (data parallelism is limited by it); None without a GPU."""
        return min((gpu.free_bytes for gpu in self.gpus), default=None)

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
            "machines": self.machines,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "hardware profile") -> HardwareProfile:
        """Read `to_dict()` output, bare or under a "hardware" key; every problem is reported at once."""
        if isinstance(data, Mapping) and isinstance(data.get("hardware"), Mapping):
            data = data["hardware"]
        if not isinstance(data, Mapping):
            raise LorawizError(f'{where}: expected a JSON object with a "gpus" list, not {_json_type(data)}.',
                               hint=FILE_HINT)
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
            machines=_optional(data, "machines", int, problems) or 1,
        )
        if problems:
            raise ProblemsError(where, problems, hint=FILE_HINT)
        return profile


# ---------------------------------------------------------------------------------------------------------
# Reading the JSON form back


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


def machines_of(profile: HardwareProfile, environ: Mapping[str, str] | None = None) -> HardwareProfile:
    """This machine's profile as one of the several a launch spans: torchrun (under accelerate launch) sets
    WORLD_SIZE to all machines' processes and LOCAL_WORLD_SIZE to this machine's (without a GPU: the CPU
    processes it starts)."""
    import os
    from dataclasses import replace

    env = os.environ if environ is None else environ
    world, local = int(env.get("WORLD_SIZE") or 0), int(env.get("LOCAL_WORLD_SIZE") or 0)
    if profile.gpus and local and world > local and world % local == 0:
        return replace(profile, machines=world // local)
    if not profile.gpus and local > 1:
        return replace(profile, cpu_processes=local)
    return profile
