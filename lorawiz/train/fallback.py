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


# Several processes cannot restart together inside the run (the others wait in a collective for the one that ran
# out of memory), so the launcher restarts them all, once, from the last complete checkpoint. Only the micro-batch
# fallback is resumable that way: it keeps the maths the same (lorawiz.train.checkpoints.NOT_FINGERPRINTED).
RESTART_EXIT = 75  # a child's exit code asking the launcher for that restart (EX_TEMPFAIL)
RESUMABLE = frozenset({"per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"})


def stop_for_relaunch(cfg: Any, world_size: int) -> None:
    """Out of memory in one of several processes: leave the next fallback for the launcher and exit with
    RESTART_EXIT, or, when it cannot be resumed or this run already restarted once, stop with the fix to try."""
    import json
    import os

    from lorawiz.data.writers import atomic_output
    from lorawiz.errors import LorawizError
    from lorawiz.train.launcher import EXIT_FILE, RELAUNCH_FALLBACK

    fallback = next_fallback(cfg)
    exit_file = os.environ.get(EXIT_FILE)
    if fallback and set(fallback[0]) <= RESUMABLE and exit_file and not os.environ.get(RELAUNCH_FALLBACK):
        values = {name: value for name, (value, _) in fallback[0].items()}
        with atomic_output(f"{exit_file}.restart", overwrite=True) as handle:
            json.dump({"values": values, "change": fallback[1]}, handle)
        raise SystemExit(RESTART_EXIT)
    sets = " ".join(f"--set {name}={str(value).lower() if isinstance(value, bool) else value}"
                    for name, (value, _) in (fallback[0].items() if fallback else ()))
    raise LorawizError(f"out of GPU memory in one of the {world_size} processes"
                       + (" again after one automatic restart." if os.environ.get(RELAUNCH_FALLBACK) else "."),
                       hint=(f"Try {fallback[1]}: add {sets} --resume auto." if fallback else
                             "Use a smaller model, shorter sequences, or more or bigger GPUs."))


def with_relaunch_fallback(resolved: Any) -> Any:
    """The configuration of a run the launcher restarted after running out of memory: the fallback's values."""
    import json
    import os

    from lorawiz.train.launcher import RELAUNCH_FALLBACK

    raw = os.environ.get(RELAUNCH_FALLBACK)
    if not raw:
        return resolved
    values = json.loads(raw)
    why = adjusted("out of memory in a process: restarted once with a halved micro-batch, the same effective batch")
    return resolved.with_values({name: (value, why) for name, value in values.items()})
