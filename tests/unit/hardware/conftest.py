"""Hardware-test figures shared by the profile and probe tests: two real GPUs' NVML totals and UUIDs."""

from __future__ import annotations

from lorawiz.hardware.profile import MiB

H100_TOTAL = 81559 * MiB
A100_TOTAL = 40960 * MiB
H100_UUID = "GPU-1a2b3c4d-0000-1111-2222-333344445555"
A100_UUID = "GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff"
