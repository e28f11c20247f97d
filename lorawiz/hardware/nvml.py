"""This machine's hardware through NVML and psutil: `probe()` for planning, and ResourceSampler for the live
GPU memory and utilisation (or RAM) a training run shows.

pynvml and psutil are imported inside the functions that use them, and torch never, so importing this is cheap.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.hardware.profile import GpuInfo, HardwareProfile
from lorawiz.hardware.specs import spec_for_nvml_name

SAMPLE_INTERVAL_S = 2.0  # one NVML/psutil read every 2 s is plenty for a display and costs well under 1 ms


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
        cpu_cores=cpu_cores(),
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
    spec = spec_for_nvml_name(name)
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


def cpu_cores() -> int | None:
    """The cores this process may run on (its affinity mask where the OS has one)."""
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
# Live readings during a run


class ResourceSampler:
    """GPU memory and utilisation through NVML for every GPU this process can see (CUDA_VISIBLE_DEVICES honoured as
    probe() reads it), or, without a GPU or NVML, this process's RSS and the system RAM through psutil.

    `sample()` never raises and reads the devices at most once per `min_interval_s`; in between it returns the
    previous reading. GPU memory is the device's (every process on it, as nvidia-smi shows), which is what decides
    whether the next allocation fits.
    """

    def __init__(self, min_interval_s: float = SAMPLE_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._last: list[dict[str, Any]] = []
        self._last_at: float | None = None
        self._mode: str | None = None  # "gpu" or "cpu" once decided; NVML is tried once per open
        self._nvml: Any = None
        self._gpus: list[tuple[GpuInfo, Any]] = []
        self._process: Any = None

    def sample(self) -> list[dict[str, Any]]:
        now = self._clock()
        if self._last_at is not None and now - self._last_at < self.min_interval_s:
            return self._last
        self._last_at = now
        try:
            if self._mode is None:
                self._mode = "gpu" if self._open_nvml() else "cpu"
            self._last = self._sample_gpus() if self._mode == "gpu" else self._sample_cpu()
        except Exception:  # a display must never take a training run down: keep the last reading
            pass
        return self._last

    def close(self) -> None:
        """Shut NVML down; a later sample() opens it again."""
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
        self._nvml, self._gpus, self._mode, self._last_at = None, [], None, None

    def _open_nvml(self) -> bool:
        try:
            import pynvml
        except ImportError:
            return False
        try:
            pynvml.nvmlInit()
        except (pynvml.NVMLError, OSError):
            return False
        try:
            devices = [_read_device(pynvml, index) for index in range(pynvml.nvmlDeviceGetCount())]
            visible = _visible_gpus(devices, os.environ.get("CUDA_VISIBLE_DEVICES"), [])
            self._gpus = [(gpu, nvml_handle(pynvml, gpu)) for gpu in visible]
        except (pynvml.NVMLError, OSError, LookupError):
            self._gpus = []
        if not self._gpus:
            with contextlib.suppress(pynvml.NVMLError, OSError):
                pynvml.nvmlShutdown()
            return False
        self._nvml = pynvml
        return True

    def _sample_gpus(self) -> list[dict[str, Any]]:
        pynvml = self._nvml
        readings = []
        for gpu, handle in self._gpus:
            total, free = _memory(pynvml, handle)
            try:
                util: int | None = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:  # NotSupported on MIG slices
                util = None
            readings.append({"kind": "gpu", "index": gpu.index, "name": gpu.name, "used_bytes": total - free,
                             "total_bytes": total, "util_percent": util})
        return readings

    def _sample_cpu(self) -> list[dict[str, Any]]:
        import psutil

        if self._process is None:
            self._process = psutil.Process()
            psutil.cpu_percent(interval=None)  # the first call only starts the measuring interval
        memory = psutil.virtual_memory()
        return [{"kind": "cpu", "rss_bytes": int(self._process.memory_info().rss),
                 "ram_used_bytes": int(memory.total - memory.available), "ram_total_bytes": int(memory.total),
                 "cpu_percent": float(psutil.cpu_percent(interval=None))}]


def nvml_handle(pynvml: Any, gpu: GpuInfo) -> Any:
    """The NVML handle of a visible GPU: by NVML index, or for a MIG slice the parent's slot with its UUID."""
    handle = pynvml.nvmlDeviceGetHandleByIndex(gpu.index)
    if not gpu.uuid.startswith("MIG-"):
        return handle
    for slot in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except pynvml.NVMLError:
            continue
        if _text(pynvml.nvmlDeviceGetUUID(mig)) == gpu.uuid:
            return mig
    raise LookupError(gpu.uuid)
