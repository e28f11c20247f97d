"""Axolotl configs read as lorawiz configs: each key Axolotl users write mapped to the knob that does the same, the
keys that only matter to Axolotl's own loader accepted as cosmetic, and every other key named (with its line) so
that nothing is silently dropped.

Written by hand: Axolotl's schema lives in its own package (pydantic models that import torch and transformers),
which lorawiz does not depend on; the mapping is a table, kept next to the tests that read a real config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lorawiz.config.schema import RENAMED_KEYS, SCHEDULERS
from lorawiz.errors import Problem

# Keys with the same name and meaning as a lorawiz knob.
SAME = frozenset({
    "load_in_4bit", "load_in_8bit", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
    "gradient_accumulation_steps", "learning_rate", "warmup_steps", "warmup_ratio", "weight_decay", "max_grad_norm",
    "gradient_checkpointing", "bf16", "fp16", "tf32", "output_dir", "logging_steps", "eval_steps", "save_steps",
    "save_total_limit", "max_steps", "seed", "early_stopping_patience", "load_best_model_at_end",
    "metric_for_best_model", "greater_is_better", "lr_scheduler_kwargs", "trust_remote_code",
    "layers_to_transform", "use_dora", "use_rslora", "eval_strategy", "save_strategy", "dataloader_num_workers",
    "evals_per_epoch", "saves_per_epoch", "group_by_length", "early_stopping_threshold", "hub_strategy",
})
RENAMED = {**RENAMED_KEYS,
    "base_model": "model_name_or_path", "sequence_len": "max_seq_length", "micro_batch_size":
    "per_device_train_batch_size", "eval_batch_size": "per_device_eval_batch_size", "num_epochs": "num_train_epochs",
    "optimizer": "optim", "lr_scheduler": "lr_scheduler_type", "val_set_size": "val_split",
    "sample_packing": "packing", "dataset_prepared_path": "dataset_cache_dir", "lora_modules_to_save":
    "modules_to_save",
}
# Keys that change nothing lorawiz does differently: the loader classes transformers picks from the config
# anyway, Axolotl's own preprocessing and logging switches, attention kernels lorawiz chooses itself.
COSMETIC = frozenset({
    "model_type", "tokenizer_type", "base_model_config", "is_llama_derived_model", "is_mistral_derived_model",
    "is_qwen_derived_model", "strict", "pad_to_sequence_len", "flash_attention", "sdp_attention", "xformers_attention",
    "wandb_project", "wandb_entity", "wandb_watch", "wandb_name", "wandb_log_model", "debug",
    "deepspeed", "fsdp", "fsdp_config", "resume_from_checkpoint", "local_rank", "logging_first_step",
    "eval_sample_packing", "remove_unused_columns", "chat_template", "eval_table_size", "eval_max_new_tokens",
})
DATASET_KEYS = frozenset({"path", "type", "weight", "max_samples", "split", "name", "ds_type", "data_files"})
# Axolotl's prompt formats that lorawiz format detects from the rows themselves.
DATASET_TYPES = frozenset({"alpaca", "sharegpt", "chat_template", "completion", "input_output", "oasst",
                           "alpaca_chat", "alpaca_instruct", "jeopardy", "gpteacher", "context_qa", "summarizetldr",
                           "pretrain", "metharme", "chatml", "llama3"})
SIGNS = ("base_model", "sequence_len", "micro_batch_size", "num_epochs", "adapter", "datasets", "lora_target_linear")


def looks_like_axolotl(data: Mapping[str, Any]) -> bool:
    """An Axolotl config names its model base_model and its batch micro_batch_size (or lists datasets)."""
    return sum(1 for key in SIGNS if key in data) >= 2


def axolotl_values(data: Mapping[str, Any], at: Callable[[str], str]) -> tuple[dict[str, tuple[Any, str]],
                                                                               list[Problem]]:
    """(knob -> (value, where)) and the problems: keys lorawiz does not understand, in one list."""
    values: dict[str, tuple[Any, str]] = {}
    problems: list[Problem] = []

    def put(name: str, value: Any, key: str) -> None:
        values[name] = (value, at(key))

    for key, value in data.items():
        key = str(key)
        if key in COSMETIC:
            continue
        if key == "adapter":
            if value == "qlora":
                put("load_in_4bit", True, key)
            elif value not in ("lora", None):
                problems.append(Problem(at(key), f"adapter: {value}: lorawiz trains lora and qlora adapters."))
        elif key == "lora_target_linear":
            if value:
                put("lora_target_modules", "all-linear", key)
        elif key == "lr_scheduler":
            if value in SCHEDULERS:  # Axolotl takes transformers' schedule names, as lorawiz does
                put("lr_scheduler_type", value, key)
            else:
                problems.append(Problem(at(key), f"lr_scheduler: {value}: not a schedule lorawiz has ("
                                                 f"{', '.join(sorted(SCHEDULERS))})."))
        elif key == "cosine_min_lr_ratio":
            put("lr_scheduler_type", "cosine_with_min_lr", key)
            put("lr_scheduler_kwargs", {"min_lr_rate": value}, key)
        elif key in ("bf16", "fp16", "tf32") and value == "auto":
            continue  # "auto": the recommender decides, as Axolotl's auto does
        elif key == "val_set_size":
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 1:
                problems.append(Problem(at(key), f"val_set_size: {value} rows: lorawiz holds out a share; give a "
                                                 "fraction such as 0.05."))
            else:
                put("val_split", value, key)
        elif key == "hub_model_id":  # Axolotl pushes (privately) whenever it names a repository
            put("hub_model_id", value, key)
            put("push_to_hub", True, key)
        elif key == "train_on_inputs":
            put("assistant_only_loss", not value, key)
        elif key == "special_tokens":
            _special_tokens(value, at(key), put, problems)
        elif key == "datasets":
            _datasets(value, at(key), put, problems)
        elif key == "test_datasets":
            _test_datasets(value, at(key), put, problems)
        elif key == "callbacks":
            _callbacks(value, at(key), put, problems)
        elif key in RENAMED:
            put(RENAMED[key], value, key)
        elif key in SAME:
            put(key, value, key)
        else:
            problems.append(Problem(at(key), f'Axolotl key "{key}": lorawiz has no counterpart; remove it, or set '
                                             "what it does with a lorawiz key (`lorawiz config show` lists them)."))
    return values, problems


def _special_tokens(value: Any, where: str, put: Callable, problems: list[Problem]) -> None:
    if not isinstance(value, Mapping):
        problems.append(Problem(where, "special_tokens must be a mapping such as {pad_token: <|end_of_text|>}."))
        return
    for name, token in value.items():
        if name == "pad_token":
            put("pad_token", token, "special_tokens")
        else:
            problems.append(Problem(where, f"special_tokens.{name}: lorawiz sets only the pad token; the "
                                           f"tokenizer's own {name} is used."))


def _datasets(value: Any, where: str, put: Callable, problems: list[Problem]) -> None:
    if not isinstance(value, list) or not value:
        problems.append(Problem(where, "datasets must be a list of {path: ..., type: ...} entries."))
        return
    entries = []
    for number, entry in enumerate(value, start=1):
        if not isinstance(entry, Mapping) or "path" not in entry:
            problems.append(Problem(where, f"datasets entry {number}: needs a path."))
            continue
        unknown = sorted(set(map(str, entry)) - DATASET_KEYS)
        if unknown:
            problems.append(Problem(where, f"datasets entry {number} ({entry['path']}): {', '.join(unknown)}: not "
                                           "understood (lorawiz reads path, type, weight, max_samples, split)."))
        kind = entry.get("type")
        if isinstance(kind, str) and kind not in DATASET_TYPES:
            problems.append(Problem(where, f"datasets entry {number} ({entry['path']}): type {kind}: not a format "
                                           f"lorawiz reads ({', '.join(sorted(DATASET_TYPES))})."))
        entries.append({k: entry[k] for k in ("path", "weight", "max_samples", "split") if entry.get(k) is not None})
    simple = len(entries) == 1 and set(entries[0]) == {"path"}
    if simple:
        put("train_file", entries[0]["path"], "datasets")
    elif entries:
        put("datasets", entries, "datasets")


def _callbacks(value: Any, where: str, put: Callable, problems: list[Problem]) -> None:
    """Early stopping written as a callback entry ({type: early_stopping, patience: 3, threshold: 0.01}); lorawiz
    runs its own early stopping from those two numbers."""
    for entry in value if isinstance(value, list) else [value]:
        text = str(entry.get("type") or entry.get("name") or entry.get("class") or "") if isinstance(entry, Mapping) \
            else str(entry)
        if "earlystopping" not in text.replace("_", "").lower():
            problems.append(Problem(where, f"callbacks: {text or entry}: lorawiz runs no callbacks of yours; only "
                                           "early stopping carries over."))
            continue
        if isinstance(entry, Mapping):
            for name in ("patience", "early_stopping_patience"):
                if name in entry:
                    put("early_stopping_patience", entry[name], "callbacks")
            for name in ("threshold", "early_stopping_threshold"):
                if name in entry:
                    put("early_stopping_threshold", entry[name], "callbacks")


def _test_datasets(value: Any, where: str, put: Callable, problems: list[Problem]) -> None:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping) and "path" in value[0]:
        put("validation_file", value[0]["path"], "test_datasets")
    else:
        problems.append(Problem(where, "test_datasets: lorawiz takes one validation file; give one entry with a "
                                       "path."))
