"""How to serve what lorawiz wrote with vLLM: the exact `vllm serve` line for an adapter (LoRA served on its base)
or a merged model, and what vLLM cannot serve as is (then: merge first).

vLLM's limits, from its LoRA code (vllm/lora/peft_helper.py, vllm/config/lora.py, 0.11-0.12): no DoRA, no
modules_to_save, a bias only with --enable-lora-bias (in the versions that still have it), a rank at most
--max-lora-rank, which takes one of MAX_LORA_RANKS (default 16). LoRA serving is for generation; a
sequence-classification head is served merged.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm.config.lora.MaxLoRARanks


@dataclass
class ServingHint:
    command: str
    problems: list[str] = field(default_factory=list)  # why the adapter cannot be served as it is
    merge_command: str | None = None  # what to run instead, when there are problems
    merged_command: str | None = None  # and how to serve its output


def _served_name(folder: Path) -> str:
    name = folder.resolve().name
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "adapter"


def vllm_hint(folder: Path, base: str | None = None) -> ServingHint | None:
    """The vLLM line for an adapter folder (base: where it loads from) or a merged model; None for anything
    else."""
    folder = Path(folder)
    config_path = folder / "adapter_config.json"
    name = _served_name(folder)
    if not config_path.is_file():
        if not (folder / "config.json").is_file():
            return None
        return ServingHint(shlex.join(["vllm", "serve", str(folder.resolve()), "--served-model-name", name]))
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    base = base or config.get("base_model_name_or_path") or "BASE_MODEL"
    r = config.get("r")
    ranks = [8 if r is None else int(r), *map(int, (config.get("rank_pattern") or {}).values())]  # peft's default r: 8
    rank = max(ranks)
    problems = []
    if config.get("use_dora"):
        problems.append("it uses DoRA, which vLLM does not serve")
    if config.get("modules_to_save"):
        problems.append(f"it trains whole modules too (modules_to_save: {', '.join(config['modules_to_save'])}), "
                        "which vLLM does not serve")
    if config.get("bias", "none") != "none":
        problems.append(f"it trains biases (bias: {config['bias']}), which vLLM serves only with "
                        "--enable-lora-bias, and recent versions not at all")
    if config.get("task_type") == "SEQ_CLS":
        problems.append("it is a sequence-classification adapter; vLLM serves LoRA for generation")
    fitting = [r for r in MAX_LORA_RANKS if r >= rank]
    if not fitting:
        problems.append(f"its rank {rank} is above vLLM's largest --max-lora-rank ({MAX_LORA_RANKS[-1]})")
    command = ["vllm", "serve", base, "--enable-lora", "--lora-modules", f"{name}={folder.resolve()}"]
    if fitting:  # the smallest that holds the rank: vLLM's default (16) refuses a larger one when it loads
        command += ["--max-lora-rank", str(fitting[0])]
    if not problems:
        return ServingHint(shlex.join(command))
    merged = folder.resolve().parent / f"{name}-merged"
    return ServingHint(shlex.join(command), problems, shlex.join(["lorawiz", "merge", str(folder.resolve()), "-o",
                                                                  str(merged)]),
                       shlex.join(["vllm", "serve", str(merged), "--served-model-name", name]))


def describe(hint: ServingHint | None) -> list[str]:
    """The lines `lorawiz train` and `lorawiz merge` print at the end."""
    if hint is None:
        return []
    if not hint.problems:
        return [f"serve it with vLLM: {hint.command}"]
    return [f"warning: vLLM cannot serve this adapter as it is: {'; '.join(hint.problems)}.",
            f"merge it first: {hint.merge_command}", f"then serve the merged model: {hint.merged_command}"]
