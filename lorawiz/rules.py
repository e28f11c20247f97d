"""Rules of thumb for the values that depend on the data's size: warm-up, rank, effective batch, epochs, dropout.
Each says where it comes from. Pure: plain data in and out (lorawiz.recommend applies them).
"""

from __future__ import annotations


def warmup_ratio_for(total_steps: int) -> tuple[float, str]:
    """Short runs need proportionally more warmup (the issue's rule: 0.1 / 0.06 / 0.03)."""
    if total_steps < 1000:
        return 0.1, f"{total_steps:,} steps (< 1k): 10% warmup steadies the first updates"
    if total_steps <= 10_000:
        return 0.06, f"{total_steps:,} steps (1k-10k): 6% warmup"
    return 0.03, f"{total_steps:,} steps (> 10k): 3% warmup is plenty"


def rank_for(rows: int | None, task: str) -> tuple[int, str]:
    """Adapter rank: small data needs little capacity; domain adaptation needs more (Biderman et al. 2024,
    "LoRA Learns Less and Forgets Less": continued pre-training benefits from higher ranks)."""
    if task == "classification":
        return 8, "classification needs little capacity: rank 8"
    if rows is None:
        return 16, "no data statistics: rank 16, a common default"
    rank = 8 if rows < 1_000 else 16 if rows < 10_000 else 32 if rows < 100_000 else 64
    reason = f"{rows:,} rows: rank {rank}"
    if task == "domain":
        rank *= 2
        reason += f", doubled to {rank} for domain adaptation (new knowledge needs more capacity)"
    return rank, reason


def effective_batch_for(rows: int | None) -> int:
    """16 for small data (more updates per epoch), up to 64 for large data (smoother gradients)."""
    if rows is None or rows < 1_000:
        return 16
    return 32 if rows < 20_000 else 64


def epochs_for(rows: int | None) -> tuple[float, str]:
    if rows is None:
        return 1.0, "no data statistics: one epoch"
    if rows < 1_000:
        return 3.0, f"{rows:,} rows: 3 epochs (small data needs several passes)"
    if rows < 10_000:
        return 2.0, f"{rows:,} rows: 2 epochs"
    return 1.0, f"{rows:,} rows: one epoch is enough and avoids overfitting"


def dropout_for(rows: int | None) -> tuple[float, str]:
    if rows is not None and rows < 1_000:
        return 0.1, f"{rows:,} rows: dropout 0.1 against overfitting small data"
    if rows is not None and rows < 10_000:
        return 0.05, f"{rows:,} rows: light dropout 0.05"
    return 0.0, "large data: no dropout (it would only slow learning)"
