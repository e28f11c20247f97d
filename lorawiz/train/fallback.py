"""After running out of GPU memory: the next, leaner setting to restart with, keeping the effective batch."""

from __future__ import annotations

from typing import Any

from lorawiz.config.layers import Source, adjusted

FALLBACKS = ("halve the micro-batch", "gradient checkpointing", "4-bit", "shorter sequences")


def next_fallback(cfg: Any) -> tuple[dict[str, tuple[Any, Source]], str] | None:
    """The changes (knob -> (value, source)) of the next fallback in FALLBACKS and a line saying what they are;
    None when nothing leaner is left."""
    train, opt, model = cfg.training, cfg.optimization, cfg.model
    micro = train.per_device_train_batch_size
    if micro > 1:
        accum = train.gradient_accumulation_steps * 2
        why = f"micro-batch {micro} -> {micro // 2}, accumulation doubled to {accum} (same effective batch)"
        return {"per_device_train_batch_size": (micro // 2, adjusted(f"out of memory: {why}")),
                "per_device_eval_batch_size": (max(1, train.per_device_eval_batch_size // 2),
                                               adjusted("out of memory: halved with the micro-batch")),
                "gradient_accumulation_steps": (accum, adjusted(f"out of memory: {why}"))}, why
    if not opt.gradient_checkpointing:
        why = "gradient checkpointing on"
        return {"gradient_checkpointing": (True, adjusted(f"out of memory: {why}"))}, why
    if not (model.load_in_4bit or model.load_in_8bit):
        why = "base model loaded in 4 bits (QLoRA)"
        return {"load_in_4bit": (True, adjusted(f"out of memory: {why}"))}, why
    seq = cfg.data.max_seq_length
    if seq > 128:
        why = f"max_seq_length {seq} -> {seq // 2}"
        return {"max_seq_length": (seq // 2, adjusted(f"out of memory: {why}"))}, why
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()
