"""Disk space for a training run, checked once the plan is known and before any training: the adapter, its
optimizer state and the checkpoints kept (each a copy of both, with the tokenizer) must fit in the output folder.

Sizes come from the LoRA parameter count (lorawiz.memory), the way PEFT and the Trainer write them.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError, existing_ancestor, format_bytes
from lorawiz.lora_size import adapted_layer_count, lora_parameters
from lorawiz.memory import ADAPTER_BYTES, OPTIMIZER_STATE_BYTES

MIB = 2**20
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json", "merges.txt",
                   "special_tokens_map.json", "added_tokens.json", "chat_template.jinja")
# A hub model whose tokenizer is not in the cache: about the largest common tokenizer.json (Gemma 3's is 33 MB;
# Llama 3's 9 MB, Qwen2.5's 7 MB).
UNKNOWN_TOKENIZER_BYTES = 32 * MIB
# Per checkpoint besides adapter, optimizer and tokenizer: rng_state.pth, scheduler.pt, training_args.bin, the
# model card and trainer_state.json (36 KB measured on builtin:tiny), whose log history grows by ~200 B a step.
CHECKPOINT_EXTRA_BYTES = 1 * MIB
STATE_BYTES_PER_STEP = 256
# metrics.jsonl, training.log and the TensorBoard events: ~1 KB a step measured on builtin:tiny, plus headers.
LOG_BYTES_PER_STEP = 4096
MODULE_PARAMETERS = {"embed_tokens": "embeddings", "wte": "embeddings", "lm_head": "lm_head", "output": "lm_head"}


@dataclass(frozen=True)
class DiskNeed:
    """What a run writes at its fullest, in bytes."""

    adapter: int
    optimizer: int
    tokenizer: int
    checkpoint: int  # one checkpoint: adapter + optimizer state + tokenizer + small files
    checkpoints: int  # how many exist at once at the worst moment (beyond those already on disk)
    final: int  # the adapter, tokenizer and logs in the run folder itself

    @property
    def total(self) -> int:
        return self.checkpoints * self.checkpoint + self.final


def estimate_disk_need(cfg: Any, model: Any, steps: int, existing_checkpoints: int = 0) -> DiskNeed:
    """The run's peak disk use from its configuration (a RunConfig), the model's facts and its step count."""
    trainable = trainable_parameters(cfg, model)
    adapter = trainable * ADAPTER_BYTES  # PEFT saves the fp32 adapter weights as they are
    optimizer = math.ceil(trainable * OPTIMIZER_STATE_BYTES.get(cfg.optimization.optim or "", 8.0))
    tokenizer = tokenizer_bytes(cfg.model.model_name_or_path)
    checkpoint = adapter + optimizer + tokenizer + CHECKPOINT_EXTRA_BYTES + STATE_BYTES_PER_STEP * steps
    final = adapter + tokenizer + LOG_BYTES_PER_STEP * steps
    return DiskNeed(adapter, optimizer, tokenizer, checkpoint,
                    max(0, checkpoints_at_peak(cfg, steps) - existing_checkpoints), final)


def trainable_parameters(cfg: Any, model: Any) -> int:
    """LoRA's A and B matrices, plus full copies of the modules_to_save PEFT knows the size of (embeddings and
    output layer; counted like adapter weights, an upper bound when they train in 16-bit)."""
    count = lora_parameters(model, cfg.lora.lora_r, cfg.lora.lora_target_modules,
                            adapted_layer_count(cfg.lora.layers_to_transform))
    sizes = model.parameters()
    for name in cfg.lora.modules_to_save or ():
        part = MODULE_PARAMETERS.get(name)
        count += (sizes[part] or sizes["embeddings"]) if part else 0  # a tied lm_head is the embedding matrix
    return count


def checkpoints_at_peak(cfg: Any, steps: int) -> int:
    """Checkpoints on disk at the fullest moment: the kept ones (save_total_limit; transformers keeps the best one
    too when it would be rotated out) plus the one being written, which is complete before the oldest goes."""
    log = cfg.logging
    if log.save_strategy == "no":
        saves = 1  # Ctrl-C and SIGTERM still save one
    elif log.save_strategy == "steps":
        saves = max(1, math.ceil(steps / (log.save_steps or steps or 1)))
    elif log.save_strategy == "epoch":
        saves = max(1, math.ceil(float(cfg.training.num_train_epochs)))
    else:  # "best": at most one per evaluation
        saves = max(1, steps)
    limit = log.save_total_limit
    kept = saves if not limit else max(limit, 2 if log.load_best_model_at_end else 1)
    return min(saves, kept + 1)


def tokenizer_bytes(model_name: str | None) -> int:
    """The tokenizer files every checkpoint copies: measured in a local folder or the Hub cache, else a bound."""
    from lorawiz.builtin import local_path

    name = local_path(model_name) or ""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return sum((folder / f).stat().st_size for f in TOKENIZER_FILES if (folder / f).is_file())
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "tokenizer.json")
    except Exception:  # not a repo id, or no cache: the bound below
        cached = None
    return Path(cached).stat().st_size + MIB if isinstance(cached, str) else UNKNOWN_TOKENIZER_BYTES


def check_disk_space(output_dir: Path, cfg: Any, model: Any, steps: int) -> DiskNeed:
    """Refuse a run whose checkpoints and adapter would not fit in the output folder's free space."""
    existing = sum(1 for child in output_dir.glob("checkpoint-*") if child.is_dir()) if output_dir.is_dir() else 0
    need = estimate_disk_need(cfg, model, steps, existing)
    folder = existing_ancestor(output_dir)
    free = shutil.disk_usage(folder).free
    if need.total > free:
        limit = cfg.logging.save_total_limit
        fewer = (f"keep fewer checkpoints (--set save_total_limit=1; it is {limit}), " if limit and limit > 1 else
                 "keep fewer checkpoints (--set save_total_limit=1), " if not limit else "")
        raise LorawizError(
            f"not enough disk space for the run in {output_dir}: it needs about {format_bytes(need.total)} "
            f"({need.checkpoints} checkpoint{'s' if need.checkpoints != 1 else ''} of {format_bytes(need.checkpoint)}"
            f" = adapter {format_bytes(need.adapter)} + optimizer state {format_bytes(need.optimizer)} + tokenizer "
            f"and state; then the final adapter and logs, {format_bytes(need.final)}); {format_bytes(free)} free on "
            f"the disk holding {folder}.",
            hint=f"Free some space, {fewer}or pick another --output-dir on a bigger disk.")
    return need
