"""What hardware a run plans for: this machine probed through NVML, a built-in spec, or a saved JSON profile."""

from __future__ import annotations

from lorawiz.hardware.nvml import ResourceSampler, probe
from lorawiz.hardware.profile import GpuInfo, HardwareProfile, describe, machines_of
from lorawiz.hardware.specs import parse_hardware_spec, read_hardware_file, spec_profile

__all__ = [
    "GpuInfo",
    "HardwareProfile",
    "ResourceSampler",
    "describe",
    "machines_of",
    "parse_hardware_spec",
    "probe",
    "read_hardware_file",
    "spec_profile",
]
