"""`lorawiz doctor` as a library call: is this machine ready to train, and if not, what fixes it.

Each check gives one line with a mark (ok / warning / broken) and, when not ok, the command that fixes it.
Only broken *required* checks make the command fail; optional speed-ups missing are warnings.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lorawiz.errors import first_line
from lorawiz.memory import GIB

OK, WARNING, BROKEN = "ok", "warning", "broken"
CORE_PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes")
# The newest version of each core package the suite has passed with. A newer one installed is a warning, not a
# failure: pyproject's ranges have no upper caps unless something breaks, so newer releases are allowed but untested.
TESTED_UP_TO = {"torch": "2.13.0", "transformers": "5.25.0", "peft": "0.21.2", "trl": "1.16.0", "accelerate": "1.16.0",
                "datasets": "5.2.0", "bitsandbytes": "0.50.2"}
LOW_DISK_BYTES = 20 * GIB  # a merged 8B model in 16-bit alone takes ~16 GB


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str | None = None
    required: bool = False


@dataclass(frozen=True)
class TorchFacts:
    """What the checks need to know about the installed torch; read_torch() reads it on this machine."""

    version: str
    cuda: str | None
    """The CUDA version torch was built for; None for a CPU-only build."""
    sees_gpu: bool
    """torch.cuda.is_available(): a CUDA build, a working driver and a GPU."""
    device_count: int


def _requirements() -> dict[str, str]:
    """lorawiz's own version ranges, from its installed metadata: package -> specifier."""
    from packaging.requirements import Requirement

    ranges = {}
    for text in importlib.metadata.requires("lorawiz") or []:
        req = Requirement(text)
        if req.marker is None:
            ranges[req.name.lower()] = str(req.specifier)
    return ranges


def check_python() -> Check:
    # Nothing to compare: pip installs lorawiz only on a Python its requires-python allows.
    return Check("python", OK, ".".join(map(str, sys.version_info[:3])), required=True)


def check_packages() -> list[Check]:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    ranges = _requirements()
    checks = []
    for name in CORE_PACKAGES:
        wanted = ranges.get(name, "")
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check(name, BROKEN, "not installed", f'pip install "{name}{wanted}"', required=True))
            continue
        if wanted and Version(installed) not in SpecifierSet(wanted, prereleases=True):
            checks.append(Check(name, BROKEN, f"{installed} is outside lorawiz's range {wanted}",
                                f'pip install "{name}{wanted}"', required=True))
        elif _newer_than_tested(installed, TESTED_UP_TO.get(name)):
            checks.append(Check(name, WARNING, f"{installed} is newer than the newest version lorawiz was tested with "
                                f"({TESTED_UP_TO[name]}); it should work, report anything that breaks",
                                f'pip install "{name}<={TESTED_UP_TO[name]}" (only if something breaks)',
                                required=True))
        else:
            checks.append(Check(name, OK, installed, required=True))
    return checks


def _newer_than_tested(installed: str, tested: str | None) -> bool:
    """A newer minor release than the tested one (patch releases of a tested minor count as tested)."""
    from packaging.version import Version

    return tested is not None and Version(installed).release[:2] > Version(tested).release[:2]


