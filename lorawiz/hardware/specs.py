"""Built-in GPU specs, for planning a run on a machine other than this one: the table, `--hardware` names and
NxNAME counts, and saved JSON profiles."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from lorawiz.errors import LorawizError
from lorawiz.hardware.profile import FILE_HINT, GpuInfo, HardwareProfile, MiB

MAX_SPEC_GPUS = 16  # GPUs in one machine: 8 in the usual server, 16 in the largest (HGX-2); more is a typo
MAX_SPEC_MACHINES = 128


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


def spec_profile(name: str, count: int = 1, machines: int = 1) -> HardwareProfile:
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
    if machines > 1:
        label = f"{machines}x{count}x{name}"
    return HardwareProfile(gpus=gpus, source=f"spec:{label}", machines=machines)


def spec_for_nvml_name(name: str) -> GpuSpec | None:
    """The table entry whose figures a probed GPU of this NVML name gets; None for a model not in the table."""
    return _SPEC_BY_NVML_NAME.get(name.lower())


def parse_hardware_spec(spec: str) -> HardwareProfile:
    """Turn a `--hardware` value into a profile: a table name ("a100-80gb", "H100", "RTX 4090"), GPUs x a name
    ("4xa100-80gb", "4x a100-80gb"), machines x GPUs x a name ("2x8xh100-80gb"), or a path to a JSON profile."""
    text = spec.strip()
    if text.lower().endswith(".json"):
        return read_hardware_file(text)
    machines_match = re.fullmatch(r"(\d+)\s*[x\u00d7]\s*(\d+\s*[x\u00d7]\s*.+)", text, flags=re.IGNORECASE)
    machines_text, text = (machines_match.group(1), machines_match.group(2)) if machines_match else (None, text)
    count_match = re.fullmatch(r"(\d+)\s*[x\u00d7]\s*(.+)", text, flags=re.IGNORECASE)
    count_text, name_text = (count_match.group(1), count_match.group(2)) if count_match else (None, text)
    normal = _normalise(name_text)
    key = normal if normal in HARDWARE_NAMES else _ALIASES.get(normal)
    if key is None:
        if text and Path(text).expanduser().is_file():
            return read_hardware_file(text)
        raise _unknown_hardware(spec, normal, f"{machines_text}x{count_text}" if machines_text else count_text)
    if count_text is not None and key == CPU_SPEC:
        raise LorawizError(f'--hardware "{spec}": "cpu" takes no GPU count.', hint='Use --hardware cpu.')
    count = int(count_text) if count_text is not None else 1
    machines = int(machines_text) if machines_text is not None else 1
    if not 1 <= count <= MAX_SPEC_GPUS:
        raise LorawizError(f'--hardware "{spec}": the GPUs of one machine must be 1 to {MAX_SPEC_GPUS}, not '
                           f'{count}.', hint=f"For several machines write MACHINES x GPUS x NAME, e.g. --hardware "
                                             f"{max(2, -(-count // 8))}x8x{key}.")
    if not 1 <= machines <= MAX_SPEC_MACHINES:
        raise LorawizError(f'--hardware "{spec}": the machine count must be 1 to {MAX_SPEC_MACHINES}, not '
                           f'{machines}.', hint=f"For example --hardware 2x8x{key}.")
    profile = spec_profile(key, count, machines)
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
                           hint=f"Pass one of {', '.join(HARDWARE_NAMES)}, or a file. {FILE_HINT}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise LorawizError(f"{path}: cannot read this hardware file ({err}).", hint=FILE_HINT) from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LorawizError(f"{path} line {err.lineno}: not valid JSON ({err.msg} at column {err.colno}).",
                           hint=FILE_HINT) from err
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
