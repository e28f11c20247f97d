"""What to change when a plan does not fit in memory: the cheapest change that does, re-estimated before it is
offered (lorawiz.recommend prints it as the plan's alternative).

Pure: plain data in and out, like lorawiz.recommend.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lorawiz.memory import GIB, TrainingShape, estimate_memory

MEMORY_BUDGET = 0.9  # plan to use at most 90% of the smallest GPU's free memory
MIN_SEQ_LEN = 256  # the shortest sequence a change suggests

# TrainingShape field -> (the setting that changes it, its value there), in the order changes are listed.
_SETTINGS = {
    "gradient_checkpointing": ("gradient_checkpointing", lambda shape: shape.gradient_checkpointing),
    "micro_batch": ("per_device_train_batch_size", lambda shape: shape.micro_batch),
    "quantization": ("load_in_4bit", lambda shape: shape.quantization != "none"),
    "seq_len": ("max_seq_length", lambda shape: shape.seq_len),
}


def fix_ladder(final: TrainingShape) -> list[tuple[TrainingShape, list[tuple[str, Any]]]]:
    """The changes to a plan that does not fit, cheapest first, each with every change before it: gradient
    checkpointing (slower, nothing lost), a smaller micro-batch (accumulation keeps the effective batch), sequences
    halved once (longer rows are truncated), 4-bit weights at the planned length, then 4-bit with shorter
    sequences. Each entry is (shape, [(setting, value), ...])."""
    ladder: list[tuple[TrainingShape, list[tuple[str, Any]]]] = []
    shape = final

    def step(**fields: Any) -> None:
        nonlocal shape
        shape = replace(shape, **fields)
        changed = [(setting, value(shape)) for field_name, (setting, value) in _SETTINGS.items()
                   if getattr(shape, field_name) != getattr(final, field_name)]
        ladder.append((shape, changed))

    if not shape.gradient_checkpointing:
        step(gradient_checkpointing=True)
    while shape.micro_batch > 1:
        step(micro_batch=shape.micro_batch // 2)
    if final.seq_len >= 2 * MIN_SEQ_LEN:
        step(seq_len=final.seq_len // 2)
    if shape.quantization == "none":
        step(quantization="nf4-dq", seq_len=final.seq_len)
    while shape.seq_len >= 2 * MIN_SEQ_LEN:
        step(seq_len=shape.seq_len // 2)
    return ladder


def cheapest_fix(model: Any, final: TrainingShape, budget: float) -> str:
    """The first change of `fix_ladder` that fits, with its re-estimated peak; else a bigger GPU or a smaller
    model."""
    for trial, changes in fix_ladder(final):
        need = estimate_memory(model, trial).total
        if need <= budget:
            flags = " ".join(f"--set {setting}={str(value).lower() if isinstance(value, bool) else value}"
                             for setting, value in changes)
            return f"{_describe(changes)} ({flags}): {need / GIB:.1f} GiB of {budget / GIB:.1f} GiB usable"
    leanest = replace(final, gradient_checkpointing=True, micro_batch=1, seq_len=min(final.seq_len, MIN_SEQ_LEN),
                      quantization="nf4-dq" if final.quantization == "none" else final.quantization)
    need = estimate_memory(model, leanest).total
    smaller = _largest_fitting_sibling(model, leanest, budget)
    from lorawiz.parallelism import gpus_needed

    gpus = gpus_needed(model, leanest, budget, first=max(2, final.shards + 1))
    shard = f", or {gpus} GPUs of this size with the model sharded across them (parallelism: fsdp)" if gpus else ""
    return (f"a GPU with at least {need / MEMORY_BUDGET / GIB:.0f} GiB free{shard}, or a smaller model"
            + (f" such as {smaller}" if smaller else ""))


_FIX_WORDS = {"gradient_checkpointing": "turn on gradient checkpointing", "load_in_4bit": "load the model in 4 bits",
              "per_device_train_batch_size": "micro-batch {} (more accumulation, the same effective batch)",
              "max_seq_length": "shorter sequences ({:,} tokens)"}


def _describe(changes: list[tuple[str, Any]]) -> str:
    return " and ".join(_FIX_WORDS[setting].format(value) for setting, value in changes)


def _largest_fitting_sibling(model: Any, base: TrainingShape, budget: float) -> str | None:
    """The largest catalog model of the same architecture that fits in 4 bits at micro-batch 1."""
    from lorawiz.catalog import CATALOG  # plain data; imported here to keep the recommender's inputs explicit

    trial = replace(base, quantization="nf4-dq")
    fitting = [m for m in CATALOG if m.architecture == model.architecture
               and m.parameters()["total"] < model.parameters()["total"]
               and estimate_memory(m, trial).total <= budget]
    return max(fitting, key=lambda m: m.parameters()["total"]).name if fitting else None