def read_torch() -> TorchFacts | None:
    """The installed torch's build and what it sees; None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    sees = torch.cuda.is_available()
    return TorchFacts(torch.__version__, torch.version.cuda, sees, torch.cuda.device_count() if sees else 0)


def check_torch(hardware: Any, facts: TorchFacts | None) -> list[Check]:
    """Whether this torch build can drive this hardware (no check without torch: check_packages reports it)."""
    if facts is None:
        return []
    cuda = facts.cuda
    build = f"torch {facts.version}, " + (f"CUDA {cuda} build" if cuda else "CPU-only build")
    if hardware.is_cpu_only:
        return [Check("torch build", OK, f"{build}; no GPU: training will run on the CPU (slow; fine for the demo)")]
    if not cuda:
        return [Check("torch build", BROKEN, f"{build}, but this machine has a GPU",
                      'pip install --force-reinstall "torch>=2.6,<2.15"  (PyPI\'s Linux wheels are CUDA builds)',
                      required=True)]
    if not facts.sees_gpu:
        return [Check("torch build", BROKEN, f"{build}, but torch sees no GPU (driver {hardware.driver_version})",
                      "update the NVIDIA driver to one that supports CUDA " + cuda, required=True)]
    return [Check("torch build", OK, f"{build}, sees {facts.device_count} GPU(s)")]


def check_gpus(hardware: Any) -> list[Check]:
    from lorawiz.hardware import describe

    lines = describe(hardware)
    if hardware.is_cpu_only:
        return [Check("gpu", WARNING, "no GPU found: training will run on the CPU; "
                      + "; ".join(hardware.notes or lines), "run on a machine with an NVIDIA GPU for real training")]
    checks = [Check("gpu", OK, line) for line in lines]
    if hardware.supports_bf16:
        checks.append(Check("bf16", OK, "supported on every GPU"))
    else:
        checks.append(Check("bf16", WARNING, "not supported (compute capability < 8.0): fp16 with loss scaling is "
                            "used instead", None))
    return checks


def check_bitsandbytes(torch_facts: TorchFacts | None, hardware: Any) -> Check:
    """4-bit NF4 quantisation of a small tensor, on the GPU when there is one."""
    if torch_facts is None or importlib.util.find_spec("bitsandbytes") is None:
        return Check("bitsandbytes 4-bit", BROKEN, "bitsandbytes or torch missing", 'pip install "bitsandbytes>=0.50"')
    device = "cuda" if not hardware.is_cpu_only and torch_facts.sees_gpu else "cpu"
    bnb_logger = logging.getLogger("bitsandbytes")
    level = bnb_logger.level
    bnb_logger.setLevel(logging.ERROR)  # its CPU backend warns at import about an optional kernels download
    try:
        import bitsandbytes.functional as bnbf
        import torch

        weight = torch.randn(64, 64, dtype=torch.bfloat16, device=device)
        packed, state = bnbf.quantize_4bit(weight, quant_type="nf4")
        error = (bnbf.dequantize_4bit(packed, state) - weight).abs().mean().item()
        if error > 0.2:
            return Check("bitsandbytes 4-bit", BROKEN, f"NF4 round trip error {error:.3f} on {device}",
                         'pip install --force-reinstall "bitsandbytes>=0.50"')
        return Check("bitsandbytes 4-bit", OK, f"NF4 works on {device} (QLoRA available)")
    except Exception as exc:  # bitsandbytes raises many types when its native library does not load  # noqa: BLE001
        first = first_line(exc)
        return Check("bitsandbytes 4-bit", BROKEN, f"4-bit quantisation fails on {device}: {first}",
                     'pip install --force-reinstall "bitsandbytes>=0.50"')
    finally:
        bnb_logger.setLevel(level)


def _installed(module: str, dist: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def check_speedups(hardware: Any) -> list[Check]:
    """Unsloth, Liger and flash-attention: optional; usable only on an NVIDIA GPU. Not imported (Unsloth patches
    transformers on import), only located."""
    checks = []
    for label, module, dist, fix in (
        ("unsloth", "unsloth", "unsloth", "pip install -e \".[unsloth]\"  (about 2x faster, less memory)"),
        ("liger kernels", "liger_kernel", "liger-kernel", "pip install -e \".[liger]\"  (fused kernels, less memory)"),
        ("flash-attention", "flash_attn", "flash-attn", None),
    ):
        version = _installed(module, dist)
        if version is None:
            status = OK if label == "flash-attention" or hardware.is_cpu_only else WARNING
            detail = "not installed" + ("; PyTorch SDPA attention is used" if label == "flash-attention" else "")
            checks.append(Check(label, status, detail, None if status == OK else fix))
        elif hardware.is_cpu_only:
            checks.append(Check(label, WARNING, f"{version} installed but unusable without an NVIDIA GPU"))
        else:
            checks.append(Check(label, OK, f"{version}"))
    return checks


def check_disk(hardware: Any, output_dir: str) -> Check:
    free = hardware.disk_free_bytes
    if free is None:
        return Check("disk", WARNING, f"free space at {output_dir} unknown")
    if free < LOW_DISK_BYTES:
        return Check("disk", WARNING, f"{free / GIB:.1f} GiB free at {output_dir}: a merged 8B model needs ~16 GB",
                     "free some space, or pass --output-dir on a larger disk")
    return Check("disk", OK, f"{free / GIB:.0f} GiB free at {output_dir}")


def check_hf_token() -> Check:
    try:
        from huggingface_hub import get_token
    except ImportError:
        return Check("hugging face token", WARNING, "huggingface_hub missing", "pip install huggingface_hub")
    if get_token():
        return Check("hugging face token", OK, "configured (not shown)")
    return Check("hugging face token", WARNING, "not set: gated models (Llama, Gemma) cannot be downloaded, nor "
                                                "a run pushed (lorawiz push, push_to_hub)",
                 "hf auth login  (or export HF_TOKEN=...)")


def check_accelerate_config() -> Check:
    try:
        from accelerate.commands.config.config_args import default_config_file
    except ImportError:
        return Check("accelerate config", WARNING, "accelerate missing", "pip install accelerate")
    if Path(default_config_file).exists():
        return Check("accelerate config", OK, f"{default_config_file} (used for multi-GPU launches)")
    return Check("accelerate config", OK, "none: lorawiz launches with settings for the GPUs it finds")


def check_trackers() -> list[Check]:
    """The experiment trackers report_to may name: tensorboard (a dependency: missing is a warning), wandb and
    mlflow (extras: missing is fine, and said), and whether wandb can log in."""
    checks = []
    version = _installed("tensorboard", "tensorboard")
    checks.append(Check("tensorboard", OK, version) if version else
                  Check("tensorboard", WARNING, "not installed: no training curves", "pip install tensorboard"))
    for name, extra_fix in (("wandb", "pip install 'lorawiz[wandb]'"), ("mlflow", "pip install 'lorawiz[mlflow]'")):
        version = _installed(name, name) or (_installed(name, f"{name}-skinny") if name == "mlflow" else None)
        if version is None:
            checks.append(Check(name, OK, f"not installed: report_to {name} needs {extra_fix}"))
        elif name == "wandb" and not _wandb_key() and os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
            checks.append(Check(name, WARNING, f"{version}, but no API key: a run with report_to wandb would stop "
                                               "at its first log", "wandb login  (or export WANDB_MODE=offline)"))
        else:
            where = (f", tracking at {os.environ.get('MLFLOW_TRACKING_URI') or './mlruns'}" if name == "mlflow"
                     else "")
            checks.append(Check(name, OK, f"{version}{where}"))
    return checks


def _wandb_key() -> bool:
    """WANDB_API_KEY, or the key `wandb login` keeps in ~/.netrc (wandb's own lookup order)."""
    import netrc

    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def run_checks(output_dir: str = ".", hardware: Any = None) -> tuple[list[Check], Any]:
    """Every check, in reading order, and the hardware profile they saw."""
    from lorawiz.hardware import probe

    hardware = hardware or probe(output_dir)
    checks = [check_python(), *check_packages()]
    torch_facts = read_torch()
    checks += check_torch(hardware, torch_facts)
    checks += check_gpus(hardware)
    checks.append(check_bitsandbytes(torch_facts, hardware))
    checks += check_speedups(hardware)
    checks += [check_disk(hardware, output_dir), check_hf_token(), check_accelerate_config(), *check_trackers()]
    return checks, hardware


def broken_required(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == BROKEN and c.required]


def report_json(checks: list[Check], hardware: Any) -> dict[str, Any]:
    """The doctor's JSON: the checks, and the hardware in the form `--hardware FILE.json` reads."""
    return {"checks": [asdict(c) for c in checks], "hardware": hardware.to_dict(),
            "ok": not broken_required(checks)}
